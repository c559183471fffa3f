"""Reading texts to embed: corpus files (txt / CSV / JSONL / Parquet), tables, templates.

* :class:`Template` -- ``"Title: {Summary}; Content: {Text}"``: one text from named fields.
* :class:`CorpusReader` -- stream a file's records as texts, keeping ids and fields.
* :func:`build_texts` -- the text of each row of a DataFrame, or why it has none.
* :func:`read_csv` -- ``pandas.read_csv`` with errors that name the file and line.

Missing fields follow ``on_missing``: ``"error"`` (raise naming the row) or
``"drop"`` (leave the row out and count it), the same words everywhere.
"""

from __future__ import annotations

import csv
import json
import os
import string
import warnings
from collections import deque
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

from embedkit._optional import require
from embedkit.errors import ConfigError, InvalidInputError, UsageError
from embedkit.validation import text_problem

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CorpusReader",
    "OnMissing",
    "Row",
    "Template",
    "build_texts",
    "parse_float_lists",
    "read_csv",
]

OnMissing = Literal["error", "drop"]


# -- templates -----------------------------------------------------------------------
class Template:
    """``"Title: {Summary}; Content: {Text}"``: a text built from named fields.

    Fields are plain names (``{Product Name}`` works; no ``{}``, ``{0}``, ``{a.b}``).
    """

    def __init__(self, text: str) -> None:
        if not isinstance(text, str) or not text:
            raise ConfigError(f"a template must be a non-empty string, got {text!r}")
        fields: list[str] = []
        try:
            parsed = list(string.Formatter().parse(text))
        except ValueError as exc:
            raise ConfigError(f"template {text!r} is malformed: {exc}") from exc
        for _, name, spec, conversion in parsed:
            if name is None:
                continue
            if not name or name.isdigit() or any(c in name for c in ".[]"):
                raise ConfigError(
                    f"template {text!r}: {{{name}}} is not a field name; write {{ColumnName}}"
                )
            if spec or conversion:
                raise ConfigError(f"template {text!r}: format specs are not supported ({{{name}}})")
            if name not in fields:
                fields.append(name)
        if not fields:
            raise ConfigError(f"template {text!r} names no field, e.g. {{Text}}")
        self.text = text
        self.fields = fields

    def __repr__(self) -> str:
        return f"Template({self.text!r})"

    def fill(self, record: Mapping[str, Any]) -> tuple[str, str | None]:
        """``(text, None)``, or ``("", problem)`` when a field is missing or empty."""
        values: dict[str, str] = {}
        for name in self.fields:
            raw = record.get(name)
            value = str(raw) if not isinstance(raw, str) and not _is_missing(raw) else raw
            problem = text_problem(value)
            if problem or not isinstance(value, str):
                return "", f"field {name!r}: {problem}"
            values[name] = value
        return self.text.format_map(values), None


def _is_missing(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, (float, np.floating)):
        return bool(np.isnan(value))
    return type(value).__name__ in ("NAType", "NaTType")


def build_texts(
    df: pd.DataFrame, *, template: str | None = None, column: str | None = None
) -> pd.DataFrame:
    """Per row of ``df``: ``text`` (or None) and ``problem`` (None, or why it is unusable).

    Exactly one of ``template`` (e.g. ``"Title: {Summary}; Content: {Text}"``) and
    ``column`` is given. Result: a DataFrame with ``df``'s index.
    """
    pandas = require("pandas", "data")
    if (template is None) == (column is None):
        raise ConfigError("give exactly one of template= or column=")
    tpl = Template(template if template is not None else "{" + str(column) + "}")
    absent = [f for f in tpl.fields if f not in df.columns]
    if absent:
        raise ConfigError(
            f"no column {', '.join(map(repr, absent))}; the columns are "
            f"{', '.join(map(repr, map(str, df.columns)))}"
        )
    texts: list[str | None] = []
    problems: list[str | None] = []
    for record in df[tpl.fields].itertuples(index=False, name=None):
        text, problem = tpl.fill(dict(zip(tpl.fields, record, strict=True)))
        texts.append(None if problem else text)
        problems.append(problem)
    out: pd.DataFrame = pandas.DataFrame({"text": texts, "problem": problems}, index=df.index)
    return out


def read_csv(path: str | os.PathLike[str], **kwargs: Any) -> pd.DataFrame:
    """``pandas.read_csv`` with errors a user can act on (file, line, encoding)."""
    pandas = require("pandas", "data")
    try:
        with open(path, encoding=kwargs.get("encoding", "utf-8"), newline="") as fh:
            _refuse_duplicates(path, next(csv.reader(fh), []))
        out: pd.DataFrame = pandas.read_csv(path, **kwargs)
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"{path} is not valid UTF-8 (byte {exc.start}); re-encode it, e.g. iconv -f latin1 -t utf-8, "
            "or pass encoding=..."
        ) from exc
    except pandas.errors.ParserError as exc:
        raise InvalidInputError(f"{path} is not well-formed CSV: {exc}") from exc
    except pandas.errors.EmptyDataError as exc:
        raise InvalidInputError(f"{path} is empty") from exc
    return out


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
            _refuse_duplicates(self.path, header)
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


def _refuse_duplicates(path: object, header: Sequence[str]) -> None:
    """A header naming a column twice would silently keep one of them: refuse it."""
    twice = [name for name in dict.fromkeys(header) if header.count(name) > 1]
    if twice:
        raise InvalidInputError(
            f"{path}: the header names {', '.join(map(repr, twice))} more than once"
        )


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


def parse_float_lists(cells: list[Any]) -> NDArray[np.float32]:
    """``["[0.1, 0.2]", "[0.3, 0.4]"]`` -> float32 ``(2, 2)``; bad cells raise with their rows."""
    bad = [(i, "not a string") for i, c in enumerate(cells) if not isinstance(c, str)]
    if bad:
        raise InvalidInputError("cells without a vector", bad)
    stripped = [c.strip() for c in cells]
    bad = [
        (i, "not [..] bracketed")
        for i, c in enumerate(stripped)
        if not (c.startswith("[") and c.endswith("]"))
    ]
    if bad:
        raise InvalidInputError("cells that are not lists of floats", bad)
    if not stripped:
        return np.empty((0, 0), np.float32)
    widths = np.asarray([c.count(",") + 1 for c in stripped])
    dim = int(np.bincount(widths).argmax())
    bad = [(int(i), f"{widths[i]} values, expected {dim}") for i in np.flatnonzero(widths != dim)]
    if bad:
        raise InvalidInputError("rows of different lengths", bad)
    joined = ",".join(c[1:-1] for c in stripped)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        try:
            flat = np.fromstring(joined, dtype=np.float64, sep=",")
        except (ValueError, DeprecationWarning):
            flat = np.empty(0)
    if flat.size != dim * len(stripped) or not np.isfinite(flat).all():
        bad = [
            (i, "not a list of finite floats")
            for i, c in enumerate(stripped)
            if not _floats_ok(c, dim)
        ]
        raise InvalidInputError("cells that do not parse as floats", bad)
    return flat.reshape(len(stripped), dim).astype(np.float32)


def _floats_ok(cell: str, dim: int) -> bool:
    try:
        values = np.asarray([float(x) for x in cell[1:-1].split(",")])
    except ValueError:
        return False
    return values.size == dim and bool(np.isfinite(values).all())
