"""SQLite plumbing of the embedding cache: opening (read-write or read-only),
retrying while another process holds the lock, and translating errors.

A read-only cache is opened with ``mode=ro``; when SQLite cannot even read a
WAL database that way (its ``-shm`` file cannot be created in a read-only
folder), with ``immutable=1``, which is right for a location nobody can write.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

from embedkit.errors import CorruptFileError, StorageError

_R = TypeVar("_R")

__all__ = ["connect", "is_read_only_failure", "translate", "while_locked"]

_HINTS = (
    ("locked", "another process holds it longer than the timeout"),
    ("busy", "another process holds it longer than the timeout"),
    ("readonly", "the file or its folder is read-only"),
    ("read-only", "the file or its folder is read-only"),
    ("full", "the disk is full"),
    ("unable to open", "the file cannot be opened"),
)


def connect(path: Path, timeout: float, *, read_only: bool) -> sqlite3.Connection:
    """A connection in autocommit mode, tuned for the cache (WAL unless ``read_only``)."""
    if read_only:
        return _connect_read_only(path, timeout)
    con = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    try:
        con.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        con.execute("PRAGMA page_size = 16384")  # no-op once the file exists
        con.execute("PRAGMA journal_mode = WAL")
        con.execute("PRAGMA synchronous = NORMAL")
        con.execute("PRAGMA cache_size = -65536")  # 64 MiB: the key index stays in RAM
    except BaseException:
        con.close()
        raise
    return con


def _connect_read_only(path: Path, timeout: float) -> sqlite3.Connection:
    if not path.is_file():
        raise sqlite3.OperationalError(f"unable to open database file {path} (it does not exist)")
    last: sqlite3.Error | None = None
    for flags in ("mode=ro", "mode=ro&immutable=1"):
        uri = f"file:{quote(str(path.resolve()))}?{flags}"
        con = sqlite3.connect(
            uri, uri=True, timeout=timeout, isolation_level=None, check_same_thread=False
        )
        try:
            con.execute("PRAGMA query_only = 1")
            con.execute("SELECT count(*) FROM sqlite_master").fetchone()  # reads the header
            return con
        except sqlite3.OperationalError as exc:
            con.close()
            last = exc
        except BaseException:
            con.close()
            raise
    assert last is not None
    raise last


def while_locked(step: Callable[[], _R], timeout: float) -> _R:
    """Run ``step``, again while another process holds the lock, up to ``timeout``.

    SQLite's busy handler does not cover every case: switching to WAL and the
    schema script can fail at once with "database is locked" when a second
    process opens the same file at the same moment.
    """
    deadline = time.monotonic() + timeout
    pause = 0.005
    while True:
        try:
            return step()
        except sqlite3.OperationalError as exc:
            locked = "locked" in str(exc) or "busy" in str(exc)
            if not locked or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


def translate(exc: sqlite3.Error, path: Path) -> Exception:
    """A corrupt file is :class:`CorruptFileError`; locked, read-only, full or
    unopenable is :class:`StorageError` (the data is fine, the place is not)."""
    text = str(exc)
    corrupt = isinstance(exc, sqlite3.DatabaseError) and (
        "not a database" in text or "malformed" in text or "corrupt" in text
    )
    if corrupt:
        return CorruptFileError(
            f"the embedding cache {path} is damaged ({exc}); delete the file "
            "or use another cache location"
        )
    why = next((hint for key, hint in _HINTS if key in text.lower()), "it cannot be used")
    return StorageError(f"the embedding cache {path} failed: {exc} ({why})")


def is_read_only_failure(exc: BaseException) -> bool:
    """Whether a failed write-mode open means "this place cannot be written"."""
    text = str(exc).lower()
    return any(key in text for key in ("readonly", "read-only", "unable to open"))
