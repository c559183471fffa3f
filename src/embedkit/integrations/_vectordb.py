"""The core shared by embedkit's vector-store adapters (LanceDB, Qdrant, pgvector).

One small API for every engine (:class:`VectorCollection`)::

    coll = Collection.create(target, "reviews", model="hashing?dim=256")   # or dim=, no model
    coll = Collection.from_index(target, "reviews", index)                  # a VectorIndex
    coll = Collection.from_frame(target, "reviews", frame)                  # an EmbeddedFrame
    coll = Collection.open(target, "reviews")                               # a stored one
    coll.add(texts, ids, metadata)        # embedded by the one job path, with the stored model
    coll.add_vectors(vectors, ids, metadata)
    coll.search("pet food", k=10)         # -> list[Hit], the Hit of VectorIndex
    coll.to_index()                       # -> VectorIndex with the same rows
    coll.close()                          # also a context manager

What every engine keeps, under the same rules as :class:`~embedkit.search.index.VectorIndex`:

* a **record** with the collection: the spec of the model that made the vectors and
  their ``dim`` (:class:`Record`). A text query is embedded by that model; another
  model is refused with :class:`~embedkit.errors.ModelMismatchError`, a vector of
  another width with :class:`~embedkit.errors.DimensionMismatchError`;
* per row: ``row`` (the insertion ordinal ``0, 1, ...``: ties in score go to the lower
  row, as in VectorIndex), the ``id`` (``str`` or ``int``, unique, ``1`` and ``"1"``
  kept apart: stored as its text and a flag ``id_is_int``), ``metadata`` (one JSON
  object or ``None``, checked by :func:`~embedkit.search.rows.check_metadata`) and
  the unit-normalised float32 vector, so that cosine = dot product;
* errors in embedkit's tree: an absent collection or one that already exists is a
  :class:`~embedkit.errors.ConfigError`, a record or rows that fail their checks a
  :class:`~embedkit.errors.CorruptFileError`, an engine that cannot be used (locked,
  unreachable) a :class:`~embedkit.errors.StorageError`, each with the engine's
  exception as ``__cause__``.

``Hit.score`` is the cosine computed by the engine (float32 in LanceDB and pgvector,
float64 in Qdrant local), so scores agree with VectorIndex's to about 1e-6.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from embedkit.errors import ConfigError, DimensionMismatchError, UnknownDimensionError
from embedkit.integrations._vdbrecord import Match, Record, Rows
from embedkit.jobs.cache import CacheOption
from embedkit.jobs.embed import DEFAULT_BATCH_SIZE, EmbedJob, ModelLike
from embedkit.protocol import Embedder, embed_queries
from embedkit.registry import load
from embedkit.search.index import Hit, VectorIndex, check_same_model
from embedkit.search.rows import Id, Metadata, check_ids, check_metadata, query_rows, unit_rows

if TYPE_CHECKING:
    from embedkit.frame import EmbeddedFrame

__all__ = ["TIE_MARGIN", "VectorCollection"]

TIE_MARGIN = 64
C = TypeVar("C", bound="VectorCollection")


class VectorCollection(ABC):
    """A collection of vectors in an engine, tied to one model; see the module docstring.

    Engines implement the ``_`` hooks; construction goes through the class methods.
    """

    engine: ClassVar[str]

    def __init__(self, name: str, record: Record, owned: Any = None) -> None:
        self.name = name
        self.spec = record.spec
        self.dim = record.dim
        self._embedder: Embedder | None = None
        self._owned = owned  # a client/connection this object opened, closed by close()

    # -- engine hooks -------------------------------------------------------------
    @classmethod
    @abstractmethod
    def _make(cls: type[C], target: Any, name: str, record: Record, replace: bool) -> C:
        """Create the storage of a new, empty collection and its record."""

    @classmethod
    @abstractmethod
    def _attach(cls: type[C], target: Any, name: str) -> C:
        """Open a stored collection (its record read and checked)."""

    @abstractmethod
    def _write(self, rows: Rows) -> None:
        """Store ``rows`` (already checked), in one commit where the engine has one."""

    @abstractmethod
    def _query(self, vector: NDArray[np.float32], k: int, exact: bool) -> list[Match]:
        """The engine's best ``k`` rows for the unit ``(dim,)`` ``vector``."""

    @abstractmethod
    def _stored_ids(self) -> set[Id]:
        """Every id stored (to refuse duplicates before writing)."""

    @abstractmethod
    def _read_all(self) -> tuple[NDArray[np.float32], list[Id], list[Metadata]]:
        """Every row, in row order: ``(vectors (n, dim), ids, metadata)``."""

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def _close(self) -> None:
        """Release what this object opened (``self._owned``)."""

    # -- construction -------------------------------------------------------------
    @classmethod
    def create(
        cls: type[C],
        target: Any,
        name: str,
        *,
        model: ModelLike = None,
        dim: int | None = None,
        replace: bool = False,
    ) -> C:
        """A new, empty collection ``name`` for vectors of ``model`` (or of width ``dim``).

        ``model`` is anything :func:`embedkit.load` takes; its spec and dim are stored
        with the collection. ``replace=True`` drops a collection of that name first
        (otherwise an existing one is a :class:`ConfigError`).
        """
        _check_name(name)
        embedder = None if model is None else load(model)
        if embedder is None:
            if dim is None:
                raise ConfigError("give model= (a spec or an Embedder) or dim=")
            record = Record(None, _positive(dim))
        else:
            record = Record(embedder.spec, _model_dim(embedder, dim))
        coll = cls._make(target, name, record, replace)
        coll._embedder = embedder
        return coll

    @classmethod
    def open(cls: type[C], target: Any, name: str, *, model: ModelLike = None) -> C:
        """The stored collection ``name``; ``model`` (if given) must be the stored model."""
        _check_name(name)
        coll = cls._attach(target, name)
        if model is not None:
            try:
                coll.use_embedder(model)
            except BaseException:
                coll.close()
                raise
        return coll

    @classmethod
    def from_index(
        cls: type[C],
        target: Any,
        name: str,
        index: VectorIndex,
        *,
        model: ModelLike = None,
        replace: bool = False,
        batch_size: int = 1000,
    ) -> C:
        """A new collection holding the rows of ``index`` (ids, metadata, spec, dim)."""
        if not isinstance(index, VectorIndex):
            raise ConfigError(f"index must be a VectorIndex, got {type(index).__name__}")
        _check_name(name)
        coll = cls._make(target, name, Record(index.spec, index.dim), replace)
        try:
            if model is not None:
                coll.use_embedder(model)
            vectors, ids, metadata = index.vectors, index.ids, index.metadata
            for a in range(0, len(ids), _positive(batch_size)):
                b = a + batch_size
                coll._write(Rows(a, np.asarray(vectors[a:b]), ids[a:b], metadata[a:b]))
        except BaseException:
            coll.close()
            raise
        return coll

    @classmethod
    def from_frame(
        cls: type[C],
        target: Any,
        name: str,
        frame: EmbeddedFrame,
        *,
        id_column: str | None = None,
        replace: bool = False,
    ) -> C:
        """A new collection of an :class:`~embedkit.frame.EmbeddedFrame`'s rows.

        Ids are the frame's index labels (or ``id_column``), metadata each row's fields
        (as :meth:`EmbeddedFrame.to_index` makes them).
        """
        index = frame.to_index(id_column)
        attached = frame._embedder  # the frame's model object, if it has one
        return cls.from_index(target, name, index, model=attached, replace=replace)

    # -- model --------------------------------------------------------------------
    @property
    def embedder(self) -> Embedder:
        """The model of text queries: the one given, else built from the stored spec."""
        if self._embedder is None:
            if self.spec is None:
                raise ConfigError(
                    f"collection {self.name!r} has no model spec; search with vectors"
                )
            self.use_embedder(self.spec)
        assert self._embedder is not None
        return self._embedder

    def use_embedder(self, model: ModelLike) -> None:
        """Attach the query model; it must be the stored model and have the stored dim."""
        embedder = load(model)
        check_same_model(self.spec, embedder)
        _model_dim(embedder, self.dim)
        self._embedder = embedder

    # -- rows ---------------------------------------------------------------------
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
        """Embed ``texts`` with the collection's model (the one job path) and store them.

        Ids and metadata are checked before anything is embedded, and every text is
        embedded before anything is written. Rows the model's ``on_long="drop"``
        policy drops are left out with their ids and metadata.
        """
        if isinstance(texts, str):
            raise ConfigError("add() takes a sequence of texts; wrap one text in a list")
        job = EmbedJob(texts, self.embedder, cache=cache, batch_size=batch_size, progress=progress)
        n = len(texts)
        all_ids, all_meta = self._checked(ids, metadata, n)
        blocks = list(job.batches())
        if not blocks:
            return
        rows = np.concatenate([b.rows for b in blocks]).tolist()
        matrix = np.concatenate([b.vectors for b in blocks])
        kept_meta = [all_meta[i] for i in rows]
        self._write(
            Rows(len(self), unit_rows(matrix, self.dim), [all_ids[i] for i in rows], kept_meta)
        )

    def add_vectors(
        self,
        vectors: ArrayLike,
        ids: Sequence[Id] | None = None,
        metadata: Sequence[Metadata] | None = None,
    ) -> None:
        """Store ``vectors`` ``(m, dim)`` (unit-normalised); ids default to row ordinals."""
        unit = unit_rows(vectors, self.dim)
        all_ids, all_meta = self._checked(ids, metadata, unit.shape[0])
        self._write(Rows(len(self), unit, all_ids, all_meta))

    def _checked(
        self, ids: Sequence[Id] | None, metadata: Sequence[Metadata] | None, m: int
    ) -> tuple[list[Id], list[Metadata]]:
        start = len(self)
        taken = dict.fromkeys(self._stored_ids(), 0) if start else {}
        return check_ids(ids, m, start, taken), check_metadata(metadata, m)

    def to_index(self) -> VectorIndex:
        """A :class:`VectorIndex` of every row (same ids, metadata, spec; rows in order)."""
        vectors, ids, metadata = self._read_all()
        index = VectorIndex.from_vectors(
            vectors.reshape(-1, self.dim), ids=ids, metadata=metadata, spec=self.spec
        )
        if self._embedder is not None:
            index.use_embedder(self._embedder)
        return index

    # -- search -------------------------------------------------------------------
    def search(self, query: str | ArrayLike, k: int = 10, *, exact: bool = False) -> list[Hit]:
        """The ``k`` rows most similar to ``query`` (a text or a ``(dim,)`` vector), best first.

        ``exact=True`` asks for exact search where the collection has an ANN index.
        Hits are ordered by score, ties by the lower row ordinal: the engine is asked
        for ``k + min(k, TIE_MARGIN)`` rows, so rows tied at the k-th place are chosen
        by row as in VectorIndex (up to that many ties).
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
            raise ConfigError(f"k must be an integer >= 0, got {k!r}")
        vector = self._query_vector(query)
        if k == 0 or not len(self):
            return []
        # asked for more than k: rows tied in score at the k-th place go to the lower row
        found = self._query(vector, int(k) + min(int(k), TIE_MARGIN), exact)
        found.sort(key=lambda m: (-m.score, m.row))
        return [Hit(m.id, m.score, m.metadata) for m in found[:k]]

    def _query_vector(self, query: str | ArrayLike) -> NDArray[np.float32]:
        if isinstance(query, str):
            model = self.embedder
            check_same_model(self.spec, model)
            matrix = query_rows(embed_queries(model, [query]), self.dim)
            return matrix.reshape(self.dim)
        vector = np.asarray(query)
        if vector.ndim != 1:
            raise DimensionMismatchError(
                f"search() takes one query: a text or a ({self.dim},) vector, got shape "
                f"{vector.shape}"
            )
        if vector.shape[0] != self.dim:
            raise DimensionMismatchError(
                f"the query vector has dimension {vector.shape[0]}, collection {self.name!r} "
                f"has {self.dim} (made by {self.spec!r})"
            )
        return query_rows(vector, self.dim).reshape(self.dim)

    # -- lifetime -----------------------------------------------------------------
    def close(self) -> None:
        """Close the client/connection this object opened (one passed in stays open)."""
        if self._owned is not None:
            self._close()
            self._owned = None

    def __enter__(self: C) -> C:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.name!r} n={len(self)} dim={self.dim} spec={self.spec!r}>"
        )


def _check_name(name: object) -> None:
    if not isinstance(name, str) or not name or not name.replace("_", "a").isalnum():
        raise ConfigError(f"a collection name is letters, digits and '_' (not empty), got {name!r}")
    if not name.isascii() or name[0].isdigit():
        raise ConfigError(f"a collection name is ASCII and starts with a letter, got {name!r}")


def _positive(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"expected a positive integer, got {value!r}")
    return int(value)


def _model_dim(embedder: Embedder, dim: int | None) -> int:
    """The model's width, checked against ``dim`` where both are known."""
    try:
        width = int(embedder.dim)
    except UnknownDimensionError:
        if dim is None:
            raise
        return _positive(dim)
    if dim is not None and _positive(dim) != width:
        raise DimensionMismatchError(
            f"model {embedder.spec!r} makes {width}-dim vectors, the collection has {dim}"
        )
    return width
