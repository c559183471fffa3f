"""Top-k over word vectors with rows left out: the query words of a search or an analogy.

Both functions rank with the one exact kernel (:func:`embedkit.search.kernels.search`,
or :func:`~embedkit.search.kernels.top_k` for 3CosMul's scores), keep its tie rule
(equal scores: the lower row first) and return a :class:`Ranked`: per query row
``q`` its ``counts[q]`` best rows, ``exclude[q]`` left out. No padding row (``-1``)
is ever produced: where fewer than ``k`` rows remain after the exclusions, a query
gets fewer results.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from embedkit.search.kernels import TopK, search, top_k

__all__ = ["COSMUL_EPS", "Neighbor", "Ranked", "cosmul", "search_excluding"]

COSMUL_EPS = 1e-6
COSMUL_BLOCK_BYTES = 64 * 2**20


@dataclass(frozen=True)
class Neighbor:
    """One search result: a word and its cosine score (or 3CosMul score)."""

    word: str
    score: float


@dataclass(frozen=True)
class Ranked:
    """``found.indices[q, :counts[q]]`` (and their scores) are the results of query ``q``.

    ``found`` has ``max(counts)`` columns; :meth:`top` gives the rectangular part.
    """

    found: TopK
    counts: NDArray[np.int64]

    def top(self) -> TopK:
        """The first ``min(counts)`` results of every query: a ``TopK`` with no padding."""
        width = int(self.counts.min()) if self.counts.size else 0
        return TopK(self.found.indices[:, :width], self.found.scores[:, :width])

    def neighbors(self, words: Sequence[str]) -> list[list[Neighbor]]:
        """Per query, its results as ``Neighbor(words[row], score)``, best first."""
        return [
            [Neighbor(words[i], s) for i, s in zip(idx[:c], val[:c], strict=True)]
            for idx, val, c in zip(
                self.found.indices.tolist(),
                self.found.scores.tolist(),
                self.counts.tolist(),
                strict=True,
            )
        ]


Exclude = Sequence[Sequence[int]] | NDArray[np.int64]


def _left_out(exclude: Exclude, n: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """``(rows, left)``: ``rows[q]`` the rows ``exclude[q]`` among the first ``n``, sorted,
    ``-1`` for padding and for rows outside ``[0, n)``; ``left[q]`` the rows left to
    query ``q`` (``n`` minus its distinct excluded rows)."""
    if isinstance(exclude, np.ndarray):
        rows = np.asarray(exclude, dtype=np.int64).reshape(exclude.shape[0], -1)
    else:
        rows = np.full((len(exclude), max((len(e) for e in exclude), default=0)), -1, np.int64)
        for q, items in enumerate(exclude):
            rows[q, : len(items)] = items
    rows = np.sort(np.where((rows >= 0) & (rows < n), rows, -1), axis=1)
    new = np.ones(rows.shape, dtype=bool)
    new[:, 1:] = rows[:, 1:] != rows[:, :-1]
    return rows, n - ((rows >= 0) & new).sum(axis=1)


def search_excluding(
    queries: NDArray[np.float32],
    matrix: NDArray[np.float32],
    k: int,
    exclude: Exclude,
) -> Ranked:
    """Top ``k`` rows of ``queries @ matrix.T`` per query, ``exclude[q]`` left out.

    The kernel leaves the rows out itself (``search(..., exclude=)``), so each
    query's results equal a search over ``matrix`` without its rows.
    """
    n = matrix.shape[0]
    k = max(0, min(int(k), n))
    rows, left = _left_out(exclude, n)
    counts = np.minimum(k, left)
    found = search(queries, matrix, k, exclude=rows)
    width = int(counts.max()) if counts.size else 0
    return Ranked(TopK(found.indices[:, :width], found.scores[:, :width]), counts)


def cosmul(
    normed: NDArray[np.float32],
    units: NDArray[np.float32],
    k: int,
    exclude: Exclude,
) -> Ranked:
    """3CosMul for ``units[q] = (N[a], N[b], N[c])`` over all rows of ``normed``.

    Scores ``s_b(i) s_c(i) / (s_a(i) + 1e-6)`` with ``s_x(i) = (1 + N[i] · x) / 2``,
    computed for blocks of queries (about 64 MiB of scores at a time); excluded rows
    score ``-inf`` and are never returned.
    """
    n, dim = normed.shape
    k = max(0, min(int(k), n))
    rows, left = _left_out(exclude, n)
    counts = np.minimum(k, left)
    width = int(counts.max()) if counts.size else 0
    block = max(1, COSMUL_BLOCK_BYTES // (4 * 3 * max(n, 1)))
    indices = np.empty((units.shape[0], width), np.int64)
    scores = np.empty((units.shape[0], width), np.float32)
    for q0 in range(0, units.shape[0], block):
        part = units[q0 : q0 + block]
        sims = (1.0 + (part.reshape(-1, dim) @ normed.T)) / 2.0
        sims = sims.reshape(part.shape[0], 3, n)
        value = sims[:, 1] * sims[:, 2] / (sims[:, 0] + COSMUL_EPS)
        q_of, e_of = np.nonzero(rows[q0 : q0 + block] >= 0)
        value[q_of, rows[q0 + q_of, e_of]] = -np.inf
        found = top_k(value, width)
        indices[q0 : q0 + block], scores[q0 : q0 + block] = found
    return Ranked(TopK(indices, scores), counts)
