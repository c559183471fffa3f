"""Cosine similarity and exact top-k search on float32 matrices.

Array contracts (``a``: ``(n, d)``, ``b``: ``(m, d)``; 1-D inputs count as one row):

* ``normalize(a)[i] = a[i] / ||a[i]||``; a zero row stays zero (never NaN).
* ``cosine_similarity(a, b)[i, j] = cos(a[i], b[j])``, shape ``(n, m)``, float32;
  the similarity of anything with a zero vector is defined as ``0.0``.
* ``top_k(scores, k)``: per row, the ``k`` largest scores, best first; ties go to
  the lower column index, so results are deterministic.
* ``search(queries, matrix, k)``: ``top_k(queries @ matrix.T, k)`` computed in
  blocks so that at most ``block_bytes`` of scores exist at once; with
  ``exclude``, the scores of the rows ``exclude[q]`` count as ``-inf`` for query ``q``.

How ``search`` stays fast and exact: ``matrix`` is read in blocks, one matrix
product per block (``(b, q)`` scores into a reused buffer), so the BLAS runs at
full speed and a memory-mapped matrix is streamed. Instead of an
``argpartition`` over every score, each block's rows are cut into groups of
``GROUP_ROWS`` (``FEW_GROUP_ROWS`` for k <= 2): one pass takes each group's maximum per query; only groups whose
maximum beats the query's running k-th best score (from lower rows) can add a
row, and only groups reaching the block's k-th largest group maximum can hold
the block's top k (ties included), so about ``k`` groups of scores per query
are ranked, ties to the lower row index. A batch runs one worker per core (with
threadpoolctl: the BLAS on one thread each, while the batch runs), each taking
the next block, computing and ranking it into its own running top-k; the
workers' results are merged at the end.

Scores come from float32 matrix products whose rounding depends on the block
shape: they may differ from ``queries @ matrix.T`` in the last bits.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from embedkit.errors import ConfigError, DimensionMismatchError

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

__all__ = ["TopK", "cosine_similarity", "normalize", "search", "top_k"]

DEFAULT_BLOCK_BYTES = 64 * 2**20
# Scores computed by one matrix product (at most ``block_bytes``): large enough that
# the BLAS runs efficiently and is called rarely, small enough to stay in cache.
STEP_BYTES = 16 * 2**20
# A batch of queries is cut into chunks so that one product covers at least this
# many rows of ``matrix``.
MIN_BLOCK_ROWS = 4096
# Rows per group: a query's top k rows lie in the k groups with the highest maxima.
# Larger groups make the maxima cheaper to scan but rank more scores (k groups):
# 32 for k <= 2 (5% faster than 16 for k = 1, measured), else 16.
GROUP_ROWS = 16
FEW_GROUP_ROWS = 32
# Below this many queries a block is ranked by argpartition (the group pass needs width).
MIN_GROUP_QUERIES = 8
# Threads computing and ranking blocks side by side (BLAS on one thread each).
MAX_WORKERS = 8


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
    if arr.shape[0] == 1:  # one query: a plain dot product costs less than einsum's set-up
        wide = arr[0].astype(np.float64)
        norms = np.sqrt(np.array([wide @ wide])).astype(np.float32)
    else:
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
    exclude: NDArray[np.int64] | None = None,
) -> TopK:
    """Exact top-k of ``queries @ matrix.T`` in bounded memory.

    ``queries``: ``(q, d)`` or ``(d,)``; ``matrix``: ``(n, d)`` float32, in RAM or a
    ``np.memmap`` (normalise both first for cosine; scores must be finite).
    Returns ``TopK`` of shape ``(q, min(k, n))`` equal to
    ``top_k(queries @ matrix.T, k)``: best first, ties to the lower row index.
    At most ``block_bytes`` of float32 scores exist at once (a whole ``(q, n)``
    score matrix never does unless it fits); ranking them needs temporaries of
    at most about the same size.

    ``exclude``: ``(q, e)`` int64 rows left out per query (values outside
    ``[0, n)`` are ignored, e.g. ``-1`` as padding): their scores count as
    ``-inf``, so they are never ranked above a row that is left in. Leaving
    rows out in the kernel keeps ``k`` small (the work grows with ``k``). Where
    fewer than ``k`` rows are left to a query, its last columns score ``-inf``
    (their indices mean nothing).
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
    if exclude is not None and not (
        isinstance(exclude, np.ndarray) and exclude.dtype == np.int64 and exclude.shape[:1] == (q,)
        and exclude.ndim == 2
    ):  # fmt: skip
        got = (
            f"{exclude.dtype} {exclude.shape}" if isinstance(exclude, np.ndarray) else type(exclude)
        )
        raise ConfigError(f"exclude must be a 2-D int64 array of {q} rows, got {got}")
    if k == 0 or q == 0:
        return TopK(np.empty((q, k), np.int64), np.empty((q, k), np.float32))
    workers = _workers() if q > 1 else 1
    # float32 scores per product: one block per worker exists at a time
    step = max(1, min(int(block_bytes) // workers, STEP_BYTES) // 4)
    q_chunk = max(1, min(q, step // min(n, MIN_BLOCK_ROWS)))
    rows = max(1, step // q_chunk)
    blocks = -(-n // rows)
    if workers > 1 and blocks > 1:  # a multiple of the workers, so that they finish together
        blocks = -(-blocks // workers) * workers
        rows = -(-n // blocks)
    else:
        workers = 1
    out_idx = np.empty((q, k), np.int64)
    out_val = np.empty((q, k), np.float32)
    with _Workers(workers) as pool:
        for q0 in range(0, q, q_chunk):
            left_out = None if exclude is None else exclude[q0 : q0 + q_chunk]
            best = _search_chunk(qm[q0 : q0 + q_chunk], matrix, k, rows, pool, left_out)
            out_idx[q0 : q0 + q_chunk], out_val[q0 : q0 + q_chunk] = best
    return TopK(out_idx, out_val)


def _workers() -> int:
    """Threads that each compute and rank their own blocks (BLAS on one thread each)."""
    if _blas_limiter() is None:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cores or 1, MAX_WORKERS))


_LIMITER: list[Any] = []
_LIMIT_LOCK = threading.Lock()
_LIMIT_STATE: dict[str, Any] = {"users": 0, "limit": None}


def _blas_limiter() -> Any:
    """threadpoolctl's controller (created once), or ``None`` without threadpoolctl."""
    with _LIMIT_LOCK:
        if not _LIMITER:
            try:
                from threadpoolctl import ThreadpoolController
            except ImportError:
                _LIMITER.append(None)
            else:
                _LIMITER.append(ThreadpoolController())
    return _LIMITER[0]


class _Workers:
    """A pool of ``n`` threads, the BLAS limited to one thread while it is open (n > 1).

    The limit is process-wide (it is the BLAS's own setting): searches running at
    once share it, the first one sets it and the last one restores the original.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.pool: ThreadPoolExecutor | None = None

    def __enter__(self) -> _Workers:
        if self.n > 1:
            from concurrent.futures import ThreadPoolExecutor  # here: keeps `import embedkit` fast

            with _LIMIT_LOCK:
                if not _LIMIT_STATE["users"]:
                    _LIMIT_STATE["limit"] = _LIMITER[0].limit(limits=1, user_api="blas")
                _LIMIT_STATE["users"] += 1
            self.pool = ThreadPoolExecutor(self.n, thread_name_prefix="embedkit-search")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown()
            with _LIMIT_LOCK:
                _LIMIT_STATE["users"] -= 1
                if not _LIMIT_STATE["users"]:
                    _LIMIT_STATE["limit"].restore_original_limits()
                    _LIMIT_STATE["limit"] = None


def _search_chunk(
    qb: NDArray[np.float32],
    matrix: NDArray[np.float32],
    k: int,
    rows: int,
    pool: _Workers,
    exclude: NDArray[np.int64] | None,
) -> TopK:
    """Top-k of ``qb @ matrix.T``, one ``(rows, q)`` score block at a time.

    With ``pool.n`` workers, each takes the next block not yet taken, computes its
    product on one BLAS thread and ranks it into its own running top-k; the
    workers' top-k are merged at the end. So every core computes and ranks at
    once: a product on all cores followed by ranking was measured slower (the
    BLAS threads spin between products, and ranking in a thread beside a
    product stalls its statically split work). Each worker keeps per query its
    running k-th best score ``t`` (from lower rows: a worker's blocks come in row
    order): a later row can enter its top k only with a score ``> t`` (an equal
    score loses the tie to the lower row), so only the groups of rows whose
    maximum beats ``t`` are looked at. Exact, same tie rule.
    """
    nq, n = qb.shape[0], matrix.shape[0]
    if rows >= n:
        scores = np.asarray(matrix, dtype=np.float32) @ qb.T
        _leave_out(scores, 0, exclude)
        return _block_top_k(scores, k)[1]
    starts = iter(range(0, n, rows))  # shared: next() is atomic under the GIL

    def worker() -> TopK:
        best = TopK(np.full((nq, k), n, np.int64), np.full((nq, k), -np.inf, np.float32))
        buffer = np.empty((rows, nq), np.float32)  # reused: no fresh pages per block
        qt = qb.T
        for r0 in starts:
            block = np.asarray(matrix[r0 : r0 + rows], dtype=np.float32)
            scores = buffer[: block.shape[0]]  # (b, q): rows of the block by queries
            np.matmul(block, qt, out=scores)
            _leave_out(scores, r0, exclude)
            _rank_into(best, r0, scores, k)
        return best

    if pool.pool is None:
        return worker()
    found = [job.result() for job in [pool.pool.submit(worker) for _ in range(pool.n)]]
    vals = np.concatenate([f.scores for f in found], axis=1)
    idx = np.concatenate([f.indices for f in found], axis=1)
    order = np.lexsort((idx, -vals), axis=1)[:, :k]  # ties: the lower row first
    return TopK(np.take_along_axis(idx, order, axis=1), np.take_along_axis(vals, order, axis=1))


def _leave_out(scores: NDArray[np.float32], offset: int, exclude: NDArray[np.int64] | None) -> None:
    """``scores[r - offset, q] = -inf`` for each row ``r`` of ``exclude[q]`` in the
    ``(b, q)`` block of rows from ``offset``."""
    if exclude is None:
        return
    inside = (exclude >= offset) & (exclude < offset + scores.shape[0])
    q_of, e_of = np.nonzero(inside)
    scores[exclude[q_of, e_of] - offset, q_of] = -np.inf


def _rank_into(best: TopK, offset: int, scores: NDArray[np.float32], k: int) -> None:
    """Merge the top-k of a ``(b, q)`` score block (rows from ``offset``) into ``best``."""
    active, found = _block_top_k(scores, k, best.scores[:, -1].copy())
    if not active.size:
        return
    vals = np.concatenate([best.scores[active], found.scores], axis=1)
    idx = np.concatenate([best.indices[active], found.indices + offset], axis=1)
    order = np.lexsort((idx, -vals), axis=1)[:, :k]  # ties: the lower row first
    best.indices[active] = np.take_along_axis(idx, order, axis=1)
    best.scores[active] = np.take_along_axis(vals, order, axis=1)


def _group_rows(k: int) -> int:
    """Rows per group when ranking the top ``k`` by group maxima."""
    return FEW_GROUP_ROWS if k <= 2 else GROUP_ROWS


def _group_maxima(scores: NDArray[np.float32], out: NDArray[np.float32], g: int) -> None:
    """``out[j, q] = max(scores[j * g : (j + 1) * g, q])`` for each group of ``g`` rows
    of the ``(b, q)`` block (the last one may be shorter)."""
    b, nq = scores.shape
    full = b // g
    np.max(scores[: full * g].reshape(full, g, nq), axis=1, out=out[:full])
    if full * g < b:
        np.max(scores[full * g :], axis=0, out=out[full])


def _block_top_k(
    scores: NDArray[np.float32], k: int, above: NDArray[np.float32] | None = None
) -> tuple[NDArray[np.int64], TopK]:
    """``(active, found)`` for a ``(b, q)`` block: what may enter each query's top k.

    ``active``: the queries with some score ``> above[q]`` (all of them when
    ``above`` is ``None``). ``found`` (rows follow ``active``, ``k`` columns, row
    indices of the block, best first, ties to the lower row) holds every score
    ``> above[q]`` of the block's top k, padded with ``-inf`` where fewer are
    looked at. How: the block's rows are cut into groups (``_group_rows(k)`` rows) and
    one pass takes each group's maximum per query. Only groups whose maximum is
    ``> above[q]`` can add a row. And if the k-th largest group maximum of a
    query is ``t``, at least k scores are ``>= t``, so its top k lies in groups
    whose maximum is ``>= t`` (ties included). The scores of the groups passing
    both tests are gathered and ranked: typically ``k`` groups per query.
    """
    b, nq = scores.shape
    g = _group_rows(k)
    groups = -(-b // g)
    everyone = np.arange(nq, dtype=np.int64)
    if groups <= 2 * k or nq < MIN_GROUP_QUERIES:  # argpartition is cheap enough here
        if above is None:
            return everyone, top_k(scores.T, k)
        active = np.flatnonzero(scores.max(axis=0) > above).astype(np.int64)
        return active, top_k(scores[:, active].T, k)
    maxima = np.empty((groups, nq), np.float32)
    _group_maxima(scores, maxima, g)
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
