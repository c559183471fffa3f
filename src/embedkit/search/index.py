"""``VectorIndex``: ids + metadata + unit-normalised vectors + the spec of the model that made them.

The index remembers which model made its vectors (``spec``) and their width
(``dim``): a text query is embedded by that model (its ``embed_query`` where it
has one), an embedder with another spec is refused with
:class:`~embedkit.errors.ModelMismatchError`, a vector of another width with
:class:`~embedkit.errors.DimensionMismatchError`. Texts are embedded by the one
job path (:class:`~embedkit.jobs.embed.EmbedJob`: cache, batches, progress,
policies). Rows live in a store behind :mod:`embedkit.search.store`.

On disk an index is a folder in the one folder format (:mod:`embedkit._folder`,
kind ``"index"``; no pickle anywhere)::

    manifest.json    format version, spec, dim, count, store, size and sha256 of each file
    data-<id>/vectors.npy      float32 (count, dim), unit-normalised rows
    data-<id>/ids.json         list of ids (str or int), or {"range": [0, count]}
    data-<id>/metadata.jsonl   one JSON object (or null) per row
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from embedkit import _folder, _html
from embedkit.errors import (
    ConfigError,
    CorruptFileError,
    DimensionMismatchError,
    ModelMismatchError,
)
from embedkit.jobs.cache import CacheOption
from embedkit.jobs.embed import DEFAULT_BATCH_SIZE, EmbedJob, ModelLike
from embedkit.protocol import Embedder, embed_queries
from embedkit.registry import load, same_model
from embedkit.search.columns import IdColumn, MetadataColumn
from embedkit.search.kernels import TopK
from embedkit.search.rows import Id, Metadata, check_metadata, query_rows, unit_rows
from embedkit.search.store import MappedFiles, VectorStore, load_store, make_store
from embedkit.spec import canonical_spec

__all__ = ["KIND", "Hit", "VectorIndex", "check_same_model"]

KIND = "index"
IDS, METADATA = "ids.json", "metadata.jsonl"
Query = str | ArrayLike


@dataclass(frozen=True)
class Hit:
    """One search result: the row's ``id``, its cosine ``score`` and its ``metadata``."""

    id: Id
    score: float
    metadata: Metadata = field(default=None, compare=False)

    def _repr_html_(self) -> str:
        return _html.hit(self)


class VectorIndex:
    """Cosine-similarity index over float32 vectors, with ids and metadata."""

    def __init__(
        self,
        dim: int,
        *,
        spec: str | None = None,
        embedder: Embedder | None = None,
        store: str | VectorStore = "exact",
    ) -> None:
        if embedder is not None:
            spec = spec or embedder.spec
            check_same_model(spec, embedder)
        self.dim = int(dim)
        self.spec = spec
        self._embedder = embedder
        self.store = make_store(store, self.dim)
        self._mapped = MappedFiles()  # metadata.jsonl where it is memory-mapped
        self._ids = IdColumn()
        self._metadata = MetadataColumn()

    # -- construction -------------------------------------------------------------
    @classmethod
    def from_vectors(
        cls,
        vectors: ArrayLike,
        ids: Sequence[Id] | None = None,
        metadata: Sequence[Metadata] | None = None,
        spec: str | None = None,
        *,
        store: str | VectorStore = "exact",
    ) -> VectorIndex:
        """An index over ``vectors`` ``(n, dim)``; ``spec`` names the model that made them."""
        matrix = unit_rows(vectors, None)
        index = cls(matrix.shape[1], spec=_canonical(spec), store=store)
        index._append(matrix, ids, metadata)
        return index

    @classmethod
    def from_texts(
        cls,
        texts: Sequence[str],
        model: ModelLike = None,
        ids: Sequence[Id] | None = None,
        metadata: Sequence[Metadata] | None = None,
        *,
        cache: CacheOption = True,
        batch_size: int = DEFAULT_BATCH_SIZE,
        progress: bool | None = None,
        store: str | VectorStore = "exact",
    ) -> VectorIndex:
        """Embed ``texts`` with ``model`` (anything :func:`embedkit.load` takes) and index them."""
        job = EmbedJob(texts, model, cache=cache, batch_size=batch_size, progress=progress)
        index: VectorIndex | None = None
        for block, block_ids, block_meta in _blocks(job, ids, metadata, IdColumn()):
            if index is None:
                index = cls(job.dim, embedder=job.embedder, store=store)
            index._append(unit_rows(block, job.dim), block_ids, block_meta)
        return index if index is not None else cls(job.dim, embedder=job.embedder, store=store)

    def add(
        self,
        texts: Sequence[str],
        ids: Sequence[Id] | None = None,
        metadata: Sequence[Metadata] | None = None,
        *,
        cache: CacheOption = True,
        batch_size: int = DEFAULT_BATCH_SIZE,
        progress: bool | None = None,
    ) -> None:
        """Embed ``texts`` with the index's model and append them."""
        job = EmbedJob(texts, self.embedder, cache=cache, batch_size=batch_size, progress=progress)
        checked = list(_blocks(job, ids, metadata, self._ids))
        for block, block_ids, block_meta in checked:  # all embedded before any is added
            self._append(unit_rows(block, self.dim), block_ids, block_meta)

    def add_vectors(
        self,
        vectors: ArrayLike,
        ids: Sequence[Id] | None = None,
        metadata: Sequence[Metadata] | None = None,
    ) -> None:
        """Append ``vectors`` ``(m, dim)``; ids default to running positions."""
        self._append(unit_rows(vectors, self.dim), ids, metadata)

    def _append(
        self,
        unit: NDArray[np.float32],
        ids: Sequence[Id] | None,
        metadata: Sequence[Metadata] | None,
    ) -> None:
        m = unit.shape[0]
        new_ids = self._ids.checked(ids, m)
        new_meta = check_metadata(metadata, m)
        self.store.add(unit)
        self._ids.extend(new_ids, m)
        self._metadata.extend(new_meta)

    # -- access -------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._ids)

    def __repr__(self) -> str:
        return f"<VectorIndex n={len(self)} dim={self.dim} spec={self.spec!r}>"

    def _repr_html_(self) -> str:
        return _html.index(self, self._ids.head(_html.ROWS), self._metadata.head(_html.ROWS))

    @property
    def ids(self) -> list[Id]:
        return self._ids.to_list()

    @property
    def metadata(self) -> list[Metadata]:
        return self._metadata.to_list()

    @property
    def vectors(self) -> NDArray[np.float32]:
        """The unit-normalised ``(n, dim)`` matrix (read-only view)."""
        view = self.store.vectors.view()
        view.flags.writeable = False
        return view

    @property
    def embedder(self) -> Embedder:
        """The model of this index, built from ``spec`` on first use if not given."""
        if self._embedder is None:
            if self.spec is None:
                raise ConfigError(
                    "this index has no model spec; pass embedder= or search with vectors"
                )
            self._embedder = load(self.spec)
            self.spec = self._embedder.spec  # the complete spec of the model it names
        return self._embedder

    def use_embedder(self, embedder: ModelLike) -> None:
        """Attach the model used for text queries; it must match the index's spec."""
        model = load(embedder)
        check_same_model(self.spec, model)
        if model.dim != self.dim:
            raise DimensionMismatchError(f"model dimension {model.dim} != index {self.dim}")
        self._embedder = model
        self.spec = model.spec  # the model's own, complete spec from now on

    # -- search -------------------------------------------------------------------
    def search(self, query: Query, k: int = 10, *, exact: bool = False) -> list[Hit]:
        """The ``k`` rows most similar to one query (a text or a ``(dim,)`` vector), best first."""
        if (
            isinstance(query, np.ndarray)
            and query.dtype == np.float32
            and query.shape == (self.dim,)
        ):  # the common case, on a short path: a vector query costs microseconds here
            return self._hits(self.store.search(query_rows(query, self.dim), _k(k), exact=exact))[0]
        if isinstance(query, str):
            return self.search_batch([query], k, exact=exact)[0]
        vector = np.asarray(query)
        if vector.ndim != 1:
            raise DimensionMismatchError("search() takes one query; use search_batch() for many")
        return self.search_batch(vector[None, :], k, exact=exact)[0]

    def search_batch(
        self, queries: Sequence[str] | ArrayLike, k: int = 10, *, exact: bool = False
    ) -> list[list[Hit]]:
        """For each query (texts, or a ``(q, dim)`` matrix), its ``k`` best rows.

        ``exact=True`` asks an approximate store for the exact answer.
        """
        k = _k(k)
        if isinstance(queries, Sequence) and not isinstance(queries, str) and not len(queries):
            return []  # zero queries, zero results
        return self._hits(self.store.search(self._query_matrix(queries), k, exact=exact))

    def _hits(self, found: TopK) -> list[list[Hit]]:
        """The store's answer as hits: ids and metadata of the rows it found."""
        self._mapped.check()
        ids, meta = self._ids, self._metadata
        out = []
        for row_idx, row_val in zip(found.indices.tolist(), found.scores.tolist(), strict=True):
            hits = zip(ids.rows(row_idx), row_val, meta.rows(row_idx), strict=True)
            out.append([Hit(i, s, m) for i, s, m in hits])
        return out

    def _query_matrix(self, queries: Sequence[str] | ArrayLike) -> NDArray[np.float32]:
        if isinstance(queries, str):
            queries = [queries]
        if (
            isinstance(queries, Sequence)
            and len(queries)
            and all(isinstance(q, str) for q in queries)
        ):
            model = self.embedder
            check_same_model(self.spec, model)
            return query_rows(embed_queries(model, list(queries)), self.dim)  # type: ignore[arg-type]
        if isinstance(queries, Sequence) and any(isinstance(q, str) for q in queries):
            raise ConfigError("queries must be all texts or all vectors")
        matrix = np.asarray(queries)
        if matrix.ndim != 2:
            raise DimensionMismatchError(
                f"query vectors must be a (q, {self.dim}) matrix, got shape {matrix.shape}"
            )
        if matrix.shape[1] != self.dim:
            raise DimensionMismatchError(
                f"query vectors have dimension {matrix.shape[1]}, the index has {self.dim} "
                f"(made by {self.spec!r})"
            )
        return query_rows(matrix, self.dim)

    # -- persistence --------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the index to the folder ``path`` atomically (see the module docstring)."""
        with _folder.FolderWriter(path, KIND) as writer:
            store_meta = self.store.save(writer)
            writer.write_bytes(IDS, self._ids.encode())
            with open(writer.path_of(METADATA), "wb") as fh:
                self._metadata.write(fh)
            return writer.commit(
                {"spec": self.spec, "dim": self.dim, "count": len(self), "store": store_meta}
            )

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        embedder: ModelLike = None,
        *,
        mmap: bool = False,
        verify: bool = True,
    ) -> VectorIndex:
        """Read an index saved by :meth:`save` (or streamed by the CLI).

        ``mmap=True`` maps ``vectors.npy`` and ``metadata.jsonl`` instead of reading
        them: search then streams the matrix from disk block by block, and a hit's
        metadata is read when it is returned. ``verify`` checks every file's sha256
        against the manifest (sizes are always checked).
        """
        with _folder.read(path, KIND, verify=verify) as snap:
            meta = _check_meta(snap.meta, snap.path)
            store = load_store(snap, meta, mmap=mmap)
            ids = IdColumn.decode(snap.read_json(IDS), meta["count"], f"{snap.path}: {IDS}")
            lines = snap.read_mapped(METADATA) if mmap else snap.read_bytes(METADATA)
            metadata = MetadataColumn.from_lines(lines, meta["count"], f"{snap.path}: {METADATA}")
            index = cls(meta["dim"], spec=meta["spec"], store=make_store("exact", meta["dim"]))
            index._mapped.watch(snap, METADATA, lines)
        index.store, index._ids, index._metadata = store, ids, metadata
        if embedder is not None:
            index.use_embedder(embedder)
        return index


def _blocks(
    job: EmbedJob,
    ids: Sequence[Id] | None,
    metadata: Sequence[Metadata] | None,
    taken: IdColumn,
) -> Iterator[tuple[NDArray[np.float32], list[Id] | None, list[Metadata]]]:
    """The job's blocks with their ids (``None``: default ids) and metadata, both
    checked before any embedding."""
    n = job.total or 0
    all_ids = taken.checked(ids, n)
    all_meta = check_metadata(metadata, n)
    for block in job.batches():
        a, b = int(block.rows[0]), int(block.rows[-1]) + 1
        yield block.vectors, None if all_ids is None else all_ids[a:b], all_meta[a:b]


def _k(k: object) -> int:
    """``k`` as an int ``>= 0`` (bool refused), else :class:`ConfigError`."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ConfigError(f"k must be an integer >= 0, got {k!r}")
    return int(k)


def check_same_model(spec: str | None, embedder: Embedder) -> None:
    """:class:`ModelMismatchError` unless ``embedder`` is the model named by ``spec``."""
    if spec is not None and not same_model(spec, embedder.spec):
        raise ModelMismatchError(
            f"the vectors were made by {spec!r} but the query model is {embedder.spec!r}; "
            "documents and queries must be embedded by the same model"
        )


def _canonical(spec: str | None) -> str | None:
    """A spec in canonical form (sorted options, one encoding), so stored specs compare equal."""
    return None if spec is None else canonical_spec(spec)


def _check_meta(meta: Mapping[str, Any], where: Path) -> dict[str, Any]:
    spec, dim, count = meta.get("spec"), meta.get("dim"), meta.get("count")
    if spec is not None and not isinstance(spec, str):
        raise CorruptFileError(f"{where}: 'spec' must be a string or null")
    for name, value in (("dim", dim), ("count", count)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise CorruptFileError(f"{where}: {name!r} must be a non-negative integer")
    return dict(meta)
