"""The row columns of an index: ids (row -> id, id -> row) and metadata (row -> dict | None).

Both cost next to nothing per row where they can, so that a memory-mapped index of
10M rows loads in a few MB of Python objects:

* :class:`IdColumn` is a ``range`` while every row ``i`` has the id ``i`` (the default
  ids): O(1) memory, O(1) lookups. The first other id turns it into a list, and the
  id -> row dict is built on the first lookup, not before.
* :class:`MetadataColumn` keeps loaded metadata as the bytes of ``metadata.jsonl``
  (memory-mapped with ``mmap=True``) and the offsets of its line ends (int64, 8 B
  per row); a row is parsed when a hit needs it. Rows added later are a list; asking
  for the whole list parses every line once and keeps the list from then on.

On disk ``ids.json`` holds a JSON array of the ids or, for default ids,
``{"range": [0, n]}`` (folder format version 2).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, BinaryIO

import numpy as np
from numpy.typing import NDArray

from embedkit.errors import ConfigError, CorruptFileError
from embedkit.search.rows import Id, Metadata, check_ids, metadata_lines

__all__ = ["IdColumn", "MetadataColumn", "is_range"]

NULL_LINE = np.frombuffer(b"null\n", np.uint8)
_SCAN = 1 << 26  # bytes scanned per step when finding line ends (bounded temporaries)


class IdColumn(Mapping[Id, int]):
    """Row ids in row order; as a mapping, id -> row."""

    def __init__(self, ids: range | list[Id] | None = None) -> None:
        self._ids: range | list[Id] = range(0) if ids is None else ids
        self._rows: dict[Id, int] | None = None

    # -- Mapping[Id, int]: id -> row ------------------------------------------------
    def __getitem__(self, key: Id) -> int:
        if isinstance(self._ids, range):
            if type(key) is int and key in self._ids:
                return key
            raise KeyError(key)
        if self._rows is None:
            self._rows = {row_id: row for row, row_id in enumerate(self._ids)}
        return self._rows[key]

    def __contains__(self, key: object) -> bool:
        try:
            self[key]  # type: ignore[index]
        except (KeyError, TypeError):
            return False
        return True

    def __iter__(self) -> Iterator[Id]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    # -- rows -------------------------------------------------------------------------
    def rows(self, rows: list[int]) -> list[Id]:
        """The ids of ``rows`` (``rows[j]`` in ``[0, len)``), in that order."""
        ids = self._ids
        return [ids[r] for r in rows]

    def head(self, n: int) -> list[Id]:
        return list(self._ids[:n])

    def to_list(self) -> list[Id]:
        return list(self._ids)

    def checked(self, ids: Sequence[Id] | None, m: int) -> list[Id] | None:
        """``m`` new ids checked against these; ``None`` where they are the default ones
        continuing a range (nothing to check, nothing to hold)."""
        if ids is None and isinstance(self._ids, range):
            return None
        return check_ids(ids, m, len(self), self)

    def extend(self, new: list[Id] | None, m: int) -> None:
        """Append ``m`` ids (``new`` from :meth:`checked`; ``None``: the default ones)."""
        start = len(self)
        if isinstance(self._ids, range):
            if new is None or is_range(new, start):
                self._ids = range(start + m)
                return
            self._ids = list(self._ids)
        assert isinstance(self._ids, list)
        added = list(range(start, start + m)) if new is None else new
        self._ids += added
        if self._rows is not None:
            self._rows.update((row_id, start + i) for i, row_id in enumerate(added))

    # -- ids.json -----------------------------------------------------------------------
    def encode(self) -> bytes:
        if isinstance(self._ids, range):
            return json.dumps({"range": [0, len(self._ids)]}).encode()
        return json.dumps(self._ids).encode()

    @classmethod
    def decode(cls, value: Any, count: int, where: str) -> IdColumn:
        """The column stored as ``value`` (parsed ids.json) for ``count`` rows."""
        if isinstance(value, dict):
            if value != {"range": [0, count]}:
                raise CorruptFileError(f"{where}: ids must be {{'range': [0, {count}]}}")
            return cls(range(count))
        if not isinstance(value, list) or len(value) != count:
            raise CorruptFileError(f"{where}: does not hold {count} ids")
        try:
            ids = check_ids(value, count, 0, {})
        except ConfigError as exc:
            raise CorruptFileError(f"{where}: {exc}") from exc
        return cls(range(count) if is_range(ids, 0) else ids)


def is_range(ids: Sequence[Id], start: int) -> bool:
    """Whether ``ids`` are the default ids ``start, start + 1, ...`` (ints, not bools)."""
    return all(type(v) is int and v == start + i for i, v in enumerate(ids))


class MetadataColumn:
    """Metadata in row order: loaded JSON lines parsed on access, then a list of new rows."""

    def __init__(self, entries: list[Metadata] | None = None) -> None:
        self._lines = memoryview(b"")  # slices of a memoryview are cheap, of a memmap not
        self._loaded = 0  # rows held as lines
        self._nulls = False  # every loaded line is "null" (no ends kept: row r is at 5 r)
        self._ends: NDArray[np.int64] = np.empty(0, np.int64)
        self._tail: list[Metadata] = [] if entries is None else entries
        self._where = ""

    @classmethod
    def from_lines(cls, lines: bytes | NDArray[np.uint8], count: int, where: str) -> MetadataColumn:
        """The column over JSON lines (``\\n``-terminated, one per row; checked row by row
        when read: the file's sha256 is the check of the whole)."""
        column = cls()
        column._lines = memoryview(lines) if isinstance(lines, bytes) else lines.data
        column._where = where
        column._loaded = count
        column._nulls = _all_null(lines, count)
        if column._nulls:
            return column
        column._ends = _line_ends(lines)
        if len(column._ends) != count or (count and column._ends[-1] != len(lines) - 1):
            raise CorruptFileError(
                f"{where}: {len(column._ends)} metadata lines, the manifest says {count}"
            )
        return column

    def __len__(self) -> int:
        return self._loaded + len(self._tail)

    def __getitem__(self, row: int) -> Metadata:
        return self.rows([row])[0]

    def rows(self, rows: list[int]) -> list[Metadata]:
        """The metadata of ``rows`` (``rows[j]`` in ``[0, len)``), in that order.

        Row by row in Python: a search asks for about ten rows, just after the
        scan or graph walk has evicted the caches, where each numpy call costs
        microseconds (one batched lookup of the line ends measured 3x slower).
        """
        base, ends, lines, tail = self._loaded, self._ends, self._lines, self._tail
        out: list[Metadata] = []
        for r in rows:
            if r >= base:
                out.append(tail[r - base])
            elif self._nulls:
                out.append(None)
            else:
                start = ends.item(r - 1) + 1 if r else 0
                out.append(self._parse(bytes(lines[start : ends.item(r)]), r))
        return out

    def _parse(self, raw: bytes, row: int) -> Metadata:
        if raw == b"null":  # rows without metadata: a tenth of json.loads's time
            return None
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise CorruptFileError(f"{self._where}: metadata line {row} is not JSON") from exc
        if value is not None and not isinstance(value, dict):
            raise CorruptFileError(f"{self._where}: metadata line {row} is not an object")
        return value  # type: ignore[no-any-return]

    def head(self, n: int) -> list[Metadata]:
        return [self[i] for i in range(min(n, len(self)))]

    def to_list(self) -> list[Metadata]:
        """Every row (a new list); the loaded lines are parsed once, then kept parsed."""
        if self._nulls:
            nulls: list[Metadata] = [None] * self._loaded
            self._tail = nulls + self._tail
        elif self._loaded:
            lines = bytes(self._lines).split(b"\n")[:-1]
            try:  # one JSON array: one C call instead of a call per line
                parsed = json.loads(b"[" + b",".join(lines) + b"]")
                ok = len(parsed) == len(lines)
            except ValueError:
                ok = False
            if not ok or not all(v is None or isinstance(v, dict) for v in parsed):
                parsed = [self._parse(raw, i) for i, raw in enumerate(lines)]  # names the row
            self._tail = parsed + self._tail
        self._lines, self._loaded, self._nulls = memoryview(b""), 0, False
        self._ends = np.empty(0, np.int64)  # (not a view: it would keep the old ends alive)
        return list(self._tail)

    def extend(self, entries: list[Metadata]) -> None:
        self._tail += entries

    def write(self, fh: BinaryIO) -> None:
        """The column as JSON lines (loaded lines copied as they are)."""
        for start in range(0, len(self._lines), _SCAN):
            fh.write(self._lines[start : start + _SCAN])
        fh.write(metadata_lines(self._tail))


def _all_null(lines: bytes | NDArray[np.uint8], count: int) -> bool:
    """Whether ``lines`` are exactly ``count`` lines ``null`` (an index saved without
    metadata), checked in bounded steps."""
    data = np.frombuffer(lines, np.uint8) if isinstance(lines, bytes) else lines
    if not count or len(data) != len(NULL_LINE) * count:
        return False
    step = _SCAN - _SCAN % len(NULL_LINE)
    return all(
        (data[a : a + step].reshape(-1, len(NULL_LINE)) == NULL_LINE).all()
        for a in range(0, len(data), step)
    )


def _line_ends(lines: bytes | NDArray[np.uint8]) -> NDArray[np.int64]:
    """Offsets of every ``\\n`` in ``lines``, found in bounded steps."""
    data = np.frombuffer(lines, np.uint8) if isinstance(lines, bytes) else lines
    parts = []
    for start in range(0, len(data), _SCAN):
        ends = np.flatnonzero(data[start : start + _SCAN] == 10).astype(np.int64, copy=False)
        ends += start
        parts.append(ends)
    return parts[0] if len(parts) == 1 else np.concatenate([np.empty(0, np.int64), *parts])
