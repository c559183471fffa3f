"""Retrieval quality: queries, a corpus and relevance labels -> recall@k, MRR@k, nDCG@k.

The corpus is embedded by the one job path and indexed in a
:class:`~embedkit.search.index.VectorIndex`; the queries are searched through it
(its model's ``embed_query`` where it has one). With ``rel[q]`` the relevant ids
of query ``q`` and ``hits[q][:k]`` its ``k`` best ids (binary relevance)::

    recall@k = |rel[q] ∩ hits[q][:k]| / |rel[q]|
    MRR@k    = 1 / rank of the first relevant hit (from 1), 0 if none in the top k
    nDCG@k   = DCG@k / IDCG@k,  DCG@k = sum_{r <= k, hits[q][r-1] in rel[q]} 1 / log2(r + 1),
               IDCG@k = sum_{r <= min(k, |rel[q]|)} 1 / log2(r + 1)

each averaged over the queries. Every query needs at least one relevant id, and
every relevant id must be in the corpus.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from embedkit import _html
from embedkit.errors import ConfigError
from embedkit.evaluate._base import RunStats, check_size, embed_timed, to_frame
from embedkit.jobs.cache import CacheOption
from embedkit.jobs.embed import DEFAULT_BATCH_SIZE, ModelLike
from embedkit.search.index import VectorIndex
from embedkit.search.rows import Id

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "RankingScores",
    "RetrievalResult",
    "RetrievalTask",
    "evaluate_retrieval",
    "ranking_scores",
]

DEFAULT_K = (1, 5, 10)
METRICS = ("recall", "mrr", "ndcg")


@dataclass(frozen=True)
class RankingScores:
    """Mean recall, MRR and nDCG at each ``k`` (``recall[i]`` is at ``k[i]``), and per query
    the rank (from 1) of its first relevant hit within ``max(k)``, 0 when there is none."""

    k: tuple[int, ...]
    recall: tuple[float, ...]
    mrr: tuple[float, ...]
    ndcg: tuple[float, ...]
    first_rank: tuple[int, ...] = field(repr=False)

    def at(self, metric: str) -> float:
        """One value by name: ``"recall@5"``, ``"mrr@10"``, ``"ndcg@10"``."""
        name, k = parse_metric(metric, self.k)
        values: tuple[float, ...] = getattr(self, name)
        return values[self.k.index(k)]


def ranking_scores(
    rankings: Sequence[Sequence[Id]],
    relevant: Sequence[Collection[Id]],
    k: int | Sequence[int] = DEFAULT_K,
) -> RankingScores:
    """Recall@k, MRR@k and nDCG@k of ranked ids (best first) against relevant ids."""
    ks = _check_ks(k)
    if len(rankings) != len(relevant):
        raise ConfigError(f"{len(rankings)} rankings but {len(relevant)} relevance sets")
    if not rankings:
        raise ConfigError("no queries to score")
    top = ks[-1]
    hit = np.zeros((len(rankings), top), dtype=bool)
    n_rel = np.empty(len(rankings), dtype=np.float64)
    for q, (ranked, rel) in enumerate(zip(rankings, relevant, strict=True)):
        wanted = set(rel)
        if not wanted:
            raise ConfigError(f"query {q} has no relevant document")
        n_rel[q] = len(wanted)
        row = [doc in wanted for doc in list(ranked)[:top]]
        hit[q, : len(row)] = row
    discount = 1.0 / np.log2(np.arange(2, top + 2, dtype=np.float64))
    found = hit.any(axis=1)
    first = np.where(found, hit.argmax(axis=1) + 1, 0)
    recall, mrr, ndcg = [], [], []
    for kk in ks:
        recall.append(float(np.mean(hit[:, :kk].sum(axis=1) / n_rel)))
        reciprocal = np.where((first > 0) & (first <= kk), 1.0 / np.maximum(first, 1), 0.0)
        mrr.append(float(np.mean(reciprocal)))
        dcg = hit[:, :kk] @ discount[:kk]
        ideal = np.cumsum(discount[:kk])[np.minimum(n_rel, kk).astype(np.int64) - 1]
        ndcg.append(float(np.mean(dcg / ideal)))
    return RankingScores(ks, tuple(recall), tuple(mrr), tuple(ndcg), tuple(first.tolist()))


@dataclass(frozen=True)
class RetrievalResult:
    """How well ``run.spec`` finds the relevant documents (see the module docstring).

    ``score`` is the value of ``metric`` (e.g. ``"mrr@10"``); ``scores`` holds every
    metric at every ``k``.
    """

    task: str
    metric: str
    scores: RankingScores
    queries: int
    documents: int
    run: RunStats

    @property
    def score(self) -> float:
        return self.scores.at(self.metric)

    def at(self, metric: str) -> float:
        """``"recall@1"``, ``"mrr@10"``, ``"ndcg@5"``... (a ``k`` that was evaluated)."""
        return self.scores.at(metric)

    def _repr_html_(self) -> str:
        return _html.result(self, "RetrievalResult", self.to_frame)

    def to_frame(self) -> pd.DataFrame:
        """One row per ``k``: ``recall``, ``mrr``, ``ndcg``."""
        s = self.scores
        return to_frame(
            [
                {"k": k, "recall": r, "mrr": m, "ndcg": n}
                for k, r, m, n in zip(s.k, s.recall, s.mrr, s.ndcg, strict=True)
            ],
            index="k",
        )


def evaluate_retrieval(
    model: ModelLike,
    queries: Sequence[str],
    corpus: Sequence[str],
    relevant: Sequence[Collection[Id]],
    *,
    ids: Sequence[Id] | None = None,
    k: int | Sequence[int] = DEFAULT_K,
    metric: str | None = None,
    cache: CacheOption = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool | None = None,
    task: str = "retrieval",
) -> RetrievalResult:
    """Index ``corpus`` with ``model``, search every query, score the hits.

    ``relevant[q]``: the ids of the documents relevant to ``queries[q]``; ids are
    ``ids`` (default: positions in ``corpus``). ``metric`` names the headline score
    (default ``"mrr@<max k>"``).
    """
    ks = _check_ks(k)
    metric = metric if metric is not None else f"mrr@{ks[-1]}"
    parse_metric(metric, ks)
    if isinstance(queries, str) or isinstance(corpus, str):
        raise ConfigError("queries and corpus must be sequences of texts, not one string")
    if len(relevant) != len(queries):
        raise ConfigError(f"{len(queries)} queries but {len(relevant)} relevance sets")
    doc_ids: list[Id] = list(range(len(corpus))) if ids is None else list(ids)
    known = set(doc_ids)
    for q, rel in enumerate(relevant):
        if isinstance(rel, (str, bytes)) or not rel:
            raise ConfigError(f"query {q}: relevant must be a non-empty collection of ids")
        unknown = [r for r in rel if r not in known]
        if unknown:
            raise ConfigError(f"query {q}: relevant ids {unknown[:5]!r} are not in the corpus")
    vectors, docs_run, embedder = embed_timed(
        corpus, model, cache=cache, batch_size=batch_size, progress=progress, desc="corpus"
    )
    index = VectorIndex.from_vectors(vectors, ids=doc_ids, spec=docs_run.spec)
    index.use_embedder(embedder)
    start = time.perf_counter()
    hits = index.search_batch(list(queries), min(ks[-1], len(index)))
    seconds = time.perf_counter() - start  # queries are embedded by the search seam, uncached
    searched = RunStats(docs_run.spec, docs_run.dim, len(queries), 0, len(queries), seconds)
    scores = ranking_scores([[h.id for h in row] for row in hits], relevant, ks)
    return RetrievalResult(task, metric, scores, len(queries), len(corpus), docs_run + searched)


@dataclass(frozen=True)
class RetrievalTask:
    """Queries, a corpus and relevance labels, scored by :func:`evaluate_retrieval`."""

    name: str
    queries: tuple[str, ...]
    corpus: tuple[str, ...]
    relevant: tuple[frozenset[Id], ...]
    ids: tuple[Id, ...] | None = None
    k: tuple[int, ...] = DEFAULT_K
    metric: str = "mrr@10"

    def __post_init__(self) -> None:
        parse_metric(self.metric, _check_ks(self.k))

    def __len__(self) -> int:
        return len(self.queries)

    def evaluate(
        self,
        model: ModelLike,
        *,
        cache: CacheOption = True,
        batch_size: int = DEFAULT_BATCH_SIZE,
        progress: bool | None = None,
    ) -> RetrievalResult:
        return evaluate_retrieval(
            model,
            self.queries,
            self.corpus,
            self.relevant,
            ids=self.ids,
            k=self.k,
            metric=self.metric,
            cache=cache,
            batch_size=batch_size,
            progress=progress,
            task=self.name,
        )


def parse_metric(metric: str, ks: Sequence[int]) -> tuple[str, int]:
    """``"mrr@10"`` -> ``("mrr", 10)``; the name must be a metric and ``k`` evaluated."""
    name, _, k = str(metric).partition("@")
    if name not in METRICS or not k.isdigit() or int(k) not in ks:
        raise ConfigError(
            f"metric must be recall@k, mrr@k or ndcg@k with k in {list(ks)}, got {metric!r}"
        )
    return name, int(k)


def _check_ks(k: int | Sequence[int]) -> tuple[int, ...]:
    values = [k] if isinstance(k, (int, np.integer)) else list(k)
    if not values:
        raise ConfigError("k must name at least one cut-off")
    return tuple(sorted({check_size("k", v) for v in values}))
