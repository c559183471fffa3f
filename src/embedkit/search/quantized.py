"""Quantized stores: scan compressed rows for a shortlist, rescore it exactly in float32.

:class:`Int8Store` (kind ``"int8"``) and :class:`F16Store` (kind ``"f16"``) keep
two copies of the rows: a compressed matrix that every search scans, and the
float32 rows, used only to rescore the shortlist and for ``exact=True``. A
search with ``k`` asks the scan for ``rescore * k`` candidates, computes their
exact float32 scores and returns the best ``k`` of those, best first, ties to
the lower row (:func:`embedkit.search.store.rescore`).
Scores are therefore always exact; only the *choice* of rows is approximate. A
shortlist of ``>= n`` rows is exact brute force (the exact kernel over the
float32 rows, as ``exact=True``).

Memory per vector of width ``d``: int8 ``d + 4`` bytes, f16 ``2 d`` bytes in RAM,
plus the float32 copy (``4 d``) on disk. After :meth:`load` the float32 copy is
always memory-mapped (read by the page cache, a few rows per query);
``mmap=True`` maps the compressed matrix as well. ``add`` after a memory-mapped
load copies the mapped arrays into RAM (as the exact store does); save again
to map them.

**int8: one scale per row.** Row ``i`` is stored as ``c[i] = rint(x[i] / s[i])``
with ``s[i] = max_j |x[i, j]| / 127`` (calibrated on the row itself), so the
approximate score is ``s[i] * (c[i] . q)``. Per-row scales were measured
against per-dimension ones (min/max per dimension, with and without 0.1%
clipping, calibrated on all rows or the first 1,000) on 6,419 real
all-MiniLM-L6-v2 embeddings (Lee corpus and fine-food review sentences, also
repeated with noise to 50,000): per-row gave the best recall@10 with no
rescoring (0.993-0.996 against 0.983-0.994), and every variant reached
0.9998-1.0 with a shortlist of ``2 k``. Per-row also needs no calibration
state: a row added later is encoded like the first ones (a per-dimension range
fitted on early rows clips later ones), every row uses the full int8 range, and
MiniLM's constant dimension (a spread of 0) needs no guard. Data whose
dimensions have very different ranges (a few dominant outlier dimensions
shared by every row) would favour per-dimension scales; rescoring keeps the
results exact either way, only the shortlist needs to be longer.

**f16** stores ``float16(x)`` (relative error 2^-11, no scale needed for unit
rows). numpy's float16 cast is slow, so blocks are widened with integer
operations (the float16 bits shifted into a float32, the exponent offset of
2^112 folded into the query): exact for every finite float16.

**Shortlist default:** ``rescore=4`` for int8 and ``2`` for f16 (``4 k`` and
``2 k`` candidates), twice what reached recall@10 >= 0.9998 on the real
embeddings above; ``benchmarks/bench_stores.py`` measures recall at 1M rows.

**The int8 scan** scores row ``i`` by ``s[i] * (c[i] . w)``, with the query
quantized like a row (``w = rint(q / t)``, ``t = max_j |q_j| / 127``; a
positive factor per query keeps the ranking). ``c[i] . w`` is an exact
integer whichever kernel computes it: numkong's int8 dot product (AVX-512
VNNI and the like; numkong is usearch's own kernel library, so the ``ann``
extra installs it) when it is importable, else numpy (codes widened to
float32, whose sums of integers are exact up to ``2^24``, i.e. ``d <= 1040``;
float64 beyond). Both give the same shortlists bit for bit: installing an
extra never changes an answer.

The scan of a batch of queries is the one exact kernel
(:func:`embedkit.search.kernels.search`) run over blocks decoded to float32; a
single query is split into one contiguous part per thread (up to 8), each
scored block by block (numpy: decoded in cache and multiplied with ``einsum``;
numkong: straight from the codes) and keeping its own best ``rescore * k``.

**Speed** (1M x 384, 2 cores, median of 15; ``benchmarks/bench_stores.py``):
one int8 query with numkong takes 0.34x the exact float32 scan (it reads a
quarter of the bytes); in numpy, widening int8 to float32 is compute-bound and
costs about what the exact scan costs (1.0x); float16 (numpy only) about
twice that. A batch costs about what exact costs (the product dominates).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from embedkit._folder import FolderWriter, Snapshot
from embedkit.errors import ConfigError, CorruptFileError
from embedkit.search.kernels import DEFAULT_BLOCK_BYTES, MIN_BLOCK_ROWS, TopK, search, top_k
from embedkit.search.store import (
    ExactStore,
    Matrix,
    append_rows,
    positive_int,
    rank,
    store_options,
)
from embedkit.search.store import rescore as rescore_rows

__all__ = ["F16Store", "Int8Store"]

CODES, SCALES = "codes.npy", "scales.npy"
DECODED_BYTES = 4 * 2**20  # float32 bytes of one decoded block: stays in cache
SINGLE_THREADS = max(1, min(8, os.cpu_count() or 1))  # threads scanning for one query
_F16_MASK = np.int32(-0x70000001)  # 0x8FFFFFFF: the sign and the 28 low bits
_F16_BIAS = np.float32(2.0**112)  # float32 exponent bias 127 - float16 bias 15 = 112


class _Decoded:
    """A read-only ``(n, dim)`` float32 view of a quantized store, decoded block by block.

    It offers what :func:`~embedkit.search.kernels.search` reads of its matrix:
    ``ndim``, ``shape``, slices of rows and ``numpy.asarray``.
    """

    ndim = 2

    def __init__(self, store: _QuantizedStore) -> None:
        self._store = store
        self.shape = (len(store), store.dim)

    def __getitem__(self, rows: slice) -> Matrix:
        start, stop, _ = rows.indices(self.shape[0])
        return self._store._decode(start, stop)

    def __array__(self, dtype: Any = None, copy: Any = None) -> Matrix:
        return self._store._decode(0, self.shape[0])


class _QuantizedStore(ABC):
    """Compressed rows + float32 rows; see the module docstring."""

    kind: ClassVar[str]
    code_dtype: ClassVar[type[np.generic]]
    default_rescore: ClassVar[int]

    def __init__(
        self, dim: int, *, rescore: int | None = None, block_bytes: int = DEFAULT_BLOCK_BYTES
    ) -> None:
        self.rescore = positive_int(self.default_rescore if rescore is None else rescore, "rescore")
        self._exact = ExactStore(dim, block_bytes=block_bytes)
        self._codes: NDArray[Any] = np.empty((0, dim), self.code_dtype)
        self._block_rows = max(256, DECODED_BYTES // (4 * max(1, dim)))

    @property
    def dim(self) -> int:
        return self._exact.dim

    def __len__(self) -> int:
        return len(self._exact)

    @property
    def vectors(self) -> Matrix:
        return self._exact.vectors

    @property
    def codes(self) -> NDArray[Any]:
        """The compressed ``(n, dim)`` rows that a search scans."""
        return self._codes[: len(self)]

    def add(self, unit: Matrix) -> None:
        n = len(self)
        self._codes = append_rows(self._codes, n, self._encode(unit))
        self._exact.add(unit)

    def search(self, queries: Matrix, k: int, *, exact: bool = False) -> TopK:
        n, q = len(self), queries.shape[0]
        m = min(n, self.rescore * max(0, int(k)))
        if exact or m >= n or q == 0:  # a shortlist of every row: exact brute force
            return self._exact.search(queries, k)
        self._exact.mapped.check()
        if q == 1:
            candidates = self._shortlist_one(queries[0], m)
        else:
            weights = self._weights(queries)
            # rows per product: at least the kernel's MIN_BLOCK_ROWS, so that it keeps
            # all the queries in one chunk (each chunk would decode the rows again)
            block_bytes = 8 * max(MIN_BLOCK_ROWS, self._block_rows) * q
            candidates = search(weights, _Decoded(self), m, block_bytes=block_bytes).indices  # type: ignore[arg-type]
        return rescore_rows(self.vectors, queries, candidates, k)

    def _shortlist_one(self, query: Matrix, m: int) -> NDArray[np.int64]:
        """The ``m`` best rows of one query by approximate score (ties to the lower row).

        The rows are cut into one contiguous part per thread; each thread scores its
        part block by block and keeps its own ``m`` best, then the parts' winners are
        ranked together (the same rows as one ``top_k`` over all scores).
        """
        n = len(self)
        weights = self._weights(query[None, :])[0]
        scores = np.empty(n, np.float32)
        bounds = np.linspace(0, n, min(SINGLE_THREADS, -(-n // self._block_rows)) + 1)
        parts = bounds.astype(np.int64).tolist()
        step = self._scan_rows()

        def part(a: int, b: int) -> tuple[NDArray[np.int64], Matrix]:
            buf = np.empty((min(b - a, self._block_rows), self.dim), np.float32)
            for r0 in range(a, b, min(step, b - a)):
                r1 = min(b, r0 + step)
                scores[r0:r1] = self._block_scores(r0, r1, weights, buf[: r1 - r0])
            best = top_k(scores[a:b], m)
            return best.indices[0] + a, best.scores[0]

        if len(parts) == 2:
            return part(0, n)[0][None, :]
        with ThreadPoolExecutor(len(parts) - 1, thread_name_prefix="embedkit-scan") as pool:
            found = list(pool.map(part, parts[:-1], parts[1:]))
        rows = np.concatenate([f[0] for f in found])
        return rank(rows[None, :], np.concatenate([f[1] for f in found])[None, :], m).indices

    # -- per-format encoding ------------------------------------------------------
    def _scan_rows(self) -> int:
        """Rows per block of a single-query scan (a decoded block stays in cache)."""
        return self._block_rows

    @abstractmethod
    def _encode(self, unit: Matrix) -> NDArray[Any]: ...

    def _weights(self, queries: Matrix) -> Matrix:
        """What the decoded rows are multiplied with (any positive scale keeps the ranking)."""
        return queries

    @abstractmethod
    def _decode(self, r0: int, r1: int) -> Matrix:
        """Rows ``r0:r1`` as float32 (up to the positive factor of :meth:`_weights`)."""
        ...

    @abstractmethod
    def _block_scores(self, r0: int, r1: int, weights: Matrix, buf: Matrix) -> Matrix: ...

    # -- persistence --------------------------------------------------------------
    def _extra_save(self, writer: FolderWriter) -> None:  # noqa: B027 - optional hook
        """Files besides the codes and the float32 rows."""

    def _extra_load(self, snapshot: Snapshot, count: int, mmap: bool) -> None:  # noqa: B027
        """Read what :meth:`_extra_save` wrote."""

    def save(self, writer: FolderWriter) -> dict[str, Any]:
        self._exact.save(writer)
        writer.write_npy(CODES, np.ascontiguousarray(self.codes))
        self._extra_save(writer)
        return {"kind": self.kind, "rescore": self.rescore}

    @classmethod
    def load(
        cls, snapshot: Snapshot, meta: dict[str, Any], *, mmap: bool = False
    ) -> _QuantizedStore:
        info = store_options(meta, snapshot.path)
        try:
            store = cls(int(meta["dim"]), rescore=info.get("rescore", cls.default_rescore))
        except ConfigError as exc:
            raise CorruptFileError(f"{snapshot.path}: bad {cls.kind} store options: {exc}") from exc
        store._exact = ExactStore.load(snapshot, meta, mmap=True)
        codes = snapshot.read_npy(CODES, mmap=mmap)
        shape = (int(meta["count"]), store.dim)
        if codes.dtype != cls.code_dtype or codes.shape != shape:
            raise CorruptFileError(
                f"{snapshot.path}: {CODES} holds {codes.dtype} {codes.shape}, the manifest "
                f"says {np.dtype(cls.code_dtype)} {shape}"
            )
        store._codes = codes
        store._exact.mapped.watch(snapshot, CODES, codes)
        store._extra_load(snapshot, shape[0], mmap)
        return store


class Int8Store(_QuantizedStore):
    """int8 codes with one float32 scale per row (``d + 4`` bytes a row in RAM)."""

    kind: ClassVar[str] = "int8"
    code_dtype: ClassVar[type[np.generic]] = np.int8
    default_rescore: ClassVar[int] = 4

    def __init__(
        self, dim: int, *, rescore: int | None = None, block_bytes: int = DEFAULT_BLOCK_BYTES
    ) -> None:
        super().__init__(dim, rescore=rescore, block_bytes=block_bytes)
        self._scales: NDArray[np.float32] = np.empty(0, np.float32)

    @property
    def scales(self) -> NDArray[np.float32]:
        """``scales[i]``: row ``i`` is about ``scales[i] * codes[i]``."""
        return self._scales[: len(self)]

    def _encode(self, unit: Matrix) -> NDArray[Any]:
        peak = np.abs(unit).max(axis=1) if unit.shape[1] else np.zeros(len(unit), np.float32)
        scale = np.where(peak > 0, peak / np.float32(127), np.float32(1)).astype(np.float32)
        self._scales = append_rows(self._scales, len(self), scale)
        codes: NDArray[np.int8] = np.clip(np.rint(unit / scale[:, None]), -127, 127).astype(np.int8)
        return codes

    def _weights(self, queries: Matrix) -> Matrix:
        """The queries quantized like the rows: ``rint(q / t)``, ``t = max_j |q_j| / 127``.

        Returned as float32 integers, so that ``codes[i] . w`` is an exact integer
        whichever kernel computes it (see :func:`_int_dots`).
        """
        if not queries.shape[1]:
            return queries
        peak = np.abs(queries).max(axis=1, keepdims=True)
        scale = np.where(peak > 0, peak / np.float32(127), np.float32(1))
        out: Matrix = np.rint(queries / scale).astype(np.float32)
        return out

    def _scan_rows(self) -> int:
        # numkong reads the codes without decoding them: one block per part
        return self._block_rows if _numkong() is None else max(1, len(self))

    def _decode(self, r0: int, r1: int) -> Matrix:
        out = self._codes[r0:r1].astype(np.float32)
        out *= self._scales[r0:r1, None]
        return out

    def _block_scores(self, r0: int, r1: int, weights: Matrix, buf: Matrix) -> Matrix:
        scores = _int_dots(self._codes[r0:r1], weights, buf)
        scores *= self._scales[r0:r1]
        return scores

    def _extra_save(self, writer: FolderWriter) -> None:
        writer.write_npy(SCALES, np.ascontiguousarray(self.scales))

    def _extra_load(self, snapshot: Snapshot, count: int, mmap: bool) -> None:
        scales = snapshot.read_npy(SCALES)
        if scales.dtype != np.float32 or scales.shape != (count,):
            raise CorruptFileError(
                f"{snapshot.path}: {SCALES} holds {scales.dtype} {scales.shape}, the manifest "
                f"says float32 ({count},)"
            )
        if not (np.isfinite(scales).all() and (scales > 0).all()):
            raise CorruptFileError(f"{snapshot.path}: {SCALES} holds scales that are not > 0")
        self._scales = scales


class F16Store(_QuantizedStore):
    """float16 codes (``2 d`` bytes a row in RAM)."""

    kind: ClassVar[str] = "f16"
    code_dtype: ClassVar[type[np.generic]] = np.float16
    default_rescore: ClassVar[int] = 2

    def _encode(self, unit: Matrix) -> NDArray[Any]:
        return unit.astype(np.float16)

    def _weights(self, queries: Matrix) -> Matrix:
        out: Matrix = queries * _F16_BIAS  # |q| <= 1: no overflow
        return out

    def _decode(self, r0: int, r1: int) -> Matrix:
        return _widen(self._codes[r0:r1], np.empty((r1 - r0, self.dim), np.int32))

    def _block_scores(self, r0: int, r1: int, weights: Matrix, buf: Matrix) -> Matrix:
        rows = _widen(self._codes[r0:r1], buf.view(np.int32))
        out: Matrix = np.einsum("ij,j->i", rows, weights)
        return out


def _numkong() -> Any:
    """numkong (usearch's kernels, extra ``ann``) if installed, else ``None``."""
    global _NUMKONG
    if _NUMKONG is False:
        try:
            import numkong

            _NUMKONG = numkong
        except ImportError:
            _NUMKONG = None
    return _NUMKONG


_NUMKONG: Any = False  # not looked up yet


def _int_dots(codes: NDArray[np.int8], weights: Matrix, buf: Matrix) -> Matrix:
    """``codes @ weights`` for int8 ``codes`` ``(r, d)`` and integer-valued float32 ``weights``.

    Every product and partial sum is an integer of magnitude ``<= 127^2 d``, exact
    in float32 while that is below ``2^24`` (``d <= 1040``, float64 beyond), so
    the result is ``float32(the exact integer)`` both from numkong's int8 kernel
    (int32 sums; usearch's dependency, used when installed) and from numpy
    (decoded into ``buf``, then ``einsum``): an extra never changes a shortlist.
    """
    wide = codes.shape[1] > _EXACT_F32_DIM
    nk = _numkong()
    if nk is not None:
        out = nk.dot(codes, weights.astype(np.int8), out_dtype="float64" if wide else "float32")
        return np.asarray(out).astype(np.float32, copy=False)
    rows = buf[: codes.shape[0]]
    np.copyto(rows, codes, casting="unsafe")
    dots: Matrix = np.einsum("ij,j->i", rows, weights.astype(np.float64) if wide else weights)
    return dots.astype(np.float32, copy=False)


_EXACT_F32_DIM = (2**24 - 1) // 127**2  # 1040: the widest d whose int8 dots are exact in float32


def _widen(half: NDArray[Any], out: NDArray[np.int32]) -> Matrix:
    """float16 values as float32 times 2^-112, in ``out``: their bits shifted into place.

    A float16 (sign, 5-bit exponent, 10-bit mantissa) shifted left by 13 bits
    lines its exponent and mantissa up with float32's; the float32 then reads
    ``value * 2^-112`` (subnormals included) once the sign-extended bits 28-30
    are cleared. Exact for every finite float16.
    """
    np.copyto(out, half.view(np.int16), casting="unsafe")
    out <<= 13
    out &= _F16_MASK
    return out.view(np.float32)
