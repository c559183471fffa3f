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

:class:`ExactStore` is exact brute force with the one kernel
(:func:`embedkit.search.kernels.search`): blocked, memory-bounded, memmap-friendly.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from embedkit._folder import FolderWriter, Snapshot
from embedkit.errors import ConfigError, CorruptFileError
from embedkit.search.kernels import DEFAULT_BLOCK_BYTES, TopK, search

__all__ = ["STORES", "ExactStore", "VectorStore", "load_store", "make_store"]

VECTORS = "vectors.npy"
Matrix = NDArray[np.float32]


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


class ExactStore:
    """Float32 rows in RAM (amortised appends) or memory-mapped; exact search."""

    kind: ClassVar[str] = "exact"

    def __init__(self, dim: int, *, block_bytes: int = DEFAULT_BLOCK_BYTES) -> None:
        self._dim = int(dim)
        self.block_bytes = int(block_bytes)
        self._rows: Matrix = np.empty((0, self._dim), np.float32)  # capacity >= n
        self._n = 0
        self._mapped: tuple[Path, int] | None = None  # (file, size) behind a memory map

    @property
    def dim(self) -> int:
        return self._dim

    def __len__(self) -> int:
        return self._n

    @property
    def vectors(self) -> Matrix:
        return self._rows[: self._n]

    def add(self, unit: Matrix) -> None:
        m = unit.shape[0]
        need = self._n + m
        if need > self._rows.shape[0] or isinstance(self._rows, np.memmap):
            grown = np.empty((max(need, 2 * self._rows.shape[0], 16), self._dim), np.float32)
            grown[: self._n] = self._rows[: self._n]
            self._rows = grown
        self._rows[self._n : need] = unit
        self._n = need

    def search(self, queries: Matrix, k: int, *, exact: bool = False) -> TopK:
        self._check_mapped()
        return search(queries, self.vectors, k, block_bytes=self.block_bytes)

    def _check_mapped(self) -> None:
        """A mapped file truncated underneath would kill the process (SIGBUS): refuse first.

        A file replaced by a newer save is fine: the map keeps the old version alive.
        """
        if self._mapped is None or not isinstance(self._rows, np.memmap):
            return
        path, size = self._mapped
        try:
            now = os.stat(path).st_size
        except FileNotFoundError:
            return
        if now != size:
            raise CorruptFileError(
                f"{path} changed size underneath this memory-mapped index ({size} -> {now} "
                "bytes); load the index again"
            )

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
        if isinstance(rows, np.memmap):
            store._mapped = (snapshot.file_path(VECTORS), snapshot.sizes[VECTORS])
        return store


STORES: dict[str, type[ExactStore]] = {"exact": ExactStore}


def make_store(store: str | VectorStore, dim: int) -> VectorStore:
    """A new, empty store: by kind name, or ``store`` itself (it must be empty and fit ``dim``)."""
    if isinstance(store, str):
        if store not in STORES:
            raise ConfigError(f"unknown store {store!r}; known: {', '.join(sorted(STORES))}")
        return STORES[store](dim)
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
    return STORES[kind].load(snapshot, meta, mmap=mmap)
