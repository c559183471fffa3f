"""Reading texts to embed: corpus files (txt / CSV / JSONL / Parquet), tables, templates.

* :class:`CorpusReader` -- stream a file's records as texts, keeping ids and fields
  (templates and tables: :mod:`embedkit.jobs.tables`).

Missing fields follow ``on_missing``: ``"error"`` (raise naming the row) or
``"drop"`` (leave the row out and count it), the same words everywhere.
"""

from __future__ import annotations

import csv
import json
from collections import deque
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from embedkit._optional import require
from embedkit.errors import ConfigError, InvalidInputError, UsageError
from embedkit.jobs.tables import Template, refuse_duplicates
from embedkit.validation import text_problem

if TYPE_CHECKING:
    pass

__all__ = ["CorpusReader", "OnMissing", "Row"]

OnMissing = Literal["error", "drop"]


# -- reading corpus files -------------------------------------------------------------
@dataclass
class Row:
    """One input record: its ``id``, the ``text`` to embed and the fields kept as metadata."""

    id: str | int
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


class CorpusReader:
    """Stream the records of a txt / CSV / JSONL / Parquet file as texts to embed.

    ``texts()`` yields each record's text and keeps its :class:`Row` until
    :meth:`take` hands it over, so memory holds only rows not yet written.
    Text: the whole line (txt), ``column`` (default ``text``), or ``template``
    filled from the record's fields. Ids: the line number for txt, the 0-based
    record number otherwise, or ``id_column``. Bad records raise
    :class:`~embedkit.errors.InvalidInputError` naming the file and line.
    """

    def __init__(
        self,
        path: Path,
        *,
        fmt: str = "auto",
        column: str | None = None,
        template: str | None = None,
        id_column: str | None = None,
        on_missing: OnMissing = "error",
    ) -> None:
        self.path = path
        self.fmt = _detect_format(path) if fmt == "auto" else fmt
        if self.fmt == "txt" and (column or template or id_column):
            raise UsageError(
                "a .txt corpus has one text per line: --column/--template/--id-column apply to CSV, JSONL and Parquet"
            )
        self.template = Template(template) if template else None
        self.column = column or "text"
        self.id_column = id_column
        if on_missing not in ("error", "drop"):
            raise ConfigError(f"on_missing must be 'error' or 'drop', got {on_missing!r}")
        self.on_missing = on_missing
        self.dropped = 0
        self._rows: deque[Row] = deque()
        self._seen_ids: set[str | int] = set()
        if self.fmt != "txt":
            self._peek()  # check the columns now, before any model is loaded

    def _peek(self) -> None:
        records = self._records()
        try:
            next(records, None)
        finally:
            records.close()

    def take(self, n: int) -> list[Row]:
        """The first ``n`` rows read and not yet taken (in input order)."""
        return [self._rows.popleft() for _ in range(min(n, len(self._rows)))]

    def texts(self) -> Iterator[str]:
        records = self._txt() if self.fmt == "txt" else self._records()
        for where, number, record in records:
            if self.template is not None:
                text, problem = self.template.fill(record)
            else:
                value = record.get(self.column)
                problem = text_problem(value)
                text = value if isinstance(value, str) else ""
                if problem:
                    problem = f"field {self.column!r}: {problem}"
            if problem:
                if self.on_missing == "drop":
                    self.dropped += 1
                    continue
                raise InvalidInputError(
                    f"{self.path}: {where}: {problem} (use on_missing='drop' / --on-missing drop to leave such rows out)"
                )
            row_id = number if self.id_column is None else record.get(self.id_column)
            if not isinstance(row_id, (str, int)) or isinstance(row_id, bool) or row_id == "":
                raise InvalidInputError(
                    f"{self.path}: {where}: id field {self.id_column!r} is missing"
                )
            if self.id_column is not None:
                if row_id in self._seen_ids:
                    raise InvalidInputError(
                        f"{self.path}: {where}: duplicate id {row_id!r} in {self.id_column!r}; "
                        "ids must be unique (leave out --id-column to number the rows)"
                    )
                self._seen_ids.add(row_id)
            meta = dict(record)
            meta.setdefault("text", text)
            self._rows.append(Row(row_id, text, meta))
            yield text

    def _check_fields(self, fields: Sequence[str]) -> None:
        wanted = self.template.fields if self.template is not None else [self.column]
        if self.id_column is not None:
            wanted = [*wanted, self.id_column]
        missing = [f for f in wanted if f not in fields]
        if missing:
            raise UsageError(
                f"{self.path} has no column {', '.join(map(repr, missing))}; its columns are "
                f"{', '.join(map(repr, fields))} (choose with --column or --template)"
            )

    def _txt(self) -> Iterator[tuple[str, int, dict[str, Any]]]:
        for number, line in _decoded_lines(self.path):
            text = line.rstrip("\r\n")
            if text.strip():
                yield f"line {number}", number, {"text": text}

    def _records(self) -> Generator[tuple[str, int, dict[str, Any]], None, None]:
        if self.fmt == "csv":
            yield from self._csv()
        elif self.fmt == "jsonl":
            yield from self._jsonl()
        else:
            yield from self._parquet()

    def _csv(self) -> Iterator[tuple[str, int, dict[str, Any]]]:
        lines = _decoded_lines(self.path)
        reader = csv.reader((line for _, line in lines), strict=True)
        try:
            header = next(reader, None)
            if header is None:
                raise InvalidInputError(f"{self.path} is empty (no header line)")
            refuse_duplicates(self.path, header)
            self._check_fields(header)
            number = 0
            for record in reader:
                if not record:
                    continue
                if len(record) != len(header):
                    raise InvalidInputError(
                        f"{self.path}: line {reader.line_num}: malformed CSV row with "
                        f"{len(record)} fields, the header has {len(header)}"
                    )
                yield f"line {reader.line_num}", number, dict(zip(header, record, strict=True))
                number += 1
        except csv.Error as exc:
            raise InvalidInputError(
                f"{self.path}: line {reader.line_num}: malformed CSV ({exc})"
            ) from exc

    def _jsonl(self) -> Iterator[tuple[str, int, dict[str, Any]]]:
        number = 0
        checked = False
        for line_no, line in _decoded_lines(self.path):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidInputError(
                    f"{self.path}: line {line_no}: invalid JSON ({exc.msg})"
                ) from exc
            if not isinstance(record, dict):
                raise InvalidInputError(f"{self.path}: line {line_no}: expected a JSON object")
            if not checked:
                self._check_fields(list(record))
                checked = True
            yield f"line {line_no}", number, record
            number += 1

    def _parquet(self) -> Iterator[tuple[str, int, dict[str, Any]]]:
        pa = require("pyarrow", "data")
        pq = require("pyarrow.parquet", "data")
        try:
            source = pq.ParquetFile(str(self.path))
        except (pa.ArrowException, OSError) as exc:
            if isinstance(exc, PermissionError):
                raise
            raise InvalidInputError(f"{self.path} is not a readable Parquet file ({exc})") from exc
        self._check_fields(source.schema_arrow.names)
        number = 0
        for batch in source.iter_batches(batch_size=4096):
            for record in batch.to_pylist():
                yield f"row {number}", number, record
                number += 1


def _detect_format(path: Path) -> str:
    suffix = path.suffix.lower()
    formats = {
        ".txt": "txt",
        ".cor": "txt",
        ".csv": "csv",
        ".jsonl": "jsonl",
        ".ndjson": "jsonl",
        ".parquet": "parquet",
    }
    if suffix not in formats:
        raise UsageError(
            f"cannot tell the format of {path} from its extension; pass --format txt|csv|jsonl|parquet"
        )
    return formats[suffix]


def _decoded_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` per physical line, decoded as UTF-8 one line at a time."""
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidInputError(
                    f"{path}: line {number} is not valid UTF-8 (byte {exc.start} of the line); "
                    "re-encode the file, e.g. iconv -f latin1 -t utf-8"
                ) from exc
            yield number, text.lstrip("\ufeff") if number == 1 else text
