"""embedkit collections in PostgreSQL with the pgvector extension.

::

    from embedkit.integrations.pgvector import PgVectorCollection

    coll = PgVectorCollection.create("postgresql://user@host/db", "reviews", model="hashing?dim=256")
    coll.add(["Great dog food", "Spicy hot sauce"], ids=["a", "b"])
    coll.search("pet food", k=1)

Target: a conninfo string (a connection is opened with ``autocommit=True`` and
closed by :meth:`PgVectorCollection.close`) or an open ``psycopg.Connection``
(psycopg 3), used as is: every write and search runs in ``conn.transaction()``,
which is a savepoint inside a transaction you opened, so commit it yourself then.

In the database: ``CREATE EXTENSION IF NOT EXISTS vector`` (needs the right to),
the table ``embedkit_collections (name, spec, dim, format)`` holding each
collection's record, and per collection a table ``name`` with the columns ``"row"``
(bigint, the row ordinal), ``id`` (text), ``id_is_int`` (boolean; ``(id,
id_is_int)`` is unique), ``metadata`` (jsonb) and ``embedding`` (``vector(dim)``,
unit rows). PostgreSQL text holds no NUL character: ids or metadata with one are
refused with :class:`~embedkit.errors.InvalidInputError` naming the rows.

Search ranks by pgvector's cosine distance ``<=>``. Without an index it is an exact
scan; :meth:`build_index` adds an HNSW index (``vector_cosine_ops``) from
``min_rows`` rows on (default ``INDEX_MIN_ROWS``). Then ``ef_search``
(``hnsw.ef_search``, raised to the number of rows asked for, since pgvector returns
at most that many) sets recall; ``search(..., exact=True)`` turns index scans off
for that query. pgvector's documented limits: ``vector`` holds at most 16,000
dimensions and HNSW indexes ``vector`` up to 2,000; from 2,001 to 4,000 dimensions
:meth:`build_index` indexes ``embedding::halfvec(dim)`` (16-bit floats, the scores
still come from the full vectors); beyond 4,000 there is no HNSW index, only exact
search. Needs ``pip install 'embedkit[pgvector]'`` (``psycopg[binary]``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from embedkit._optional import require
from embedkit.errors import (
    ConfigError,
    CorruptFileError,
    EmbedkitError,
    InvalidInputError,
    StorageError,
)
from embedkit.integrations._vdbrecord import (
    DIM_KEY,
    FORMAT_KEY,
    SPEC_KEY,
    EngineErrors,
    Match,
    Record,
    Rows,
    decode_id,
)
from embedkit.integrations._vectordb import VectorCollection
from embedkit.jobs.tables import parse_float_lists
from embedkit.search.rows import Id, Metadata

__all__ = ["DEFAULT_EF_SEARCH", "INDEX_MIN_ROWS", "MAX_DIM", "PgVectorCollection"]

RECORDS = "embedkit_collections"
DEFAULT_EF_SEARCH = 200
INDEX_MIN_ROWS = 20_000
MAX_DIM, MAX_INDEXED_DIM, MAX_HALFVEC_DIM = 16_000, 2_000, 4_000


def _psycopg() -> Any:
    return require("psycopg", "pgvector")


def _sql() -> Any:
    return require("psycopg.sql", "pgvector")


class PgVectorCollection(VectorCollection):
    """An embedkit collection in a PostgreSQL table with a pgvector column."""

    engine: ClassVar[str] = "pgvector"

    def __init__(self, conn: Any, name: str, record: Record, owned: Any = None) -> None:
        super().__init__(name, record, owned)
        self.conn = conn
        self.ef_search: int = DEFAULT_EF_SEARCH
        self._table = _sql().Identifier(name)

    @classmethod
    def _connect(cls, target: Any) -> tuple[Any, Any]:
        psycopg = _psycopg()
        if isinstance(target, str):
            try:
                conn = psycopg.connect(target, autocommit=True)
            except psycopg.Error as exc:
                raise StorageError(f"cannot connect to PostgreSQL: {exc}") from exc
            return conn, conn
        if not isinstance(target, psycopg.Connection):
            raise ConfigError(
                f"target must be a conninfo string or a psycopg Connection, got "
                f"{type(target).__name__}"
            )
        return target, None

    @classmethod
    def _make(cls, target: Any, name: str, record: Record, replace: bool) -> PgVectorCollection:
        if record.dim > MAX_DIM:
            raise ConfigError(f"pgvector's vector type holds at most {MAX_DIM} dimensions")
        _check_length(name)
        conn, owned = cls._connect(target)
        sql, table = _sql(), _sql().Identifier(name)
        with _errors(f"PostgreSQL collection {name!r}: create", owned), conn.transaction():
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (name text PRIMARY KEY, spec text, "
                    "dim integer NOT NULL, format integer NOT NULL)"
                ).format(sql.Identifier(RECORDS))
            )
            if replace:
                conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
                conn.execute(sql.SQL("DELETE FROM {} WHERE name = %s").format(
                    sql.Identifier(RECORDS)), [name])  # fmt: skip
            elif _read_record(conn, name) is not None or _exists(conn, name):
                raise ConfigError(
                    f"PostgreSQL collection {name!r} already exists; open() it or pass replace=True"
                )
            conn.execute(
                sql.SQL(
                    'CREATE TABLE {} ("row" bigint PRIMARY KEY, id text NOT NULL, '
                    "id_is_int boolean NOT NULL, metadata jsonb, embedding vector({}) NOT NULL, "
                    "UNIQUE (id, id_is_int))"
                ).format(table, sql.Literal(record.dim))
            )
            conn.execute(
                sql.SQL("INSERT INTO {} VALUES (%s, %s, %s, %s)").format(sql.Identifier(RECORDS)),
                [name, record.spec, record.dim, int(record.as_dict()[FORMAT_KEY])],
            )
        return cls(conn, name, record, owned)

    @classmethod
    def _attach(cls, target: Any, name: str) -> PgVectorCollection:
        conn, owned = cls._connect(target)
        where = f"PostgreSQL collection {name!r}"
        with _errors(f"{where}: open", owned), conn.transaction():
            raw = _read_record(conn, name)
            exists = _exists(conn, name)
            if raw is None and not exists:
                raise ConfigError(f"no PostgreSQL collection {name!r}")
            if not exists:
                raise CorruptFileError(f"{where}: the record exists but the table is gone")
            record = Record.parse(raw, where)
            width = conn.execute(
                "SELECT atttypmod FROM pg_attribute WHERE attrelid = %s::regclass "
                "AND attname = 'embedding'",
                [f'"{name}"'],
            ).fetchone()
        if width is None or int(width[0]) != record.dim:
            raise CorruptFileError(f"{where}: the embedding column is not vector({record.dim})")
        return cls(conn, name, record, owned)

    # -- rows ---------------------------------------------------------------------
    @property
    def _where(self) -> str:
        return f"PostgreSQL collection {self.name!r}"

    def __len__(self) -> int:
        with _errors(f"{self._where}: count"):
            got = self.conn.execute(_sql().SQL("SELECT count(*) FROM {}").format(self._table))
            return int(got.fetchone()[0])

    def _write(self, rows: Rows) -> None:
        encoded = rows.encoded()
        bad = [
            (i, "a NUL character (PostgreSQL text cannot hold one)")
            for i, (_, text, _, meta) in enumerate(encoded)
            if "\x00" in text or (meta is not None and "\\u0000" in meta)
        ]
        if bad:
            raise InvalidInputError("ids or metadata that PostgreSQL cannot store", bad)
        statement = (
            _sql()
            .SQL('COPY {} ("row", id, id_is_int, metadata, embedding) FROM STDIN')
            .format(self._table)
        )
        with _errors(f"{self._where}: write"), self.conn.transaction():
            cur = self.conn.cursor()
            with cur.copy(statement) as copy:
                for values, vector in zip(encoded, rows.vectors.tolist(), strict=True):
                    copy.write_row((*values, "[" + ",".join(map(repr, vector)) + "]"))

    def _select(self, columns: str) -> list[tuple[Any, ...]]:
        statement = _sql().SQL(f'SELECT {columns} FROM {{}} ORDER BY "row"').format(self._table)
        with _errors(f"{self._where}: read"):
            rows: list[tuple[Any, ...]] = self.conn.execute(statement).fetchall()
            return rows

    def _stored_ids(self) -> set[Id]:
        return {decode_id(t, f, self._where) for t, f in self._select("id, id_is_int")}

    def _read_all(self) -> tuple[NDArray[np.float32], list[Id], list[Metadata]]:
        got = self._select('"row", id, id_is_int, metadata, embedding::text')
        if [r[0] for r in got] != list(range(len(got))):
            raise CorruptFileError(f"{self._where}: row ordinals are not 0..{len(got) - 1}")
        ids = [decode_id(t, f, self._where) for _, t, f, _, _ in got]
        if not got:
            return np.empty((0, self.dim), np.float32), [], []
        return parse_float_lists([r[4] for r in got]), ids, [r[3] for r in got]

    # -- search -------------------------------------------------------------------
    def build_index(
        self, *, min_rows: int = INDEX_MIN_ROWS, m: int = 16, ef_construction: int = 64
    ) -> bool:
        """Add an HNSW cosine index if the table has ``>= min_rows`` rows; whether it did.

        ``m``/``ef_construction`` are pgvector's (defaults 16 and 64). Over 2,000
        dimensions the index is on ``embedding::halfvec(dim)``; over 4,000 there is
        none (:class:`ConfigError`).
        """
        if self.dim > MAX_HALFVEC_DIM:
            raise ConfigError(
                f"pgvector's HNSW indexes at most {MAX_HALFVEC_DIM} dimensions (as halfvec); "
                f"collection {self.name!r} has {self.dim}: search is exact"
            )
        if len(self) < min_rows:
            return False
        sql = _sql()
        column = sql.SQL(self._column())
        ops = sql.SQL("halfvec_cosine_ops" if self.dim > MAX_INDEXED_DIM else "vector_cosine_ops")
        statement = sql.SQL(
            "CREATE INDEX IF NOT EXISTS {} ON {} USING hnsw (({}) {}) "
            "WITH (m = {}, ef_construction = {})"
        ).format(
            sql.Identifier(f"{self.name}_hnsw"), self._table, column, ops,
            sql.Literal(int(m)), sql.Literal(int(ef_construction)),
        )  # fmt: skip
        with _errors(f"{self._where}: index"), self.conn.transaction():
            self.conn.execute(statement)
        return True

    def _column(self, query: bool = False) -> str:
        """The indexed expression (or, ``query=True``, the query's cast to match it)."""
        if self.dim > MAX_INDEXED_DIM:
            return f"%s::halfvec({self.dim})" if query else f"embedding::halfvec({self.dim})"
        return "%s::vector" if query else "embedding"

    def _query(self, vector: NDArray[np.float32], k: int, exact: bool) -> list[Match]:
        sql, text = _sql(), "[" + ",".join(map(repr, vector.tolist())) + "]"
        statement = sql.SQL(
            'SELECT "row", id, id_is_int, metadata, 1 - (embedding <=> %s::vector) FROM {} '
            f"ORDER BY {self._column()} <=> {self._column(query=True)} LIMIT %s"
        ).format(self._table)
        with _errors(f"{self._where}: search"), self.conn.transaction():
            if exact:
                self.conn.execute("SET LOCAL enable_indexscan = off")
            else:
                ef = max(int(self.ef_search), k)
                self.conn.execute(sql.SQL("SET LOCAL hnsw.ef_search = {}").format(sql.Literal(ef)))
            got = self.conn.execute(statement, [text, text, k]).fetchall()
        return [
            Match(int(row), decode_id(t, f, self._where), float(score), meta)
            for row, t, f, meta, score in got
        ]

    def _close(self) -> None:
        self._owned.close()


def _check_length(name: str) -> None:
    if len(name) > 58:  # 63 bytes, less "_hnsw" for the index name
        raise ConfigError(f"a PostgreSQL collection name has at most 58 characters: {name!r}")


def _exists(conn: Any, name: str) -> bool:
    got = conn.execute("SELECT to_regclass(%s)", [f'"{name}"']).fetchone()
    return got is not None and got[0] is not None


def _read_record(conn: Any, name: str) -> dict[str, Any] | None:
    if not _exists(conn, RECORDS):
        return None
    got = conn.execute(
        _sql().SQL("SELECT spec, dim, format FROM {} WHERE name = %s").format(
            _sql().Identifier(RECORDS)), [name],
    ).fetchone()  # fmt: skip
    if got is None:
        return None
    return {SPEC_KEY: got[0] or "", DIM_KEY: got[1], FORMAT_KEY: got[2]}


class _errors(EngineErrors):
    """psycopg failures -> :class:`StorageError`; a duplicate key -> :class:`ConfigError`."""

    def __init__(self, message: str, owned: Any = None) -> None:
        super().__init__(message)
        self.owned = owned  # a connection opened for this call, closed if it fails

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        if exc is not None and self.owned is not None:
            self.owned.close()
        super().__exit__(kind, exc, tb)

    def translate(self, exc: BaseException) -> EmbedkitError | None:
        psycopg = _psycopg()
        if not isinstance(exc, psycopg.Error):
            return None
        if isinstance(exc, psycopg.errors.UniqueViolation):
            return ConfigError(f"{self.message}: an id is already stored: {exc}")
        return StorageError(f"{self.message}: {exc}")
