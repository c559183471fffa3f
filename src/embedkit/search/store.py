"""The search seam: a store holds unit-normalised rows and answers top-k queries.

:class:`~embedkit.search.index.VectorIndex` keeps ids, metadata and the model's
spec; everything about *how* rows are held and searched sits behind the small
:class:`VectorStore` protocol, so another store (quantized, approximate) plugs
in without changing the index's API::

    store.dim, len(store)
    store.add(unit)                      unit: float32 (m, dim), finite, unit-norm rows
    store.search(queries, k, exact=)     -> TopK (q, min(k, n)): best first, ties to the lower row
    store.vectors                        float32 (n, dim), the rows as added (RAM or memmap)
    store.save(writer) -> meta           its files into an index folder (embedkit._folder)
    Store.load(snapshot, meta, mmap=)    back from that folder

The stores, by kind name (``VectorIndex(..., store="int8")``) or as an object
with options (``store=Int8Store(dim, rescore=8)``); their options are recorded in
the folder's manifest (``meta["store"]``), never in the model spec:

=========  ==========================================  ===================================
kind       class                                       search
=========  ==========================================  ===================================
exact      :class:`ExactStore`                         brute force, the one kernel
f16        :class:`~embedkit.search.quantized.F16Store`   float16 scan, exact rescoring
int8       :class:`~embedkit.search.quantized.Int8Store`  int8 scan, exact rescoring
hnsw       :class:`~embedkit.search.ann.HnswStore`         usearch HNSW graph, exact rescoring
faiss      :class:`~embedkit.search.faiss_index.FaissStore` faiss HNSW / IVF / PQ, exact rescoring
=========  ==========================================  ===================================

``STORES`` maps each kind to a dotted path, imported on first use (the optional
``usearch`` only when an ``hnsw`` store is made or loaded, ``faiss`` for ``faiss``). Helpers shared by the
stores live here: :func:`rescore` and :func:`rank` (exact scores of candidate
rows, the one tie rule), :func:`append_rows` (amortised growth) and :class:`MappedFiles` (the
truncation guard of memory-mapped files).
"""

from __future__ import annotations

import importlib
import itertools
import os
from pathlib import Path
from typing import Any, ClassVar, Protocol, cast, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from embedkit._folder import FolderWriter, Snapshot
from embedkit.errors import ConfigError, CorruptFileError
from embedkit.search.kernels import DEFAULT_BLOCK_BYTES, TopK, search

__all__ = [
    "STORES",
    "ExactStore",
    "MappedFiles",
    "StoreClass",
    "VectorStore",
    "append_rows",
    "load_store",
    "make_store",
    "rank",
    "rescore",
    "store_class",
    "store_options",
]

VECTORS = "vectors.npy"
RESCORE_BYTES = 32 * 2**20  # float32 candidate rows gathered at once by rescore()
Matrix = NDArray[np.float32]

STORES: dict[str, str] = {
    "exact": "embedkit.search.store:ExactStore",
    "f16": "embedkit.search.quantized:F16Store",
    "int8": "embedkit.search.quantized:Int8Store",
    "hnsw": "embedkit.search.ann:HnswStore",
    "faiss": "embedkit.search.faiss_index:FaissStore",
}


@runtime_checkable
class VectorStore(Protocol):
    """Where an index keeps its rows; see the module docstring for the contract."""

    kind: ClassVar[str]

    @property
    def dim(self) -> int: ...

    def __len__(self) -> int: ...

    def add(self, unit: Matrix) -> None: ...

    def search(self, queries: Matrix, k: int, *, exact: bool = False) -> TopK: ...

    @property
    def vectors(self) -> Matrix: ...

    def save(self, writer: FolderWriter) -> dict[str, Any]: ...


class StoreClass(Protocol):
    """A store class as ``STORES`` names it: ``cls(dim)`` and ``cls.load(...)``."""

    kind: ClassVar[str]

    def __call__(self, dim: int) -> VectorStore: ...

    def load(self, snapshot: Snapshot, meta: dict[str, Any], *, mmap: bool = False) -> VectorStore:
        """The store saved in ``snapshot`` (``meta``: the manifest's meta)."""
        ...


class MappedFiles:
    """Memory-mapped files and their sizes: a file truncated underneath is refused.

    Reading a mapped page past the end of a truncated file kills the process
    (SIGBUS), so every search checks the sizes first. A file replaced by a newer
    save is fine: the map keeps the old version alive.
    """

    def __init__(self) -> None:
        self._files: list[tuple[Path, int]] = []

    def watch(self, snapshot: Snapshot, name: str, array: object) -> None:
        """Remember ``name`` when ``array`` maps it."""
        if isinstance(array, np.memmap):
            self._files.append((snapshot.file_path(name), snapshot.sizes[name]))

    def check(self) -> None:
        for path, size in self._files:
            try:
                now = os.stat(path).st_size
            except FileNotFoundError:
                continue
            if now != size:
                raise CorruptFileError(
                    f"{path} changed size underneath this memory-mapped index ({size} -> {now} "
                    "bytes); load the index again"
                )


def append_rows(buf: NDArray[Any], n: int, new: NDArray[Any]) -> NDArray[Any]:
    """``buf`` (capacity ``>= n`` rows) with ``new`` written at rows ``n...``.

    Grows by doubling, so appends are amortised O(rows); a memory map (read-only)
    is first copied into RAM. Returns the buffer to keep (maybe a new one).
    """
    need = n + new.shape[0]
    if need > buf.shape[0] or isinstance(buf, np.memmap):
        grown = np.empty((max(need, 2 * buf.shape[0], 16), *buf.shape[1:]), buf.dtype)
        grown[:n] = buf[:n]
        buf = grown
    buf[n:need] = new
    return buf


def rescore(rows: Matrix, queries: Matrix, candidates: NDArray[np.int64], k: int) -> TopK:
    """The exact top ``k`` of each query among its candidate rows.

    ``rows``: float32 ``(n, dim)`` (RAM or memmap); ``queries``: ``(q, dim)``;
    ``candidates``: ``(q, m)`` row numbers, ``-1`` for none, no repeats in a row.
    Every candidate's score is computed by the same float32 loop, so equal rows
    tie exactly (at most ``RESCORE_BYTES`` of rows are gathered at once); then
    :func:`rank`.
    """
    q, m = candidates.shape
    if q == 0 or m == 0 or k <= 0:
        return rank(candidates, np.empty(candidates.shape, np.float32), k)
    chunk = max(1, RESCORE_BYTES // max(1, 4 * m * rows.shape[1]))
    if q > chunk:  # bound the gathered rows: queries in chunks
        parts = [
            rescore(rows, queries[a : a + chunk], candidates[a : a + chunk], k)
            for a in range(0, q, chunk)
        ]
        return TopK(
            np.concatenate([p.indices for p in parts]), np.concatenate([p.scores for p in parts])
        )
    if q == 1 and candidates.min() >= 0:  # one query: 1-D arrays, fewer calls
        row = candidates[0]
        one = np.einsum("md,d->m", np.asarray(rows[row], dtype=np.float32), queries[0])
        best = np.lexsort((row, -one))[: max(0, min(int(k), m))]
        return TopK(row[best][None, :].astype(np.int64), one[best][None, :])
    safe = np.maximum(candidates, 0)
    taken = np.asarray(rows[safe.reshape(-1)], dtype=np.float32).reshape(q, m, -1)
    scores = np.einsum("qmd,qd->qm", taken, queries.astype(np.float32, copy=False))
    return rank(candidates, scores, k)


def rank(candidates: NDArray[np.int64], scores: Matrix, k: int) -> TopK:
    """The ``k`` best ``candidates`` ``(q, m)`` by ``scores``: best first, ties to the lower row.

    ``-1`` marks no candidate (its score is ignored). Returns ``(q, min(k, m))``;
    rows with fewer valid candidates end in index ``-1`` scored ``-inf``.
    """
    q, m = candidates.shape
    k = max(0, min(int(k), m))
    if k == 0 or q == 0:
        return TopK(np.empty((q, k), np.int64), np.empty((q, k), np.float32))
    scores = scores.astype(np.float32, copy=False)
    if q == 1:  # one query: checked on Python lists (each numpy call costs more here)
        rows, values = candidates[0].tolist(), scores[0].tolist()
        if k == m and min(rows) >= 0 and all(a > b for a, b in itertools.pairwise(values)):
            return TopK(candidates.astype(np.int64, copy=False), scores)  # best first, no ties
    if q == 1 and candidates.min() >= 0:  # all valid: 1-D, fewer calls
        best = np.lexsort((candidates[0], -scores[0]))[:k]
        return TopK(candidates[0, best][None, :].astype(np.int64), scores[0, best][None, :])
    none = np.iinfo(np.int64).max
    valid = candidates >= 0
    if not valid.all():
        scores = np.where(valid, scores, np.float32(-np.inf))
        candidates = np.where(valid, candidates, none)
    order = np.lexsort((candidates, -scores), axis=1)[:, :k]
    idx = np.take_along_axis(candidates, order, axis=1).astype(np.int64, copy=False)
    idx[idx == none] = -1
    return TopK(idx, np.take_along_axis(scores, order, axis=1))


def store_options(meta: dict[str, Any], where: object) -> dict[str, Any]:
    """The store's entry of a manifest's meta (``meta["store"]``), checked to be an object."""
    info = meta.get("store")
    if not isinstance(info, dict):
        raise CorruptFileError(f"{where}: the manifest's 'store' must be an object")
    return info


def positive_int(value: object, name: str) -> int:
    """``value`` as an int ``>= 1`` (bool refused), else :class:`ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


class ExactStore:
    """Float32 rows in RAM (amortised appends) or memory-mapped; exact search."""

    kind: ClassVar[str] = "exact"

    def __init__(self, dim: int, *, block_bytes: int = DEFAULT_BLOCK_BYTES) -> None:
        self._dim = int(dim)
        self.block_bytes = int(block_bytes)
        self._rows: Matrix = np.empty((0, self._dim), np.float32)  # capacity >= n
        self._n = 0
        self.mapped = MappedFiles()

    @property
    def dim(self) -> int:
        return self._dim

    def __len__(self) -> int:
        return self._n

    @property
    def vectors(self) -> Matrix:
        return self._rows[: self._n]

    def add(self, unit: Matrix) -> None:
        self._rows = append_rows(self._rows, self._n, unit)
        self._n += unit.shape[0]

    def search(self, queries: Matrix, k: int, *, exact: bool = False) -> TopK:
        self.mapped.check()
        return search(queries, self.vectors, k, block_bytes=self.block_bytes)

    def save(self, writer: FolderWriter) -> dict[str, Any]:
        writer.write_npy(VECTORS, np.ascontiguousarray(self.vectors, dtype=np.float32))
        return {"kind": self.kind}

    @classmethod
    def load(cls, snapshot: Snapshot, meta: dict[str, Any], *, mmap: bool = False) -> ExactStore:
        rows = snapshot.read_npy(VECTORS, mmap=mmap)
        store = cls(int(meta["dim"]))
        if rows.dtype != np.float32 or rows.ndim != 2 or rows.shape != (meta["count"], store.dim):
            raise CorruptFileError(
                f"{snapshot.path}: {VECTORS} holds {rows.dtype} {rows.shape}, the manifest "
                f"says float32 ({meta['count']}, {store.dim})"
            )
        store._rows, store._n = rows, rows.shape[0]
        store.mapped.watch(snapshot, VECTORS, rows)
        return store


def store_class(kind: str) -> StoreClass:
    """The class of the store ``kind`` (imported on first use); :class:`ConfigError` if unknown."""
    if kind not in STORES:
        raise ConfigError(f"unknown store {kind!r}; known: {', '.join(sorted(STORES))}")
    module, name = STORES[kind].split(":")
    return cast(StoreClass, getattr(importlib.import_module(module), name))


def make_store(store: str | VectorStore, dim: int) -> VectorStore:
    """A new, empty store: by kind name, or ``store`` itself (it must be empty and fit ``dim``)."""
    if isinstance(store, str):
        return store_class(store)(dim)
    if not isinstance(store, VectorStore):
        raise ConfigError(f"store must be a kind name or a VectorStore, got {type(store).__name__}")
    if store.dim != dim or len(store):
        raise ConfigError(f"the store must be empty and of dimension {dim}")
    return store


def load_store(snapshot: Snapshot, meta: dict[str, Any], *, mmap: bool = False) -> VectorStore:
    """The store an index folder was saved with (``meta["store"]["kind"]``)."""
    info = meta.get("store")
    kind = info.get("kind") if isinstance(info, dict) else None
    if not isinstance(kind, str) or kind not in STORES:
        raise CorruptFileError(f"{snapshot.path}: unknown store {kind!r} in the manifest")
    return store_class(kind).load(snapshot, meta, mmap=mmap)
