"""Real tasks from data at hand: the tutorial's 1,000 Amazon fine-food reviews.

* :func:`reviews_retrieval` -- *title -> review*: each distinct ``Summary`` is a
  query; its relevant documents are the distinct review texts (``Text``) written
  under that summary. The file repeats reviews (the same text under several
  products) and summaries ("Delicious!" heads ten different reviews): the corpus
  holds each text once, so a repeated review is one document, not a tie between
  copies, and a repeated summary is one query with all its reviews relevant.
  On the full file: 721 queries, 761 documents.
* :func:`reviews_sentiment` -- each distinct review ``Text`` labelled ``"positive"``
  (``Score >= 4``) or ``"negative"`` (``Score <= 2``); ``Score == 3`` is left out.
  Repeated reviews are kept once, so that no text is in a training fold and its
  own test fold. On the full file: 603 positive, 103 negative.

The CSV is read with the standard library (no pandas needed). ``path`` defaults to
``$EMBEDKIT_REVIEWS_CSV``; ``limit`` keeps the first rows only (small, fast runs).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from embedkit.errors import ConfigError, CorruptFileError
from embedkit.evaluate._base import check_size
from embedkit.evaluate.classification import ClassificationTask
from embedkit.evaluate.retrieval import RetrievalTask
from embedkit.search.rows import Id

__all__ = ["ENV_VAR", "read_reviews", "reviews_retrieval", "reviews_sentiment"]

ENV_VAR = "EMBEDKIT_REVIEWS_CSV"
COLUMNS = ("Score", "Summary", "Text")
Review = tuple[int, str, str]  # (score, summary, text)


def read_reviews(
    path: str | os.PathLike[str] | None = None, *, limit: int | None = None
) -> list[Review]:
    """``(score, summary, text)`` of each row of the reviews CSV, in file order."""
    if path is None:
        path = os.environ.get(ENV_VAR)
        if not path:
            raise ConfigError(f"no reviews file: pass path= or set ${ENV_VAR}")
    if limit is not None:
        limit = check_size("limit", limit)
    where = Path(path)
    out: list[Review] = []
    with where.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ConfigError(f"{where} has no column(s) {', '.join(missing)}")
        for number, row in enumerate(reader, 2):
            if limit is not None and len(out) == limit:
                break
            try:
                score = int(row["Score"])
            except (TypeError, ValueError):
                raise CorruptFileError(f"{where}:{number}: Score is not an integer") from None
            out.append((score, row["Summary"] or "", row["Text"] or ""))
    return out


def reviews_retrieval(
    path: str | os.PathLike[str] | None = None, *, limit: int | None = None
) -> RetrievalTask:
    """*Title -> review* retrieval on the reviews (see the module docstring); MRR@10."""
    docs: dict[str, int] = {}
    relevant: dict[str, set[Id]] = {}
    for _, summary, text in read_reviews(path, limit=limit):
        if not summary.strip() or not text.strip():
            continue
        doc = docs.setdefault(text, len(docs))
        relevant.setdefault(summary, set()).add(doc)
    return RetrievalTask(
        "reviews: title -> review",
        tuple(relevant),
        tuple(docs),
        tuple(frozenset(r) for r in relevant.values()),
        k=(1, 5, 10),
        metric="mrr@10",
    )


def reviews_sentiment(
    path: str | os.PathLike[str] | None = None, *, limit: int | None = None, folds: int = 5
) -> ClassificationTask:
    """Review sentiment (see the module docstring); scored by macro-F1 (the classes are 85/15)."""
    labels: dict[str, str] = {}
    for score, _, text in read_reviews(path, limit=limit):
        if score != 3 and text.strip() and text not in labels:
            labels[text] = "positive" if score >= 4 else "negative"
    return ClassificationTask(
        "reviews: sentiment",
        tuple(labels),
        tuple(labels.values()),
        folds=folds,
        metric="macro_f1",
    )
