"""Cosine similarity and exact top-k search on float32 matrices.

Array contracts (``a``: ``(n, d)``, ``b``: ``(m, d)``; 1-D inputs count as one row):

* ``normalize(a)[i] = a[i] / ||a[i]||``; a zero row stays zero (never NaN).
* ``cosine_similarity(a, b)[i, j] = cos(a[i], b[j])``, shape ``(n, m)``, float32;
  the similarity of anything with a zero vector is defined as ``0.0``.
* ``top_k(scores, k)``: per row, the ``k`` largest scores, best first; ties go to
  the lower column index, so results are deterministic.
* ``search(queries, matrix, k)``: ``top_k(queries @ matrix.T, k)`` computed in
  blocks so that at most ``block_bytes`` of scores exist at once.

How ``search`` stays fast and exact: ``matrix`` is read in blocks, one matrix
product per block (``(b, q)`` scores, at most ``block_bytes``), so the BLAS runs
at full speed and a memory-mapped matrix is streamed. Instead of an
``argpartition`` over every score, each block's rows are cut into groups of
``GROUP_ROWS``: one cheap pass takes each group's maximum per query, and only the
k groups with the highest maxima can hold that query's top k (when k groups'
maxima are ``>= t``, at least k scores are ``>= t``), so only ``k * GROUP_ROWS``
scores per query are ranked. Queries whose k-th group maximum is tied fall back
to ranking their whole column, so ties still go to the lower row index. A helper
thread ranks one block while the next product runs (numpy releases the GIL), and
block results are merged into a running top-k.

Scores come from float32 matrix products whose rounding depends on the block
shape: they may differ from ``queries @ matrix.T`` in the last bits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from embedkit.errors import DimensionMismatchError

if TYPE_CHECKING:
    from concurrent.futures import Future

__all__ = ["TopK", "cosine_similarity", "normalize", "search", "top_k"]

DEFAULT_BLOCK_BYTES = 64 * 2**20
# Scores computed by one matrix product (at most ``block_bytes``): large enough that
# the BLAS runs efficiently and is called rarely, small enough to stay in cache.
STEP_BYTES = 16 * 2**20
# A batch of queries is cut into chunks so that one product covers at least this
# many rows of ``matrix``.
MIN_BLOCK_ROWS = 4096
# Rows per group: a query's top k rows lie in the k groups with the highest maxima.
GROUP_ROWS = 16


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
    # Squares summed in float64: float32 would overflow for entries near 1e20 and
    # underflow to a zero norm for entries near 1e-20.
    norms = np.sqrt(np.einsum("ij,ij->i", arr, arr, dtype=np.float64)).astype(np.float32)
    norms[norms == 0] = 1.0
    out: NDArray[np.float32] = arr / norms[:, None]
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

    ``queries``: ``(q, d)`` or ``(d,)``; ``matrix``: ``(n, d)`` float32, in RAM or a
    ``np.memmap`` (normalise both first for cosine; scores must be finite).
    Returns ``TopK`` of shape ``(q, min(k, n))`` equal to
    ``top_k(queries @ matrix.T, k)``: best first, ties to the lower row index.
    At most ``block_bytes`` of float32 scores exist at once (a whole ``(q, n)``
    score matrix never does unless it fits); ranking them needs temporaries of
    at most about the same size.
    """
    qm = as_matrix(queries, "queries")
    if matrix.ndim != 2 or qm.shape[1] != matrix.shape[1]:
        raise DimensionMismatchError(
            f"query dimension {qm.shape[1]} != index dimension "
            f"{matrix.shape[1] if matrix.ndim == 2 else matrix.shape}"
        )
    n = matrix.shape[0]
    q = qm.shape[0]
    k = max(0, min(int(k), n))
    if k == 0 or q == 0:
        return TopK(np.empty((q, k), np.int64), np.empty((q, k), np.float32))
    # float32 scores per product; two blocks exist at once (one ranked, one computed)
    step = max(1, min(int(block_bytes) // 2, STEP_BYTES) // 4)
    q_chunk = max(1, min(q, step // min(n, MIN_BLOCK_ROWS)))
    rows = max(1, step // q_chunk)
    out_idx = np.empty((q, k), np.int64)
    out_val = np.empty((q, k), np.float32)
    for q0 in range(0, q, q_chunk):
        best = _search_chunk(qm[q0 : q0 + q_chunk], matrix, k, rows)
        out_idx[q0 : q0 + q_chunk], out_val[q0 : q0 + q_chunk] = best
    return TopK(out_idx, out_val)


def _search_chunk(qb: NDArray[np.float32], matrix: NDArray[np.float32], k: int, rows: int) -> TopK:
    """Top-k of ``qb @ matrix.T``, one ``(rows, q)`` score block at a time.

    While a helper thread ranks one block, this thread computes the next product
    (numpy releases the GIL in both), so two score blocks exist at a time. Each
    query keeps its running k-th best score ``t`` (from lower rows): a later row
    can enter its top k only with a score ``> t`` (an equal score loses the tie to
    the lower row), so a block is ranked only for the queries whose block maximum
    beats ``t``; the rest cost one group-maximum pass. Exact, same tie rule.
    """
    from concurrent.futures import ThreadPoolExecutor  # here: keeps `import embedkit` fast

    nq, n = qb.shape[0], matrix.shape[0]
    if rows >= n:
        return _block_top_k(np.asarray(matrix, dtype=np.float32) @ qb.T, k)[1]
    best = TopK(np.full((nq, k), n, np.int64), np.full((nq, k), -np.inf, np.float32))
    pending: list[tuple[int, Future[tuple[NDArray[np.int64], TopK]]]] = []
    with ThreadPoolExecutor(1, thread_name_prefix="embedkit-rank") as ranker:
        for r0 in range(0, n, rows):
            block = np.asarray(matrix[r0 : r0 + rows], dtype=np.float32)
            scores = block @ qb.T  # (b, q): rows of the block by queries
            if pending:
                _merge(best, *pending.pop())
            above = best.scores[:, -1].copy()
            pending.append((r0, ranker.submit(_block_top_k, scores, k, above)))
        _merge(best, *pending.pop())
    return best


def _merge(best: TopK, offset: int, future: Future[tuple[NDArray[np.int64], TopK]]) -> None:
    """Merge a block's top-k (rows from ``offset``) into ``best`` in place: ties to the lower row."""
    active, found = future.result()
    if not active.size:
        return
    k = best.indices.shape[1]
    vals = np.concatenate([best.scores[active], found.scores], axis=1)
    idx = np.concatenate([best.indices[active], found.indices + offset], axis=1)
    order = np.lexsort((idx, -vals), axis=1)[:, :k]
    best.indices[active] = np.take_along_axis(idx, order, axis=1)
    best.scores[active] = np.take_along_axis(vals, order, axis=1)


def _block_top_k(
    scores: NDArray[np.float32], k: int, above: NDArray[np.float32] | None = None
) -> tuple[NDArray[np.int64], TopK]:
    """``(active, top_k(scores[:, active].T, k))`` for a ``(b, q)`` block.

    ``active``: the queries with some score ``> above[q]`` (all of them when
    ``above`` is ``None``); rows of the result follow ``active``. The block's rows
    are cut into groups of ``GROUP_ROWS``. If the k-th largest group maximum of a
    query is ``t``, at least k scores are ``>= t``, so every top-k score lies in a
    group whose maximum is ``>= t``; when exactly k groups reach ``t`` (no tie),
    only their ``k * GROUP_ROWS`` scores need a ``top_k``. Queries with tied group
    maxima get the plain ``top_k`` of their whole column.
    """
    b, nq = scores.shape
    g = GROUP_ROWS
    groups = b // g
    everyone = np.arange(nq, dtype=np.int64)
    if groups <= 2 * k or nq == 1:  # one query: argpartition is cheap next to the product
        return everyone, top_k(scores.T, k)
    maxima = scores[: groups * g].reshape(groups, g, nq).max(axis=1).T  # (nq, groups)
    if groups * g < b:  # the last rows form a shorter group
        tail = scores[groups * g :].max(axis=0)[:, None]
        maxima = np.concatenate([maxima, tail], axis=1)
    if above is None:
        active = everyone
    else:
        active = np.flatnonzero(maxima.max(axis=1) > above).astype(np.int64)
        if not active.size:
            return active, TopK(np.empty((0, k), np.int64), np.empty((0, k), np.float32))
    m = np.ascontiguousarray(maxima if above is None else maxima[active])
    na = active.size
    chosen = np.sort(np.argpartition(-m, k - 1, axis=1)[:, :k], axis=1)
    kth = np.take_along_axis(m, chosen, axis=1).min(axis=1)
    rows = (chosen[:, :, None] * g + np.arange(g)).reshape(na, k * g)
    beyond = rows >= b  # past the end of a shorter last group
    flat = np.minimum(rows, b - 1) * nq + active[:, None]
    cand = np.take(scores.reshape(-1), flat)
    cand[beyond] = -np.inf
    found = top_k(cand, k)
    out = TopK(np.take_along_axis(rows, found.indices, axis=1), found.scores)
    tied = np.flatnonzero((m >= kth[:, None]).sum(axis=1) > k)
    step = max(1, nq // 4)  # a quarter of the block at a time bounds the temporaries
    for t0 in range(0, tied.size, step):
        some = tied[t0 : t0 + step]
        exact = top_k(scores[:, active[some]].T, k)
        out.indices[some], out.scores[some] = exact.indices, exact.scores
    return active, out
