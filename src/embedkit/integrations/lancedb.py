"""embedkit collections in LanceDB: an embedded database, a folder on disk.

::

    from embedkit.integrations.lancedb import LanceCollection

    coll = LanceCollection.create("build/lance", "reviews", model="hashing?dim=256")
    coll.add(["Great dog food", "Spicy hot sauce"], ids=["a", "b"])
    coll.search("pet food", k=1)      # [Hit(id='a', score=..., metadata=None)]

Target: a folder (``lancedb.connect`` is called on it) or an open
``lancedb.DBConnection``. One table per collection, with the columns ``row``
(int64), ``id`` (string), ``id_is_int`` (bool), ``metadata`` (JSON text or null)
and ``vector`` (``fixed_size_list<float32>[dim]``, unit rows); the record
(``embedkit.spec``, ``embedkit.dim``, ``embedkit.format``) is the table's schema
metadata, the same keys as embedkit's Parquet files.

Search is exact (a flat scan, ``bypass_vector_index``) until :meth:`build_index`
made an ANN index (``IVF_HNSW_SQ``, cosine). Its search parameters are attributes,
read at each query: ``ef`` (HNSW search depth; LanceDB's default gives poor recall,
so embedkit sets ``DEFAULT_EF``), ``nprobes`` (IVF partitions visited, ``None``:
LanceDB's default) and ``refine_factor`` (re-rank ``refine_factor * k`` candidates
with the full vectors: this undoes the 8-bit quantisation, ``None`` turns it off).
``build_index`` builds nothing below ``min_rows`` rows (default
``INDEX_MIN_ROWS``), where the flat scan is about as fast and exact. Rows added
after the index are searched by a flat scan and merged in by LanceDB.

Needs ``pip install 'embedkit[lancedb]'``. Set ``RUST_LOG=error`` to silence
LanceDB's warnings. LanceDB opens no network connection for a local folder
(checked with ``strace -f -e trace=connect``).
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from embedkit._optional import require
from embedkit.errors import ConfigError, CorruptFileError, EmbedkitError, StorageError
from embedkit.integrations._vdbrecord import (
    EngineErrors,
    Match,
    Record,
    Rows,
    decode_id,
    decode_metadata,
)
from embedkit.integrations._vectordb import VectorCollection
from embedkit.jobs.writers import vector_array, vector_field
from embedkit.search.rows import Id, Metadata

__all__ = ["DEFAULT_EF", "INDEX_MIN_ROWS", "LanceCollection"]

DEFAULT_EF = 200
DEFAULT_REFINE = 2
INDEX_MIN_ROWS = 50_000
COLUMNS = ["row", "id", "id_is_int", "metadata"]
_ERRORS = (OSError, RuntimeError, ValueError)


def _lancedb() -> Any:
    return require("lancedb", "lancedb")


def _schema(record: Record) -> Any:
    pa = require("pyarrow", "lancedb")
    fields = [
        pa.field("row", pa.int64(), nullable=False),
        pa.field("id", pa.string(), nullable=False),
        pa.field("id_is_int", pa.bool_(), nullable=False),
        pa.field("metadata", pa.string()),
        vector_field("vector", record.dim),
    ]
    return pa.schema(fields, metadata=record.as_dict())


class LanceCollection(VectorCollection):
    """An embedkit collection in a LanceDB table; see the module docstring."""

    engine: ClassVar[str] = "lancedb"

    def __init__(self, table: Any, name: str, record: Record, owned: Any = None) -> None:
        super().__init__(name, record, owned)
        self.table = table
        self.ef: int = DEFAULT_EF
        self.nprobes: int | None = None
        self.refine_factor: int | None = DEFAULT_REFINE
        self._indexed: bool | None = None

    @classmethod
    def _connect(cls, target: Any) -> tuple[Any, Any]:
        """``(connection, owned)``: a folder is connected to, a connection used as is."""
        if isinstance(target, (str, os.PathLike)):
            try:
                db = _lancedb().connect(os.fspath(target))
            except _ERRORS as exc:
                raise StorageError(f"cannot open LanceDB at {target}: {exc}") from exc
            return db, db
        if not hasattr(target, "open_table"):
            raise ConfigError(
                f"target must be a folder or a lancedb connection, got {type(target).__name__}"
            )
        return target, None

    @classmethod
    def _make(cls, target: Any, name: str, record: Record, replace: bool) -> LanceCollection:
        db, owned = cls._connect(target)
        mode = "overwrite" if replace else "create"
        try:
            table = db.create_table(name, schema=_schema(record), mode=mode)
        except ValueError as exc:
            raise ConfigError(
                f"LanceDB table {name!r} already exists; open() it or pass replace=True"
            ) from exc
        except _ERRORS as exc:
            raise StorageError(f"cannot create LanceDB table {name!r}: {exc}") from exc
        return cls(table, name, record, owned)

    @classmethod
    def _attach(cls, target: Any, name: str) -> LanceCollection:
        db, owned = cls._connect(target)
        try:
            table = db.open_table(name)
            schema = table.schema
        except ValueError as exc:
            raise ConfigError(f"no LanceDB table {name!r} in {target}") from exc
        except _ERRORS as exc:
            raise CorruptFileError(f"LanceDB table {name!r} cannot be read: {exc}") from exc
        where = f"LanceDB table {name!r}"
        raw = {k.decode(): v.decode() for k, v in (schema.metadata or {}).items()}
        record = Record.parse(raw, where)
        if schema.names[:4] != COLUMNS or "vector" not in schema.names:
            raise CorruptFileError(f"{where} has columns {schema.names}, expected {COLUMNS}")
        width = getattr(schema.field("vector").type, "list_size", None)
        if width != record.dim:
            raise CorruptFileError(
                f"{where}: vectors of width {width}, the record says {record.dim}"
            )
        return cls(table, name, record, owned)

    # -- rows ---------------------------------------------------------------------
    def __len__(self) -> int:
        with self._errors("count"):
            return int(self.table.count_rows())

    def _write(self, rows: Rows) -> None:
        pa = require("pyarrow", "lancedb")
        encoded = rows.encoded()
        columns = [list(col) for col in zip(*encoded, strict=True)] if encoded else [[]] * 4
        arrays = [
            pa.array(columns[0], pa.int64()),
            pa.array(columns[1], pa.string()),
            pa.array(columns[2], pa.bool_()),
            pa.array(columns[3], pa.string()),
            vector_array(rows.vectors),
        ]
        with self._errors("write"):
            self.table.add(pa.Table.from_arrays(arrays, schema=self.table.schema))

    def _stored_ids(self) -> set[Id]:
        with self._errors("read"):
            got = self.table.search().select(["id", "id_is_int"]).limit(len(self)).to_arrow()
        where = f"LanceDB table {self.name!r}"
        return {
            decode_id(text, flag, where)
            for text, flag in zip(got["id"].to_pylist(), got["id_is_int"].to_pylist(), strict=True)
        }

    def _read_all(self) -> tuple[NDArray[np.float32], list[Id], list[Metadata]]:
        with self._errors("read"):
            got = self.table.to_arrow().sort_by("row")
        where = f"LanceDB table {self.name!r}"
        if got["row"].to_pylist() != list(range(len(got))):
            raise CorruptFileError(f"{where}: row ordinals are not 0..{len(got) - 1}")
        flat = got["vector"].combine_chunks().flatten().to_numpy(zero_copy_only=False)
        ids = [
            decode_id(t, f, where)
            for t, f in zip(got["id"].to_pylist(), got["id_is_int"].to_pylist(), strict=True)
        ]
        metadata = [decode_metadata(m, where) for m in got["metadata"].to_pylist()]
        return np.asarray(flat, np.float32).reshape(len(got), self.dim), ids, metadata

    # -- search -------------------------------------------------------------------
    @property
    def has_index(self) -> bool:
        """Whether the table has an ANN index on its vectors."""
        if self._indexed is None:
            with self._errors("read"):
                self._indexed = bool(self.table.list_indices())
        return self._indexed

    def build_index(
        self,
        *,
        min_rows: int = INDEX_MIN_ROWS,
        m: int = 20,
        ef_construction: int = 300,
        num_partitions: int | None = None,
    ) -> bool:
        """Build an ``IVF_HNSW_SQ`` cosine index if the table has ``>= min_rows`` rows.

        Returns whether an index was built. ``m`` and ``ef_construction`` are HNSW's
        graph degree and build depth, ``num_partitions`` the IVF partitions
        (``None``: LanceDB's choice from the row count).
        """
        if len(self) < min_rows:
            return False
        index = require("lancedb.index", "lancedb")
        config = index.IvfHnswSq(
            distance_type="cosine", m=m, ef_construction=ef_construction,
            num_partitions=num_partitions,
        )  # fmt: skip
        with self._errors("index"):
            self.table.create_index("vector", config=config, replace=True)
        self._indexed = True
        return True

    def _query(self, vector: NDArray[np.float32], k: int, exact: bool) -> list[Match]:
        where = f"LanceDB table {self.name!r}"
        with self._errors("search"):
            query = self.table.search(vector, vector_column_name="vector")
            query = query.distance_type("cosine").limit(k).select([*COLUMNS, "_distance"])
            if exact or not self.has_index:
                query = query.bypass_vector_index()
            else:
                query = query.ef(max(int(self.ef), k))  # LanceDB refuses ef < k
                if self.nprobes is not None:
                    query = query.nprobes(int(self.nprobes))
                if self.refine_factor is not None:
                    query = query.refine_factor(int(self.refine_factor))
            got = query.to_arrow()
        return [
            Match(
                row, decode_id(text, flag, where), 1.0 - float(dist), decode_metadata(meta, where)
            )
            for row, text, flag, meta, dist in zip(
                *(got[c].to_pylist() for c in [*COLUMNS, "_distance"]), strict=True
            )
        ]

    def _errors(self, what: str) -> _Translate:
        return _Translate(f"LanceDB table {self.name!r}: {what} failed")

    def _close(self) -> None:
        close = getattr(self._owned, "close", None)
        if callable(close):
            close()


class _Translate(EngineErrors):
    """Engine failures -> :class:`CorruptFileError` (data) / :class:`StorageError` (I/O)."""

    def translate(self, exc: BaseException) -> EmbedkitError | None:
        if not isinstance(exc, _ERRORS):
            return None
        kind = StorageError if isinstance(exc, PermissionError) else CorruptFileError
        return kind(f"{self.message}: {exc}")
