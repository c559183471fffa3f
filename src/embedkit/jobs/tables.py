"""Texts from tables: templates over fields, DataFrame rows, CSV files, the tutorial's lists.

* :class:`Template` -- ``"Title: {Summary}; Content: {Text}"``: one text from named fields;
* :func:`build_texts` -- the text of each row of a DataFrame, or why it has none;
* :func:`read_csv` -- ``pandas.read_csv`` with errors that name the file and line;
* :func:`parse_float_lists` -- the tutorial's stringified vectors, without ``eval``.
"""

from __future__ import annotations

import csv
import os
import string
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from embedkit._optional import require
from embedkit.errors import ConfigError, InvalidInputError
from embedkit.validation import text_problem

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Template", "build_texts", "parse_float_lists", "read_csv", "refuse_duplicates"]


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
            refuse_duplicates(path, next(csv.reader(fh), []))
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


def refuse_duplicates(path: object, header: Sequence[str]) -> None:
    """A header naming a column twice would silently keep one of them: refuse it."""
    twice = [name for name in dict.fromkeys(header) if header.count(name) > 1]
    if twice:
        raise InvalidInputError(
            f"{path}: the header names {', '.join(map(repr, twice))} more than once"
        )


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
