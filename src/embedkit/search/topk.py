"""Top-k selection: of a score matrix, and of score blocks merged into a running top-k.

Array contracts (``scores``: ``(q, n)``, or ``(n,)`` as one row):

* ``top_k(scores, k)``: per row, the ``k`` largest scores, best first; ties go to
  the lower column index, so results are deterministic.
* ``merge_block(best, offset, block, k)``: ``best`` (``(q, k)``, best first, rows
  below ``offset``) becomes the top-k of itself and the ``(b, q)`` score block of
  rows ``offset ... offset + b - 1``; same tie rule (the lower row first).

How a block is ranked without an ``argpartition`` over every score: its rows are
cut into groups of ``GROUP_ROWS`` (``FEW_GROUP_ROWS`` for k <= 2) and one pass
takes each group's maximum per query; only groups whose maximum beats the
query's running k-th best score (from lower rows) can add a row, and only groups
reaching the block's k-th largest group maximum can hold the block's top k (ties
included), so about ``k`` groups of scores per query are ranked.
:func:`embedkit.search.kernels.search` computes the blocks.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from embedkit.errors import DimensionMismatchError

__all__ = ["TopK", "as_matrix", "merge_block", "top_k"]

# Rows per group: a query's top k rows lie in the k groups with the highest maxima.
# Larger groups make the maxima cheaper to scan but rank more scores (k groups):
# 32 for k <= 2 (5% faster than 16 for k = 1, measured), else 16.
GROUP_ROWS = 16
FEW_GROUP_ROWS = 32
# Below this many queries a block is ranked by argpartition (the group pass needs width).
MIN_GROUP_QUERIES = 8
# Threads computing and ranking blocks side by side (BLAS on one thread each).


class TopK(NamedTuple):
    """``indices[q, r]`` is the r-th best column for row q; ``scores`` holds its score."""

    indices: NDArray[np.int64]
    scores: NDArray[np.float32]


def as_matrix(x: ArrayLike, name: str = "array") -> NDArray[np.float32]:
    """``x`` as a 2-D float32 array (a 1-D vector becomes one row)."""
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise DimensionMismatchError(f"{name} must be 1-D or 2-D, got shape {arr.shape}")
    return arr


def top_k(scores: ArrayLike, k: int) -> TopK:
    """The ``k`` best columns of each row of ``scores`` (``(q, n)`` or ``(n,)``).

    Uses ``argpartition`` (O(n) per row) and sorts only the ``k`` winners. Result
    shapes are ``(q, min(k, n))``; ties are broken by the lower column index.
    """
    s = as_matrix(scores, "scores")
    q, n = s.shape
    k = min(int(k), n)
    if k <= 0:
        return TopK(np.empty((q, 0), np.int64), np.empty((q, 0), np.float32))
    if k < n:
        idx = np.argpartition(-s, k - 1, axis=1)[:, :k]
        idx = _fix_boundary_ties(s, idx)
    else:
        idx = np.broadcast_to(np.arange(n), (q, n)).copy()
    vals = np.take_along_axis(s, idx, axis=1)
    order = np.lexsort((idx, -vals), axis=1)
    idx = np.take_along_axis(idx, order, axis=1).astype(np.int64, copy=False)
    return TopK(idx, np.take_along_axis(vals, order, axis=1))


def _fix_boundary_ties(s: NDArray[np.float32], idx: NDArray[Any]) -> NDArray[Any]:
    """Where the k-th score is tied with unselected columns, keep the lowest indices."""
    k = idx.shape[1]
    kth = np.take_along_axis(s, idx, axis=1).min(axis=1)
    tied_total = (s == kth[:, None]).sum(axis=1)
    tied_taken = (np.take_along_axis(s, idx, axis=1) == kth[:, None]).sum(axis=1)
    for row in np.flatnonzero(tied_total > tied_taken):
        above = np.flatnonzero(s[row] > kth[row])
        ties = np.flatnonzero(s[row] == kth[row])[: k - above.size]
        idx[row] = np.concatenate([above, ties])
    return idx


def merge_block(best: TopK, offset: int, scores: NDArray[np.float32], k: int) -> None:
    """Merge the top-k of a ``(b, q)`` score block (rows from ``offset``) into ``best``."""
    if k == 1 and by_groups(scores.shape[0], scores.shape[1], k):
        best_of_block(best, offset, scores)
        return
    active, found = block_top_k(scores, k, best.scores[:, -1].copy())
    if not active.size:
        return
    vals = np.concatenate([best.scores[active], found.scores], axis=1)
    idx = np.concatenate([best.indices[active], found.indices + offset], axis=1)
    order = np.lexsort((idx, -vals), axis=1)[:, :k]  # ties: the lower row first
    best.indices[active] = np.take_along_axis(idx, order, axis=1)
    best.scores[active] = np.take_along_axis(vals, order, axis=1)


def best_of_block(best: TopK, offset: int, scores: NDArray[np.float32]) -> None:
    """k = 1: where a query's best score in the ``(b, q)`` block beats ``best`` (strictly:
    ``best`` holds lower rows), its first row with that score replaces it.

    The group maxima give each query's block maximum and the first group holding
    it; only that group's scores are searched for the first row equal to it.
    """
    b, nq = scores.shape
    g = group_rows(1)
    maxima = np.empty((-(-b // g), nq), np.float32)
    group_maxima(scores, maxima, g)
    top = maxima.max(axis=0)
    active = np.flatnonzero(top > best.scores[:, 0])
    if not active.size:
        return
    peak = top[active]
    group = np.argmax(maxima[:, active] == peak, axis=0)  # the first group reaching it
    rows = group[:, None] * g + np.arange(g)
    # rows past a short last group read its last row again: after its real place
    first = np.argmax(scores[np.minimum(rows, b - 1), active[:, None]] == peak[:, None], axis=1)
    best.indices[active, 0] = offset + group * g + first
    best.scores[active, 0] = peak


def by_groups(b: int, nq: int, k: int) -> bool:
    """Whether a ``(b, nq)`` block is ranked by group maxima (else by argpartition,
    cheap enough for few groups or few queries: the group pass needs width)."""
    return -(-b // group_rows(k)) > 2 * k and nq >= MIN_GROUP_QUERIES


def group_rows(k: int) -> int:
    """Rows per group when ranking the top ``k`` by group maxima."""
    return FEW_GROUP_ROWS if k <= 2 else GROUP_ROWS


def group_maxima(scores: NDArray[np.float32], out: NDArray[np.float32], g: int) -> None:
    """``out[j, q] = max(scores[j * g : (j + 1) * g, q])`` for each group of ``g`` rows
    of the ``(b, q)`` block (the last one may be shorter)."""
    b, nq = scores.shape
    full = b // g
    np.max(scores[: full * g].reshape(full, g, nq), axis=1, out=out[:full])
    if full * g < b:
        np.max(scores[full * g :], axis=0, out=out[full])


def block_top_k(
    scores: NDArray[np.float32], k: int, above: NDArray[np.float32] | None = None
) -> tuple[NDArray[np.int64], TopK]:
    """``(active, found)`` for a ``(b, q)`` block: what may enter each query's top k.

    ``active``: the queries with some score ``> above[q]`` (all of them when
    ``above`` is ``None``). ``found`` (rows follow ``active``, ``k`` columns, row
    indices of the block, best first, ties to the lower row) holds every score
    ``> above[q]`` of the block's top k, padded with ``-inf`` where fewer are
    looked at. How: the block's rows are cut into groups (``group_rows(k)`` rows) and
    one pass takes each group's maximum per query. Only groups whose maximum is
    ``> above[q]`` can add a row. And if the k-th largest group maximum of a
    query is ``t``, at least k scores are ``>= t``, so its top k lies in groups
    whose maximum is ``>= t`` (ties included). The scores of the groups passing
    both tests are gathered and ranked: typically ``k`` groups per query.
    """
    b, nq = scores.shape
    g = group_rows(k)
    groups = -(-b // g)
    everyone = np.arange(nq, dtype=np.int64)
    if not by_groups(b, nq, k):
        if above is None:
            return everyone, top_k(scores.T, k)
        active = np.flatnonzero(scores.max(axis=0) > above).astype(np.int64)
        return active, top_k(scores[:, active].T, k)
    maxima = np.empty((groups, nq), np.float32)
    group_maxima(scores, maxima, g)
    if above is None:
        active = everyone
        m = np.ascontiguousarray(maxima.T)  # (queries, groups)
    else:  # the active queries first (a pass over the maxima), then only their groups
        active = np.flatnonzero(maxima.max(axis=0) > above).astype(np.int64)
        if not active.size:
            return active, TopK(np.empty((0, k), np.int64), np.empty((0, k), np.float32))
        m = maxima.T[active]  # (active queries, groups)
        passing = m > above[active, None]
        many = np.flatnonzero(passing.sum(axis=1) > k)
    if above is None or many.size:  # keep only the groups reaching the k-th group maximum
        sub = m if above is None else m[many]
        reach = sub >= np.partition(sub, groups - k, axis=1)[:, groups - k : groups - k + 1]
        if above is None:
            passing = reach
        else:
            passing[many] &= reach
    width = int(passing.sum(axis=1).max())
    # per active query, its passing groups in row order, padded with group ``groups``
    chosen = np.full((active.size, width), groups, np.int64)
    q_of, g_of = np.nonzero(passing)
    starts = np.searchsorted(q_of, np.arange(active.size))
    chosen[q_of, np.arange(q_of.size) - starts[q_of]] = g_of
    rows = (chosen[:, :, None] * g + np.arange(g)).reshape(active.size, width * g)
    beyond = rows >= b  # padding, or past the end of a shorter last group
    cand = scores[np.minimum(rows, b - 1), active[:, None]]
    cand[beyond] = -np.inf
    found = top_k(cand, k)
    return active, TopK(np.take_along_axis(rows, found.indices, axis=1), found.scores)
