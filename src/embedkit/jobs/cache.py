"""A persistent embedding cache in SQLite, keyed by the model's spec and sha256(text).

Layout (one file, standard-library ``sqlite3``, WAL journal)::

    specs(id INTEGER PRIMARY KEY, spec TEXT UNIQUE)
    entries(spec_id, hash BLOB(32), dim, dtype, vec BLOB, PRIMARY KEY(spec_id, hash))

(a rowid table with 16 KiB pages: vectors are large rows, which WITHOUT ROWID
tables store badly -- 3x the file size and 5x slower inserts, measured)

* ``hash = sha256(text.encode("utf-8"))``; ``vec`` is ``dim`` little-endian float32
  (``dim * 4`` bytes). Two specs never share entries: the spec is part of the key,
  and the spec names the backend, the model and every option that changes vectors.
* An entry whose dtype, length or values (NaN/inf) are wrong counts as a miss, so
  the caller recomputes it and :meth:`EmbeddingCache.put` overwrites it.
* Safe with several threads (one connection per thread) and several processes
  (WAL, ``BEGIN IMMEDIATE`` writes, a busy timeout): each ``put`` is one
  transaction, which is what makes the cache a checkpoint for resumable jobs.

Default file: ``$EMBEDKIT_CACHE_DIR/embeddings.sqlite3`` if the variable is set,
else ``embeddings.sqlite3`` in the user's cache directory (``$XDG_CACHE_HOME`` or
``~/.cache`` on Linux, ``~/Library/Caches`` on macOS, ``%LOCALAPPDATA%`` on Windows),
under ``embedkit/``.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import sys
import threading
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from embedkit._closing import Closing
from embedkit.errors import ConfigError, DimensionMismatchError, StorageError
from embedkit.jobs._sqlite import connect, is_read_only_failure, translate, while_locked

__all__ = [
    "ENV_VAR",
    "CacheOption",
    "EmbeddingCache",
    "default_cache_path",
    "open_cache",
    "text_key",
]

ENV_VAR = "EMBEDKIT_CACHE_DIR"
FILE_NAME = "embeddings.sqlite3"
SCHEMA_VERSION = 1
DTYPE = "<f4"
_CHUNK = 500  # keys per SELECT ... IN (...), below every SQLite parameter limit

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS specs(id INTEGER PRIMARY KEY, spec TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS entries(
    spec_id INTEGER NOT NULL,
    hash BLOB NOT NULL,
    dim INTEGER NOT NULL,
    dtype TEXT NOT NULL,
    vec BLOB NOT NULL,
    PRIMARY KEY(spec_id, hash)
);
"""


def text_key(text: str) -> bytes:
    """The 32-byte cache key of ``text``: ``sha256(text.encode("utf-8"))``."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def _user_cache_dir() -> Path:
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "embedkit" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "embedkit"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "embedkit"


def default_cache_path() -> Path:
    """Where the cache lives unless told otherwise (see the module docstring)."""
    folder = os.environ.get(ENV_VAR)
    return (Path(folder).expanduser() if folder else _user_cache_dir()) / FILE_NAME


class EmbeddingCache(Closing):
    """Float32 vectors by ``(spec, sha256(text))`` in one SQLite file.

    ``path`` is the database file (created with its folder); ``None`` uses
    :func:`default_cache_path`. Usable from many threads and processes at once.

    ``read_only=True`` opens an existing file without ever writing to it: lookups
    are served, :meth:`put` stores nothing, :meth:`clear` raises
    :class:`~embedkit.errors.StorageError`. A cache file in a place that cannot be
    written (a read-only mount, a shared folder of someone else's) is opened that
    way by itself, with a warning.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        timeout: float = 60.0,
        read_only: bool = False,
    ) -> None:
        if not isinstance(read_only, bool):
            raise ConfigError(f"read_only must be True or False, got {read_only!r}")
        self.path = Path(path).expanduser() if path is not None else default_cache_path()
        if self.path.is_dir():
            self.path = self.path / FILE_NAME
        self.timeout = float(timeout)
        self._local = threading.local()
        self._pid = os.getpid()
        self._cons: list[sqlite3.Connection] = []
        self._spec_ids: dict[str, int] = {}
        self._lock = threading.Lock()
        self.corrupt_seen = 0
        self.read_only = read_only
        if read_only:
            self._connection()  # opens now: a missing or unreadable file fails here
            return
        try:
            self._create()
        except StorageError as exc:
            if not (self.path.is_file() and is_read_only_failure(exc)):
                raise
            self.close()
            self.read_only = True
            self._connection()
            warnings.warn(
                f"the embedding cache {self.path} cannot be written ({exc}); it is used "
                "read-only: its vectors are reused, new ones are not stored",
                RuntimeWarning,
                stacklevel=2,
            )

    def _create(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the cache folder {self.path.parent}: {exc}") from exc
        self._run_write(lambda con: con.executescript(_SCHEMA), script=True)
        self._run_write(
            lambda con: con.execute(
                "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
        )

    def __repr__(self) -> str:
        return f"<EmbeddingCache {self.path}{' (read-only)' if self.read_only else ''}>"

    # -- connections --------------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        if self._pid != os.getpid():  # a forked child must not use its parent's connections
            self._pid = os.getpid()
            self._local = threading.local()
            self._cons = []
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is None:
            try:
                con = while_locked(self._open, self.timeout)
            except sqlite3.Error as exc:
                raise self._translate(exc) from exc
            self._local.con = con
            with self._lock:
                self._cons.append(con)
        return con

    def _open(self) -> sqlite3.Connection:
        return connect(self.path, self.timeout, read_only=self.read_only)

    def _translate(self, exc: sqlite3.Error) -> Exception:
        return translate(exc, self.path)

    def _run_write(
        self, action: Callable[[sqlite3.Connection], object], *, script: bool = False
    ) -> None:
        con = self._connection()

        def once() -> None:
            if script:
                action(con)
                return
            con.execute("BEGIN IMMEDIATE")
            try:
                action(con)
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

        try:
            while_locked(once, self.timeout)
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc

    def _spec_id(self, spec: str, *, create: bool) -> int | None:
        if not isinstance(spec, str) or not spec:
            raise ConfigError(f"a cache namespace needs a non-empty spec string, got {spec!r}")
        found = self._spec_ids.get(spec)
        if found is not None:
            return found
        if create:
            self._run_write(
                lambda con: con.execute("INSERT OR IGNORE INTO specs(spec) VALUES (?)", (spec,))
            )
        try:
            row = (
                self._connection()
                .execute("SELECT id FROM specs WHERE spec = ?", (spec,))
                .fetchone()
            )
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc
        if row is None:
            return None
        self._spec_ids[spec] = int(row[0])
        return int(row[0])

    # -- public API ---------------------------------------------------------------
    def get(
        self, spec: str, dim: int, keys: Sequence[bytes]
    ) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
        """Look up ``keys`` (see :func:`text_key`) under ``spec``.

        Returns ``(vectors, found)``: ``vectors`` float32 ``(len(keys), dim)`` and
        ``found`` bool ``(len(keys),)``; ``vectors[i]`` is meaningful only where
        ``found[i]``. Corrupt entries (wrong dtype, length or non-finite values)
        are reported as not found and counted in ``corrupt_seen``.
        """
        out = np.zeros((len(keys), dim), dtype=np.float32)
        found = np.zeros(len(keys), dtype=bool)
        spec_id = self._spec_id(spec, create=False)
        if spec_id is None or not keys:
            return out, found
        where: dict[bytes, list[int]] = {}
        for i, key in enumerate(keys):
            where.setdefault(bytes(key), []).append(i)
        unique = list(where)
        con = self._connection()
        want = dim * 4
        for start in range(0, len(unique), _CHUNK):
            part = unique[start : start + _CHUNK]
            sql = (
                "SELECT hash, dim, dtype, vec FROM entries WHERE spec_id = ? AND hash IN "
                f"({','.join('?' * len(part))})"
            )
            try:
                rows = con.execute(sql, (spec_id, *part)).fetchall()
            except sqlite3.Error as exc:
                raise self._translate(exc) from exc
            for key, row_dim, dtype, blob in rows:
                if (
                    row_dim != dim
                    or dtype != DTYPE
                    or not isinstance(blob, bytes)
                    or len(blob) != want
                ):
                    self.corrupt_seen += 1
                    continue
                vec = np.frombuffer(blob, dtype=DTYPE)
                if not np.isfinite(vec).all():
                    self.corrupt_seen += 1
                    continue
                for i in where[bytes(key)]:
                    out[i] = vec
                    found[i] = True
        return out, found

    def put(self, spec: str, keys: Sequence[bytes], vectors: NDArray[np.float32]) -> None:
        """Store ``vectors[i]`` under ``(spec, keys[i])`` in one transaction (replacing).

        A read-only cache stores nothing.
        """
        matrix = np.ascontiguousarray(vectors, dtype=DTYPE)
        if matrix.ndim != 2 or matrix.shape[0] != len(keys):
            raise DimensionMismatchError(f"{len(keys)} keys but vectors of shape {matrix.shape}")
        if not keys or self.read_only:
            return
        spec_id = self._spec_id(spec, create=True)
        dim = int(matrix.shape[1])
        rows = [(spec_id, bytes(k), dim, DTYPE, matrix[i].tobytes()) for i, k in enumerate(keys)]
        self._run_write(
            lambda con: con.executemany(
                "INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?)", rows
            )
        )

    def count(self, spec: str | None = None) -> int:
        """Entries stored under ``spec``, or in all namespaces."""
        con = self._connection()
        try:
            if spec is None:
                return int(con.execute("SELECT COUNT(*) FROM entries").fetchone()[0])
            spec_id = self._spec_id(spec, create=False)
            if spec_id is None:
                return 0
            sql = "SELECT COUNT(*) FROM entries WHERE spec_id = ?"
            return int(con.execute(sql, (spec_id,)).fetchone()[0])
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc

    def specs(self) -> dict[str, int]:
        """Every namespace (spec) in the cache with its number of entries."""
        sql = (
            "SELECT s.spec, COUNT(e.hash) FROM specs s LEFT JOIN entries e "
            "ON e.spec_id = s.id GROUP BY s.id ORDER BY s.spec"
        )
        try:
            rows = self._connection().execute(sql).fetchall()
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc
        return {str(spec): int(n) for spec, n in rows}

    def clear(self, spec: str | None = None) -> None:
        """Delete the entries of ``spec``, or every entry."""
        if self.read_only:
            raise StorageError(f"the embedding cache {self.path} is open read-only")
        if spec is None:
            self._run_write(lambda con: con.execute("DELETE FROM entries"))
            return
        spec_id = self._spec_id(spec, create=False)
        if spec_id is not None:
            self._run_write(
                lambda con: con.execute("DELETE FROM entries WHERE spec_id = ?", (spec_id,))
            )

    def close(self) -> None:
        """Close every connection this object opened (in any thread)."""
        with self._lock:
            for con in self._cons:
                con.close()
            self._cons.clear()
        self._local = threading.local()


CacheOption = EmbeddingCache | str | os.PathLike[str] | bool | None
_DEFAULT_CACHES: dict[Path, EmbeddingCache] = {}


def open_cache(cache: CacheOption) -> EmbeddingCache | None:
    """``True``/``None`` -> the default cache; ``False`` -> no cache; a path -> that file."""
    if cache is False:
        return None
    if cache is True or cache is None:
        path = default_cache_path()
        if path not in _DEFAULT_CACHES:  # one per location and process: connections are reused
            _DEFAULT_CACHES[path] = EmbeddingCache(path)
        return _DEFAULT_CACHES[path]
    if isinstance(cache, EmbeddingCache):
        return cache
    if isinstance(cache, (str, os.PathLike)):
        if not str(cache).strip():
            raise ConfigError("cache path is empty; pass a file path, True (default) or False")
        return EmbeddingCache(cache)
    raise ConfigError(f"cache must be a bool, a path or an EmbeddingCache, got {cache!r}")
