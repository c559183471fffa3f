"""Retrieval over chunks of long documents, scored like any retrieval task; the Lee task.

* :func:`evaluate_passages` -- a :class:`~embedkit.evaluate.retrieval.RetrievalTask`
  answered through a :class:`~embedkit.search.passages.PassageIndex`: each document
  is cut into chunks of ``size`` model tokens, the chunks are embedded by the one
  job path, and a query's ranking of documents is the ranking of their best chunks
  (``search(q, k, per_doc=1)``). Scored by recall@k, MRR@k and nDCG@k exactly as
  :func:`~embedkit.evaluate.retrieval.evaluate_retrieval` scores whole documents,
  so the two results compare directly.
* :func:`lee_retrieval` -- *held-out sentence -> its article* on gensim's Lee
  background corpus (300 news articles of 10-60 sentences, one per line of
  ``lee_background.cor``). For every article of at least ``min_sentences``
  sentences, one sentence of at least ``min_words`` words is drawn at random
  (``numpy.random.default_rng(seed)``, in file order) and **removed** from the
  article: it is the query, the article without it the one relevant document. The
  query's words are thus never in the corpus as that sentence; what can match is
  the rest of the article (its topic, names, numbers). Sentences are split after
  ``.``, ``!`` or ``?`` (and a closing quote) before a capital letter or an opening
  quote. On the full file: 300 queries over 300 documents.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from embedkit._optional import require
from embedkit.errors import ConfigError
from embedkit.evaluate._base import RunStats, check_size, embed_timed
from embedkit.evaluate.retrieval import (
    RetrievalResult,
    RetrievalTask,
    _check_ks,
    parse_metric,
    ranking_scores,
)
from embedkit.jobs.cache import CacheOption
from embedkit.jobs.embed import DEFAULT_BATCH_SIZE, ModelLike
from embedkit.search.chunks import Chunker
from embedkit.search.index import VectorIndex
from embedkit.search.passages import PassageIndex, chunk_metadata
from embedkit.search.rows import Id

__all__ = ["evaluate_passages", "lee_retrieval", "queries_past", "split_sentences"]

_SENTENCE_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"”’']))\s+(?=[\"“‘']?[A-Z])")


def split_sentences(text: str) -> list[str]:
    """``text`` cut after ``.``/``!``/``?`` (and a closing quote) before a capital letter."""
    return [s for s in _SENTENCE_END.split(text.strip()) if s]


def lee_retrieval(
    path: str | os.PathLike[str] | None = None,
    *,
    seed: int = 0,
    min_words: int = 8,
    min_sentences: int = 3,
    limit: int | None = None,
) -> RetrievalTask:
    """Held-out sentence -> its article on the Lee corpus (see the module docstring).

    ``path`` defaults to gensim's bundled ``lee_background.cor`` (the ``gensim``
    extra); ``limit`` keeps the first articles only. Every article is in the corpus
    (its id is its line number, from 0); those without a usable sentence keep their
    full text and have no query.
    """
    if path is None:
        path = require("gensim.test.utils", "gensim").datapath("lee_background.cor")
    lines = Path(path).read_text("utf-8").splitlines()
    if limit is not None:
        lines = lines[: check_size("limit", limit)]
    rng = np.random.default_rng(seed)
    queries: list[str] = []
    relevant: list[frozenset[Id]] = []
    corpus: list[str] = []
    for doc_id, line in enumerate(lines):
        sentences = split_sentences(line)
        usable = [i for i, s in enumerate(sentences) if len(s.split()) >= min_words]
        if len(sentences) < min_sentences or not usable:
            corpus.append(line.strip())
            continue
        held = usable[int(rng.integers(len(usable)))]
        queries.append(sentences[held])
        relevant.append(frozenset({doc_id}))
        corpus.append(" ".join(s for i, s in enumerate(sentences) if i != held))
    return RetrievalTask(
        "lee: held-out sentence -> article",
        tuple(queries),
        tuple(corpus),
        tuple(relevant),
        ids=tuple(range(len(corpus))),
        k=(1, 5, 10),
        metric="mrr@10",
    )


def evaluate_passages(
    model: ModelLike,
    task: RetrievalTask,
    *,
    size: int | None = None,
    overlap: int = 0,
    k: int | Sequence[int] | None = None,
    cache: CacheOption = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool | None = None,
) -> RetrievalResult:
    """``task`` answered by chunks of ``size`` tokens (``overlap`` shared): documents
    ranked by their best chunk, scored at ``k`` (default: the task's cut-offs).

    ``result.documents`` is the number of documents; ``result.run.texts`` counts the
    chunks and queries embedded.
    """
    ks = _check_ks(task.k if k is None else k)
    try:
        parse_metric(task.metric, ks)
        metric = task.metric
    except ConfigError:  # the task's headline cut-off was not asked for
        metric = f"mrr@{ks[-1]}"
    chunker = Chunker(model, size=size, overlap=overlap)
    chunks = chunker.chunk_documents(task.corpus, task.ids)
    if not chunks:
        raise ConfigError(f"task {task.name!r}: its documents have no tokens to chunk")
    vectors, run, embedder = embed_timed(
        [c.text for c in chunks],
        chunker.model,
        cache=cache,
        batch_size=batch_size,
        progress=progress,
        desc="chunks",
    )
    index = VectorIndex.from_vectors(vectors, metadata=chunk_metadata(chunks), spec=run.spec)
    index.use_embedder(embedder)
    passages = PassageIndex(index)
    start = time.perf_counter()
    found = passages.search_batch(list(task.queries), ks[-1], per_doc=1)
    seconds = time.perf_counter() - start
    searched = RunStats(run.spec, run.dim, len(task.queries), 0, len(task.queries), seconds)
    scores = ranking_scores([[p.doc_id for p in row] for row in found], task.relevant, ks)
    name = f"{task.name} (chunks of {chunker.size} tokens, overlap {chunker.overlap})"
    return RetrievalResult(
        name, metric, scores, len(task.queries), len(task.corpus), run + searched
    )


def queries_past(
    task: RetrievalTask, originals: Sequence[str], model: ModelLike, tokens: int
) -> RetrievalTask:
    """The queries of a held-out-sentence task (:func:`lee_retrieval`) whose sentence began
    after ``tokens`` tokens of ``model`` in its original article ``originals[doc]``: the
    ones a model that reads only its first ``tokens`` tokens never saw the context of."""
    counter = Chunker(model, size=None)
    kept = [
        (q, rel)
        for q, rel in zip(task.queries, task.relevant, strict=True)
        if counter.count(originals[int(min(rel))].partition(q)[0]) > tokens
    ]
    if not kept:
        raise ConfigError(f"no query of {task.name!r} starts after {tokens} tokens")
    queries, relevant = zip(*kept, strict=True)
    return RetrievalTask(
        f"{task.name} (sentences after {tokens} tokens)",
        tuple(queries),
        task.corpus,
        tuple(relevant),
        ids=task.ids,
        k=task.k,
        metric=task.metric,
    )
