"""Cosine similarity and exact top-k search on float32 matrices.

Array contracts (``a``: ``(n, d)``, ``b``: ``(m, d)``; 1-D inputs count as one row):

* ``normalize(a)[i] = a[i] / ||a[i]||``; a zero row stays zero (never NaN).
* ``cosine_similarity(a, b)[i, j] = cos(a[i], b[j])``, shape ``(n, m)``, float32;
  the similarity of anything with a zero vector is defined as ``0.0``.
* ``top_k(scores, k)``: per row, the ``k`` largest scores, best first; ties go to
  the lower column index, so results are deterministic.
* ``search(queries, matrix, k)``: ``top_k(queries @ matrix.T, k)`` computed in
  blocks so that at most ``block_bytes`` of scores exist at once.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from embedkit.errors import DimensionMismatchError

__all__ = ["TopK", "cosine_similarity", "normalize", "search", "top_k"]

DEFAULT_BLOCK_BYTES = 64 * 2**20


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


def normalize(x: ArrayLike) -> NDArray[np.float32]:
    """Rows scaled to unit L2 norm; zero rows stay zero. Shape ``(n, d)``, float32."""
    arr = as_matrix(x)
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    np.maximum(norms, np.finfo(np.float32).tiny, out=norms)
    out: NDArray[np.float32] = arr / norms
    return out


def cosine_similarity(a: ArrayLike, b: ArrayLike) -> NDArray[np.float32]:
    """``res[i, j] = cos(a[i], b[j])``, shape ``(n, m)``; 0.0 where either row is zero."""
    an, bn = normalize(a), normalize(b)
    if an.shape[1] != bn.shape[1]:
        raise DimensionMismatchError(f"dimensions differ: {an.shape[1]} vs {bn.shape[1]}")
    res: NDArray[np.float32] = an @ bn.T
    return res


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


def search(
    queries: ArrayLike,
    matrix: NDArray[np.float32],
    k: int,
    *,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
) -> TopK:
    """Exact top-k of ``queries @ matrix.T`` in bounded memory.

    ``queries``: ``(q, d)``; ``matrix``: ``(n, d)`` (normalise both first for cosine).
    At most ``block_bytes`` of float32 scores are alive at once: the rows of
    ``matrix`` are visited in blocks, each block keeps its own top-k, and the
    candidates are merged. Results equal ``top_k(queries @ matrix.T, k)``.
    """
    qm = as_matrix(queries, "queries")
    if qm.shape[1] != matrix.shape[1]:
        raise DimensionMismatchError(
            f"query dimension {qm.shape[1]} != index dimension {matrix.shape[1]}"
        )
    n = matrix.shape[0]
    k = min(int(k), n)
    q = qm.shape[0]
    if k <= 0 or q == 0:
        return TopK(np.empty((q, 0), np.int64), np.empty((q, 0), np.float32))
    q_block = max(1, min(q, block_bytes // (4 * max(k, 1) * 64)))
    out_idx = np.empty((q, k), np.int64)
    out_val = np.empty((q, k), np.float32)
    for q0 in range(0, q, q_block):
        qb = qm[q0 : q0 + q_block]
        rows = max(k, block_bytes // (4 * qb.shape[0]))
        cand_idx: list[NDArray[np.int64]] = []
        cand_val: list[NDArray[np.float32]] = []
        for r0 in range(0, n, rows):
            block = np.asarray(matrix[r0 : r0 + rows], dtype=np.float32)
            found = top_k(qb @ block.T, k)
            cand_idx.append(found.indices + r0)
            cand_val.append(found.scores)
        if len(cand_idx) == 1:
            out_idx[q0 : q0 + q_block], out_val[q0 : q0 + q_block] = cand_idx[0], cand_val[0]
            continue
        all_idx = np.concatenate(cand_idx, axis=1)
        merged = _merge(np.concatenate(cand_val, axis=1), all_idx, k)
        out_idx[q0 : q0 + q_block], out_val[q0 : q0 + q_block] = merged
    return TopK(out_idx, out_val)


def _merge(vals: NDArray[np.float32], idx: NDArray[np.int64], k: int) -> TopK:
    order = np.lexsort((idx, -vals), axis=1)[:, :k]
    return TopK(np.take_along_axis(idx, order, axis=1), np.take_along_axis(vals, order, axis=1))
