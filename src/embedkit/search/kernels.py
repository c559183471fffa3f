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
full speed and a memory-mapped matrix is streamed; each block is merged into a
running top-k by :func:`embedkit.search.topk.merge_block` (group maxima instead
of an ``argpartition`` over every score; ties to the lower row index). A batch
runs one worker per core (with threadpoolctl: the BLAS on one thread each, while
the batch runs), each taking the next block, computing and ranking it into its
own running top-k; the workers' results are merged at the end.

Scores come from float32 matrix products whose rounding depends on the block
shape: they may differ from ``queries @ matrix.T`` in the last bits.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from embedkit.errors import ConfigError, DimensionMismatchError
from embedkit.search.topk import TopK, as_matrix, block_top_k, merge_block, top_k

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
MAX_WORKERS = 8
FLOAT32_MAX = float(np.finfo(np.float32).max)


def normalize(x: ArrayLike) -> NDArray[np.float32]:
    """Rows scaled to unit L2 norm; zero rows stay zero. Shape ``(n, d)``, float32."""
    arr = as_matrix(x)
    # Squares summed in float64: float32 would overflow for entries near 1e20 and
    # underflow to a zero norm for entries near 1e-20.
    if arr.shape[0] == 1:  # one query: a plain dot product costs less than einsum's set-up
        wide = arr[0].astype(np.float64)
        exact = np.sqrt(np.array([wide @ wide]))
    else:
        exact = np.sqrt(np.einsum("ij,ij->i", arr, arr, dtype=np.float64))
    big = exact > FLOAT32_MAX  # a norm beyond float32 (entries near 3e38): divided in float64
    norms = np.where(big, 1.0, exact).astype(np.float32)
    norms[norms == 0] = 1.0
    out: NDArray[np.float32] = arr / norms[:, None]
    if big.any():
        out[big] = (arr[big] / exact[big, None]).astype(np.float32)
    return out


def cosine_similarity(a: ArrayLike, b: ArrayLike) -> NDArray[np.float32]:
    """``res[i, j] = cos(a[i], b[j])``, shape ``(n, m)``; 0.0 where either row is zero."""
    an, bn = normalize(a), normalize(b)
    if an.shape[1] != bn.shape[1]:
        raise DimensionMismatchError(f"dimensions differ: {an.shape[1]} vs {bn.shape[1]}")
    res: NDArray[np.float32] = an @ bn.T
    return res


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
        return block_top_k(scores, k)[1]
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
            merge_block(best, r0, scores, k)
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
