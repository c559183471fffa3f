"""``FaissStore``: approximate search on a faiss index (HNSW, IVF, ...), rescored exactly.

Kind ``"faiss"`` (extra ``faiss``: ``pip install 'embedkit[faiss]'``; faiss is
imported when a store is made or loaded, never by ``import embedkit``). The
index is named by a faiss ``index_factory`` string, with the inner-product
metric: ``"HNSW16,Flat"`` (the default: an HNSW graph, M = 16),
``"IVF4000,Flat"`` (inverted lists; ``4 sqrt(n)`` lists is the usual size),
``"IVF4000,SQ8"`` or ``"IVF4000,PQ48"`` / ``"IVF4000,PQ48x8"`` (compressed
codes). embedkit builds these forms with faiss's constructors (see
:func:`_build` for why not with ``index_factory``). Beside it the store keeps the
float32 rows, which give every score, answer ``exact=True`` (exact brute
force with the one kernel) and are memory-mapped after a load.

Why faiss beside usearch (:class:`~embedkit.search.ann.HnswStore`): on the
same data and the same graph parameters (1M x 384 clustered rows, M = 16,
efConstruction = 128, 2 cores) faiss's HNSW answered one query 3x faster at
equal or better recall and built 2.2x faster (``benchmarks/bench_stores.py``),
and it brings IVF and product quantization. usearch stays for its f16/i8
graphs, memory-mapped graph files and its one-file wheel.

A search asks faiss for ``rescore * k`` candidates and returns the best ``k``
by exact float32 scores: best first, ties to the lower row
(:func:`embedkit.search.store.rescore`). With ``...Flat`` codes and
``rescore=1`` faiss's own scores are the float32 products of the rows
themselves, so they are only ranked (:func:`embedkit.search.store.rank`), not
recomputed (a third of a single query's time at 1M rows, measured). Where faiss returns fewer than
``min(k, n)`` rows for a query, that query is answered by exact search:
results never hold padding.

Options (recorded in the index folder's manifest, ``meta["store"]``, not in
the model spec), as ``FaissStore(dim, ...)``:

* ``factory`` (default ``"HNSW16,Flat"``): faiss's ``index_factory`` string;
* ``build`` (default ``{"efConstruction": 128}`` for HNSW, else ``{}``) and
  ``params`` (default ``{"efSearch": 64}`` for HNSW, ``{"nprobe": 16}`` for IVF):
  faiss ``ParameterSpace`` settings applied before adding and before
  searching; ``store.set(nprobe=32)`` changes the search ones of a built or
  loaded store;
* ``rescore`` (default 1 for ``...Flat`` codes, 4 for compressed ones).

An index that needs training (IVF, PQ, SQ) is trained on the rows of its first
``add`` (``VectorIndex.from_vectors`` gives it all of them); faiss needs at
least as many rows as lists (39 per list to train well).

On disk: ``vectors.npy`` and ``index.faiss`` (faiss's own binary format, written
by ``faiss.write_index``: no pickle), listed in the manifest with sizes and
sha256 like every file. faiss reads its file into RAM (``mmap=True`` maps the
float32 rows only).
"""

from __future__ import annotations

import math
import re
from typing import Any, ClassVar

import numpy as np

from embedkit import _optional
from embedkit._folder import FolderWriter, Snapshot
from embedkit.errors import ConfigError, CorruptFileError
from embedkit.search.kernels import DEFAULT_BLOCK_BYTES, TopK
from embedkit.search.store import ExactStore, Matrix, positive_int, rank, store_options
from embedkit.search.store import rescore as rescore_rows

__all__ = ["FaissStore"]

FILE = "index.faiss"
Params = dict[str, float]


def _faiss() -> Any:
    return _optional.require("faiss", "faiss")


def _params(value: object, name: str) -> Params:
    """A ``{"name": number}`` dict of faiss parameters, checked."""
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)
        and math.isfinite(v) for k, v in value.items()
    ):  # fmt: skip
        raise ConfigError(
            f"{name} must be a dict of faiss parameter names to numbers, got {value!r}"
        )
    return {k: value[k] for k in sorted(value)}


class FaissStore:
    """A faiss index over the rows, plus their float32 copy; see the module docstring."""

    kind: ClassVar[str] = "faiss"

    def __init__(
        self,
        dim: int,
        *,
        factory: str = "HNSW16,Flat",
        build: Params | None = None,
        params: Params | None = None,
        rescore: int | None = None,
        block_bytes: int = DEFAULT_BLOCK_BYTES,
    ) -> None:
        if not isinstance(factory, str) or not factory:
            raise ConfigError(f"factory must be a faiss index_factory string, got {factory!r}")
        hnsw, ivf = factory.startswith("HNSW"), factory.startswith("IVF")
        self.factory = factory
        default_build = {"efConstruction": 128} if hnsw else {}
        default_params = {"efSearch": 64} if hnsw else {"nprobe": 16} if ivf else {}
        self.build = _params(default_build if build is None else build, "build")
        self.params = _params(default_params if params is None else params, "params")
        self.lossless = factory.endswith("Flat")  # the codes are the float32 rows
        self.rescore = positive_int(
            (1 if self.lossless else 4) if rescore is None else rescore, "rescore"
        )
        self._exact = ExactStore(dim, block_bytes=block_bytes)
        try:
            self._index = _build(self.dim, factory)
            self._apply(self.build)
            self._apply(self.params)
        except RuntimeError as exc:
            raise ConfigError(
                f"faiss refused {factory!r} or its parameters: {_first_line(exc)}"
            ) from None

    def _apply(self, params: Params) -> None:
        space = _faiss().ParameterSpace()
        for name, value in params.items():
            space.set_index_parameter(self._index, name, value)

    def set(self, **params: float) -> None:
        """Change search parameters (e.g. ``efSearch=128``, ``nprobe=32``); saved with the index."""
        checked = _params(params, "params")
        try:
            self._apply(checked)
        except RuntimeError as exc:
            raise ConfigError(f"faiss refused {params!r}: {_first_line(exc)}") from None
        self.params = _params({**self.params, **checked}, "params")

    @property
    def dim(self) -> int:
        return self._exact.dim

    def __len__(self) -> int:
        return len(self._exact)

    @property
    def vectors(self) -> Matrix:
        return self._exact.vectors

    @property
    def index(self) -> Any:
        """The faiss index (for its statistics; change its parameters with :meth:`set`)."""
        return self._index

    def add(self, unit: Matrix) -> None:
        if unit.shape[0]:
            rows = np.ascontiguousarray(unit, dtype=np.float32)
            try:
                if not self._index.is_trained:
                    self._index.train(rows)
                self._index.add(rows)
            except RuntimeError as exc:
                raise ConfigError(
                    f"faiss could not add {rows.shape[0]} rows to {self.factory!r} (an index "
                    f"that trains needs at least as many rows as lists): {_first_line(exc)}"
                ) from None
        self._exact.add(unit)

    def search(self, queries: Matrix, k: int, *, exact: bool = False) -> TopK:
        n, q = len(self), queries.shape[0]
        kk = max(0, min(int(k), n))
        if exact or kk == 0 or q == 0:
            return self._exact.search(queries, k)
        self._exact.mapped.check()  # a file changed underneath is reported whatever is read
        scores, rows = self._index.search(np.ascontiguousarray(queries), min(n, self.rescore * kk))
        rows = rows.astype(np.int64, copy=False)
        if self.lossless and self.rescore == 1:  # faiss's own float32 products of the rows
            top = rank(rows, scores, kk)
        else:
            top = rescore_rows(self.vectors, queries, rows, kk)
        full = min(rows[0].tolist()) >= 0 if q == 1 else rows.min() >= 0  # one list: no numpy
        if full:  # the common case: every query got all it asked for
            return top
        short = np.flatnonzero((rows >= 0).sum(axis=1) < kk)
        if short.size:  # faiss fell short: answer those queries exactly
            fill = self._exact.search(queries[short], kk)
            top.indices[short], top.scores[short] = fill.indices, fill.scores
        return top

    # -- persistence --------------------------------------------------------------
    def options(self) -> dict[str, Any]:
        """The options saved in the manifest."""
        return {"factory": self.factory, "build": self.build, "params": self.params,
                "rescore": self.rescore}  # fmt: skip

    def save(self, writer: FolderWriter) -> dict[str, Any]:
        self._exact.save(writer)
        faiss = _faiss()
        faiss.write_index(self._index, str(writer.path_of(FILE)))
        version = getattr(faiss, "__version__", None)
        return {"kind": self.kind, **self.options(), "file": FILE, "faiss": version}

    @classmethod
    def load(cls, snapshot: Snapshot, meta: dict[str, Any], *, mmap: bool = False) -> FaissStore:
        info = store_options(meta, snapshot.path)
        where = f"{snapshot.path}: {FILE}"
        try:
            store = cls(int(meta["dim"]), **{name: info[name] for name in
                                             ("factory", "build", "params", "rescore")})  # fmt: skip
        except (KeyError, ConfigError) as exc:
            raise CorruptFileError(f"{snapshot.path}: bad faiss store options: {exc}") from None
        store._exact = ExactStore.load(snapshot, meta, mmap=True)
        try:
            index = _faiss().read_index(str(snapshot.file_path(FILE)))
        except RuntimeError as exc:
            raise CorruptFileError(f"{where} is not a faiss index: {_first_line(exc)}") from None
        expected = (int(meta["count"]), store.dim, True)
        got = (int(index.ntotal), int(index.d), bool(index.is_trained))
        if got != expected or int(index.metric_type) != int(_faiss().METRIC_INNER_PRODUCT):
            raise CorruptFileError(
                f"{where} holds (rows, dim, trained) {got} with metric {index.metric_type}, the "
                f"manifest says {expected} with inner product"
            )
        store._index = index
        store._apply(store.params)
        return store


_FORMS = {
    "hnsw": re.compile(r"HNSW(\d+)(?:,Flat)?"),
    "ivf": re.compile(r"IVF(\d+),Flat"),
    "ivfsq8": re.compile(r"IVF(\d+),SQ8"),
    "ivfpq": re.compile(r"IVF(\d+),PQ(\d+)(?:x(\d+))?"),
}


def _build(dim: int, factory: str) -> Any:
    """The empty faiss index that ``index_factory(dim, factory, METRIC_INNER_PRODUCT)`` makes.

    Built with faiss's constructors, not ``index_factory`` itself: with usearch
    loaded first in the process (usearch 2.26, faiss-cpu 1.15.1), faiss's
    ``index_factory`` crashes the interpreter (SIGSEGV, every factory string),
    while the constructors, training, search and file I/O work.
    """
    faiss = _faiss()
    ip = faiss.METRIC_INNER_PRODUCT
    match = {name: form.fullmatch(factory) for name, form in _FORMS.items()}
    if match["hnsw"]:
        return faiss.IndexHNSWFlat(dim, int(match["hnsw"][1]), ip)
    for name in ("ivf", "ivfsq8", "ivfpq"):
        found = match[name]
        if found is None:
            continue
        lists, coarse = int(found[1]), faiss.IndexFlatIP(dim)
        if name == "ivf":
            return faiss.IndexIVFFlat(coarse, dim, lists, ip)
        if name == "ivfsq8":
            qt = faiss.ScalarQuantizer.QT_8bit
            return faiss.IndexIVFScalarQuantizer(coarse, dim, lists, qt, ip)
        nbits = int(found[3] or 8)
        return faiss.IndexIVFPQ(coarse, dim, lists, int(found[2]), nbits, ip)
    raise RuntimeError(
        f"unsupported factory {factory!r}; embedkit builds 'HNSW<M>,Flat', 'IVF<lists>,Flat', "
        "'IVF<lists>,SQ8' and 'IVF<lists>,PQ<m>[x<bits>]'"
    )


def _first_line(exc: BaseException) -> str:
    """faiss's messages carry a C++ location line; keep what it says."""
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__
