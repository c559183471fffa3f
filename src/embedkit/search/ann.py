"""``HnswStore``: approximate search on a usearch HNSW graph, rescored exactly.

Kind ``"hnsw"`` (extra ``ann``: ``pip install 'embedkit[ann]'``; usearch is
imported when a store is made or loaded, never by ``import embedkit``). The
graph holds the rows in ``dtype`` (``"f32"``, ``"f16"`` or ``"i8"``); beside it
the store keeps the float32 rows, which give the scores, answer ``exact=True``
(exact brute force with the one kernel) and are memory-mapped after a load.

A search asks the graph for ``rescore * k`` candidates (``ef_search`` bounds
how far it explores) and returns the best ``k``: best first, ties to the lower
row. Their scores are float32 cosines of the rows: for an ``f32`` graph (with
``rescore=1``) the graph's own products (``1 - distance``, within about 1e-7 of
the exact store's, equal rows scoring equal), otherwise the candidates are
rescored exactly from the float32 rows. When the graph returns fewer than ``min(k, n)`` rows for
a query (it can, e.g. among many identical rows), that query is answered by
exact search instead: results never hold padding and always have ``min(k, n)``
columns, as the store protocol says.

Options (recorded in the index folder's manifest, ``meta["store"]``, not in the
model spec), as ``HnswStore(dim, ...)``:

* ``connectivity`` (HNSW's ``M``, default 16): graph edges per node; more is
  better recall, more memory (about ``8 M`` bytes a row) and slower builds;
* ``ef_construction`` (default 128): search depth while inserting;
* ``ef_search`` (default 64): search depth of a query, the recall/speed knob;
  settable on a built or loaded store (``index.store.ef_search = 128``);
* ``dtype`` (default ``"i8"``): how the graph holds the rows; ``"i8"`` needs
  rescoring (usearch's fixed int8 scale loses recall), hence its default
  ``rescore=4`` (``1`` for f32 and f16). i8 is the default because, rescored, it
  matched or beat f32 at every ``ef_search`` measured, in recall and speed, at a
  third of the memory (1M x 384 clustered, ``benchmarks/bench_stores.py``, AMD
  EPYC Zen 5: ef 64 recall 0.934 at 84x exact's single-query rate against f32's
  0.935 at 70x, ef 128 0.988 at 85x against 0.985 at 54x; an Intel Xeon: ef 64
  0.935 at 103x against 0.946 at 65x);
* ``threads`` (default 0: all cores) for builds and batches; not saved.

On disk: ``vectors.npy`` (float32) and ``hnsw.usearch`` (usearch's own file,
listed in the manifest with its size and sha256 like every file). ``mmap=True``
maps the graph file too (usearch ``view``); ``add`` after that copies the graph
into RAM first.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from embedkit import _optional
from embedkit._folder import FolderWriter, Snapshot
from embedkit.errors import ConfigError, CorruptFileError
from embedkit.search.kernels import DEFAULT_BLOCK_BYTES, TopK
from embedkit.search.store import ExactStore, Matrix, positive_int, rank, store_options
from embedkit.search.store import rescore as rescore_rows

__all__ = ["DTYPES", "HnswStore"]

GRAPH = "hnsw.usearch"
DTYPES = ("f32", "f16", "i8")
# Rows and queries are unit vectors: inner product ranks like cosine and skips the
# norms; usearch's int8 maps values by a fixed scale that only cosine undoes.
_METRIC = {"f32": "ip", "f16": "ip", "i8": "cos"}
_RESCORE = {"f32": 1, "f16": 1, "i8": 4}
OPTIONS = ("connectivity", "ef_construction", "ef_search", "dtype", "rescore")


def _usearch() -> Any:
    return _optional.require("usearch.index", "ann")


class HnswStore:
    """A usearch HNSW graph over the rows, plus their float32 copy; see the module docstring."""

    kind: ClassVar[str] = "hnsw"

    def __init__(
        self,
        dim: int,
        *,
        connectivity: int = 16,
        ef_construction: int = 128,
        ef_search: int = 64,
        dtype: str = "i8",
        rescore: int | None = None,
        threads: int = 0,
        block_bytes: int = DEFAULT_BLOCK_BYTES,
    ) -> None:
        if dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        self.dtype = dtype
        self.connectivity = positive_int(connectivity, "connectivity")
        self.ef_construction = positive_int(ef_construction, "ef_construction")
        self._ef_search = positive_int(ef_search, "ef_search")
        self.rescore = positive_int(_RESCORE[dtype] if rescore is None else rescore, "rescore")
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
            raise ConfigError(f"threads must be an integer >= 0, got {threads!r}")
        self.threads = threads
        self._exact = ExactStore(dim, block_bytes=block_bytes)
        self._graph = self._new_graph()
        self._viewed = False  # a memory-mapped graph is read-only

    def _new_graph(self) -> Any:
        return _usearch().Index(
            ndim=self.dim,
            metric=_METRIC[self.dtype],
            dtype=self.dtype,
            connectivity=self.connectivity,
            expansion_add=self.ef_construction,
            expansion_search=self._ef_search,
        )

    @property
    def dim(self) -> int:
        return self._exact.dim

    def __len__(self) -> int:
        return len(self._exact)

    @property
    def vectors(self) -> Matrix:
        return self._exact.vectors

    @property
    def ef_search(self) -> int:
        return self._ef_search

    @ef_search.setter
    def ef_search(self, value: int) -> None:
        self._ef_search = positive_int(value, "ef_search")
        self._graph.expansion_search = self._ef_search

    @property
    def graph(self) -> Any:
        """The ``usearch.index.Index`` (for its statistics; change it through the store)."""
        return self._graph

    @property
    def graph_bytes(self) -> int:
        """Memory the graph uses (usearch's ``memory_usage``): rows in ``dtype`` plus edges."""
        return int(self._graph.memory_usage)

    def add(self, unit: Matrix) -> None:
        if self._viewed:
            self._graph = self._graph.copy()
            self._graph.expansion_add = self.ef_construction
            self._graph.expansion_search = self._ef_search
            self._viewed = False
        n, m = len(self), unit.shape[0]
        if m:
            keys = np.arange(n, n + m, dtype=np.uint64)
            self._graph.add(keys, np.ascontiguousarray(unit), threads=self.threads)
        self._exact.add(unit)

    def search(self, queries: Matrix, k: int, *, exact: bool = False) -> TopK:
        n, q = len(self), queries.shape[0]
        kk = max(0, min(int(k), n))
        if exact or kk == 0 or q == 0:
            return self._exact.search(queries, k)
        self._exact.mapped.check()  # a file changed underneath is reported whatever is read
        rows, distances, found = self._candidates(queries, min(n, self.rescore * kk))
        if self.dtype == "f32" and self.rescore == 1:  # the graph's float32 products
            top = rank(rows, np.float32(1) - distances, kk)
        else:
            top = rescore_rows(self.vectors, queries, rows, kk)
        if (found[0] if q == 1 else found.min()) >= kk:  # the common case: every query got k
            return top
        short = np.flatnonzero(found < kk)
        if short.size:  # the graph fell short: answer those queries exactly
            fill = self._exact.search(queries[short], kk)
            top.indices[short], top.scores[short] = fill.indices, fill.scores
        return top

    def _candidates(
        self, queries: Matrix, count: int
    ) -> tuple[NDArray[np.int64], Matrix, NDArray[np.int64]]:
        """``(rows, distances)`` ``(q, count)``, ``-1`` past each query's matches, and counts."""
        q = queries.shape[0]
        found = self._graph.search(np.ascontiguousarray(queries), count, threads=self.threads)
        if q == 1:  # usearch returns one query's matches alone: exactly its valid ones
            keys = found.keys
            if len(keys) == count:  # all it asked for (the common case): fewer numpy calls
                rows = keys.astype(np.int64)[None, :]
                return rows, found.distances[None, :], np.array([count], np.int64)
            rows = np.full((1, count), -1, np.int64)
            rows[0, : len(keys)] = keys
            distances = np.ones((1, count), np.float32)
            distances[0, : len(keys)] = found.distances
            return rows, distances, np.array([len(keys)], np.int64)
        counts = np.asarray(found.counts, dtype=np.int64)
        rows = np.asarray(found.keys).astype(np.int64)
        if counts.min() < count:
            rows[np.arange(count) >= counts[:, None]] = -1
        return rows, np.asarray(found.distances, dtype=np.float32), counts

    # -- persistence --------------------------------------------------------------
    def options(self) -> dict[str, Any]:
        """The options saved in the manifest."""
        return {
            "connectivity": self.connectivity,
            "ef_construction": self.ef_construction,
            "ef_search": self._ef_search,
            "dtype": self.dtype,
            "rescore": self.rescore,
        }

    def save(self, writer: FolderWriter) -> dict[str, Any]:
        self._exact.save(writer)
        self._graph.save(str(writer.path_of(GRAPH)))
        version = getattr(_optional.require("usearch", "ann"), "__version__", None)
        return {"kind": self.kind, **self.options(), "file": GRAPH, "usearch": version}

    @classmethod
    def load(cls, snapshot: Snapshot, meta: dict[str, Any], *, mmap: bool = False) -> HnswStore:
        info = store_options(meta, snapshot.path)
        where = f"{snapshot.path}: {GRAPH}"
        try:
            options = {name: info[name] for name in OPTIONS}
            store = cls(int(meta["dim"]), **options)
        except (KeyError, ConfigError) as exc:
            raise CorruptFileError(f"{snapshot.path}: bad hnsw store options: {exc}") from exc
        store._exact = ExactStore.load(snapshot, meta, mmap=True)
        path = str(snapshot.file_path(GRAPH))
        try:
            header = _usearch().Index.metadata(path)
            if mmap:
                store._graph.view(path)
            else:
                store._graph.load(path)
        except FileNotFoundError as exc:
            raise CorruptFileError(f"{where} was replaced while loading: load again") from exc
        except (RuntimeError, ValueError) as exc:
            raise CorruptFileError(f"{where} is not a usearch index: {exc}") from exc
        graph = store._graph
        expected = (int(meta["count"]), store.dim, store.dtype, store.connectivity)
        got = (len(graph), graph.ndim, _dtype_name(graph.dtype), graph.connectivity)
        if header is None or got != expected or header["dimensions"] != store.dim:
            raise CorruptFileError(
                f"{where} holds (rows, dim, dtype, connectivity) {got}, the manifest says "
                f"{expected}"
            )
        graph.expansion_search = store._ef_search
        store._viewed = mmap
        return store


def _dtype_name(kind: Any) -> str:
    """usearch's ``ScalarKind.F32`` as ``"f32"``."""
    return str(getattr(kind, "name", kind)).lower()
