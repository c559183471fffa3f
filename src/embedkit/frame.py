"""The review-search workflow as an API: a table in, searchable rows with vectors out.

The tutorial's steps (build a text from columns, drop rows with missing fields,
count tokens, embed, save, reload, search with a text query), each done right::

    from embedkit.frame import embed_frame, EmbeddedFrame, read_tutorial_csv

    ef = embed_frame(df, "hashing?dim=256", template="Title: {Summary}; Content: {Text}")
    ef.report                      # one row per input row left out or changed, and why
    ef.save("reviews.parquet")     # rows + vectors (fixed-size float32 lists) + the spec
    ef = EmbeddedFrame.load("reviews.parquet")
    ef.search("pet food", k=5)     # the matching rows as a DataFrame, with a score column

* Missing fields (None, NaN, empty or whitespace-only cells, in any field the
  template uses) are reported per row and the rows dropped (``missing="drop"``),
  or raise :class:`~embedkit.errors.InvalidInputError` naming them (``"error"``).
* Tokens are counted with the backend's own tokenizer (``embedder.count_tokens``:
  cl100k_base for OpenAI models, the model's tokenizer for sentence-transformers).
  Rows over ``embedder.max_tokens`` follow ``on_long``: ``"error"``, ``"truncate"``,
  ``"chunk"`` (done by the backend, see :mod:`embedkit.protocol`) or ``"drop"``.
* Vectors come from :func:`embedkit.jobs.embed.embed`, so the cache applies.

Parquet layout: the frame's columns, ``text`` and ``n_tokens``, and the vectors
as ``embedding: fixed_size_list<float32>[dim]``; schema metadata ``embedkit.spec``
and ``embedkit.dim``.
"""

from __future__ import annotations

import os
import string
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

from embedkit._optional import require
from embedkit.errors import (
    ConfigError,
    CorruptFileError,
    EmbedkitWarning,
    InvalidInputError,
    TextTooLongError,
)
from embedkit.jobs.embed import DEFAULT_BATCH_SIZE, CacheOption, ModelLike, embed
from embedkit.protocol import Embedder, check_on_long, embed_queries
from embedkit.registry import load
from embedkit.search.index import VectorIndex
from embedkit.search.kernels import normalize, search
from embedkit.validation import text_problem

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "EmbeddedFrame",
    "Template",
    "build_texts",
    "describe",
    "embed_frame",
    "load_searchable",
    "read_tutorial_csv",
]

VECTOR_COLUMN = "embedding"
Missing = Literal["drop", "error"]
OnLongFrame = Literal["error", "truncate", "chunk", "drop"]
Matrix = NDArray[np.float32]


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


# -- texts from a DataFrame ------------------------------------------------------------
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


def _with_policy(model: ModelLike, on_long: OnLongFrame | None) -> Embedder:
    embedder = load(model)
    if on_long in (None, "drop", "error") or getattr(embedder, "max_tokens", None) is None:
        return embedder  # "drop" and "error" are applied here, before the model sees the texts
    check_on_long(on_long)
    if getattr(embedder, "on_long", None) == on_long:
        return embedder
    if model is None or isinstance(model, (str, Mapping)):
        return load(model, on_long=on_long)
    raise ConfigError(
        f"{embedder.spec} applies on_long={getattr(embedder, 'on_long', None)!r}, not "
        f"{on_long!r}; build the model with on_long={on_long!r} or pass its spec"
    )


def _token_counts(embedder: Embedder, texts: list[str]) -> NDArray[np.int64] | None:
    counter = getattr(embedder, "count_tokens", None)
    if counter is None:
        return None
    try:
        return np.asarray(counter(texts), dtype=np.int64)
    except ConfigError:  # a backend without a tokenizer
        return None


def embed_frame(
    data: pd.DataFrame | str | os.PathLike[str],
    model: ModelLike = None,
    *,
    template: str | None = None,
    column: str | None = None,
    missing: Missing = "drop",
    on_long: OnLongFrame | None = None,
    cache: CacheOption = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool | None = None,
) -> EmbeddedFrame:
    """Embed the rows of a DataFrame (or a CSV file) and keep them with their vectors.

    Steps: text per row from ``template``/``column`` (default column ``"text"``);
    rows with missing fields dropped and reported (``missing="drop"``) or an
    :class:`~embedkit.errors.InvalidInputError` naming them (``"error"``); token
    counts with the backend's tokenizer; rows over its limit handled by
    ``on_long`` (``None``: the model's own policy); then :func:`embedkit.jobs.embed.embed`.
    ``result.report`` lists every row dropped, truncated or chunked, and why.
    """
    pandas = require("pandas", "data")
    if on_long not in (None, "error", "truncate", "chunk", "drop"):
        raise ConfigError(
            f"on_long must be 'error', 'truncate', 'chunk' or 'drop', got {on_long!r}"
        )
    df = read_csv(data) if isinstance(data, (str, os.PathLike)) else data
    if template is None and column is None:
        column = "text"
    if column != "text" and "text" in df.columns:
        raise ConfigError("the frame already has a 'text' column; use column='text' or rename it")
    built = build_texts(df, template=template, column=column)
    positions = np.arange(len(df))
    report: list[tuple[Any, int, str, str]] = []
    bad = built["problem"].notna().to_numpy()
    if bad.any():
        missing_rows = [(int(i), str(built["problem"].iat[i])) for i in positions[bad]]
        if missing == "error":
            raise InvalidInputError(
                f"{len(missing_rows)} of {len(df)} rows have missing fields", missing_rows
            )
        if missing != "drop":
            raise ConfigError(f"missing must be 'drop' or 'error', got {missing!r}")
        report += [(df.index[i], i, "dropped", why) for i, why in missing_rows]
    keep = positions[~bad]
    texts = [str(t) for t in built["text"].to_numpy()[keep]]
    embedder = _with_policy(model, on_long)
    counts = _token_counts(embedder, texts)
    limit = getattr(embedder, "max_tokens", None)
    if counts is not None and limit is not None:
        policy = str(on_long or getattr(embedder, "on_long", "error"))
        long_mask = counts > int(limit)
        long_rows = [
            (int(keep[j]), f"{int(counts[j])} tokens > {limit}") for j in np.flatnonzero(long_mask)
        ]
        if long_rows and policy == "error":
            raise TextTooLongError(
                f"{len(long_rows)} rows exceed {limit} tokens (on_long='error'; "
                "use 'truncate', 'chunk' or 'drop')",
                long_rows,
            )
        action = {"drop": "dropped", "truncate": "truncated", "chunk": "chunked"}[policy]
        report += [(df.index[i], i, action, why) for i, why in long_rows]
        if policy == "drop" and long_rows:
            keep, texts, counts = (
                keep[~long_mask],
                [t for t, m in zip(texts, long_mask, strict=True) if not m],
                counts[~long_mask],
            )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmbedkitWarning)  # reported per row in .report
        vectors = embed(texts, embedder, cache=cache, batch_size=batch_size, progress=progress)
    kept: pd.DataFrame = df.iloc[keep].copy()
    kept["text"] = texts
    kept["n_tokens"] = pandas.array(
        counts if counts is not None else [None] * len(texts), dtype="Int64"
    )
    frame_report = pandas.DataFrame(report, columns=["row", "position", "action", "reason"])
    frame_report = frame_report.sort_values("position", kind="stable").reset_index(drop=True)
    return EmbeddedFrame(kept, vectors, embedder.spec, frame_report, _embedder=embedder)


def read_csv(path: str | os.PathLike[str], **kwargs: Any) -> pd.DataFrame:
    """``pandas.read_csv`` with errors a user can act on (file, line, encoding)."""
    pandas = require("pandas", "data")
    try:
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


# -- the result: rows + vectors ------------------------------------------------------
@dataclass
class EmbeddedFrame:
    """Rows (a DataFrame, original index kept) and their vectors, row for row.

    ``vectors`` is float32 ``(len(rows), dim)``; ``spec`` names the model that made
    them (``None`` when unknown, e.g. imported from the tutorial's CSV);
    ``report`` has one line per input row dropped/truncated/chunked.
    """

    rows: pd.DataFrame
    vectors: Matrix
    spec: str | None
    report: pd.DataFrame
    _embedder: Embedder | None = None
    _unit: Matrix | None = None

    def __post_init__(self) -> None:
        if self.vectors.ndim != 2 or self.vectors.shape[0] != len(self.rows):
            raise ConfigError(f"{len(self.rows)} rows but vectors of shape {self.vectors.shape}")

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def embedder(self, model: ModelLike = None) -> Embedder:
        """The query model: ``model`` if given (it must match ``spec``), else ``load(spec)``."""
        from embedkit.errors import ModelMismatchError

        if model is not None:
            chosen = load(model)
        elif self._embedder is not None:
            chosen = self._embedder
        elif self.spec:
            chosen = load(self.spec)
        else:
            raise ConfigError("these vectors carry no model spec; pass model= to search them")
        if self.spec and chosen.spec != self.spec:
            raise ModelMismatchError(
                f"the rows were embedded with {self.spec!r} but the query model is "
                f"{chosen.spec!r}; documents and queries must use the same model"
            )
        self._embedder = chosen
        return chosen

    def search(self, query: str, k: int = 10, *, model: ModelLike = None) -> pd.DataFrame:
        """The ``k`` rows most similar to ``query``, best first, with a ``score`` column."""
        qv = embed_queries(self.embedder(model), [query])
        if self._unit is None:
            self._unit = normalize(self.vectors)
        found = search(normalize(qv), self._unit, k)
        out: pd.DataFrame = self.rows.iloc[found.indices[0]].copy()
        out["score"] = found.scores[0]
        return out

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write rows + vectors to one Parquet file (see the module docstring)."""
        pa = require("pyarrow", "data")
        pq = require("pyarrow.parquet", "data")
        if VECTOR_COLUMN in self.rows.columns:
            raise ConfigError(f"the rows already have a column {VECTOR_COLUMN!r}")
        table = pa.Table.from_pandas(self.rows, preserve_index=True)
        flat = pa.array(np.ascontiguousarray(self.vectors, np.float32).reshape(-1), pa.float32())
        table = table.append_column(
            pa.field(VECTOR_COLUMN, pa.list_(pa.float32(), self.dim)),
            pa.FixedSizeListArray.from_arrays(flat, self.dim),
        )
        meta = dict(table.schema.metadata or {})
        meta[b"embedkit.spec"] = (self.spec or "").encode()
        meta[b"embedkit.dim"] = str(self.dim).encode()
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table.replace_schema_metadata(meta), str(target))
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> EmbeddedFrame:
        """Read a Parquet file written by :meth:`save` or ``embedkit embed --out x.parquet``."""
        pandas = require("pandas", "data")
        table, vectors, spec = _read_vector_table(Path(path))
        rows: pd.DataFrame = table.drop_columns([VECTOR_COLUMN]).to_pandas()
        empty = pandas.DataFrame(columns=["row", "position", "action", "reason"])
        return cls(rows, vectors, spec, empty)

    def to_index(self, id_column: str | None = None) -> VectorIndex:
        """A :class:`~embedkit.search.index.VectorIndex` of the vectors; metadata = each row's fields."""
        ids = (self.rows[id_column] if id_column else self.rows.index).tolist()
        clean = self.rows.astype(object).where(self.rows.notna(), None)
        metadata: list[dict[str, Any] | None] = [
            {str(k): v for k, v in record.items()} for record in clean.to_dict("records")
        ]
        index = VectorIndex.from_vectors(self.vectors, ids=ids, metadata=metadata, spec=self.spec)
        if self._embedder is not None:
            index.use_embedder(self._embedder)
        return index


def _read_vector_table(path: Path) -> tuple[Any, Matrix, str | None]:
    pa = require("pyarrow", "data")
    pq = require("pyarrow.parquet", "data")
    try:
        table = pq.read_table(str(path))
    except FileNotFoundError:
        raise
    except Exception as exc:  # pyarrow.ArrowInvalid and friends
        raise CorruptFileError(f"{path} is not a readable Parquet file: {exc}") from exc
    if VECTOR_COLUMN not in table.column_names:
        raise CorruptFileError(f"{path} has no {VECTOR_COLUMN!r} column of vectors")
    meta = table.schema.metadata or {}
    spec = meta.get(b"embedkit.spec", b"").decode() or None
    col = table.column(VECTOR_COLUMN)
    kind = col.type
    if not pa.types.is_fixed_size_list(kind) or not pa.types.is_float32(kind.value_type):
        raise CorruptFileError(
            f"{path}: {VECTOR_COLUMN!r} is {kind}, expected fixed_size_list<float>"
        )
    dim = int(kind.list_size)
    if col.null_count:
        raise CorruptFileError(f"{path}: {col.null_count} rows have no vector")
    flat = col.combine_chunks().flatten().to_numpy(zero_copy_only=False)
    vectors = np.ascontiguousarray(flat, dtype=np.float32).reshape(len(table), dim)
    if b"embedkit.dim" in meta and int(meta[b"embedkit.dim"]) != dim:
        raise CorruptFileError(
            f"{path}: vectors have dim {dim}, the metadata says {meta[b'embedkit.dim'].decode()}"
        )
    return table, vectors, spec


# -- files: search and describe ----------------------------------------------------------
def load_searchable(path: str | os.PathLike[str], *, mmap: bool = False) -> VectorIndex:
    """An index folder, or a Parquet file of rows + vectors, as a :class:`VectorIndex`.

    A Parquet file with an ``id`` column uses it for ids; otherwise the frame index.
    """
    target = Path(path)
    if target.is_dir():
        return VectorIndex.load(target, mmap=mmap)
    if not target.exists():
        raise FileNotFoundError(2, "No such file or directory", str(target))
    if target.suffix.lower() != ".parquet":
        raise ConfigError(f"{target} is neither an index folder nor a .parquet file")
    frame = EmbeddedFrame.load(target)
    return frame.to_index("id" if "id" in frame.rows.columns else None)


def describe(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What an index folder, a Parquet file of vectors or a ``.npy`` file holds."""
    import json

    target = Path(path)
    if not target.exists():
        raise FileNotFoundError(2, "No such file or directory", str(target))
    if target.is_dir():
        index = VectorIndex.load(target, mmap=True, verify=False)
        manifest = json.loads((target / "manifest.json").read_text("utf-8"))
        size = sum(int(f["bytes"]) for f in manifest["files"].values())
        return {
            "path": str(target),
            "kind": "index",
            "spec": index.spec,
            "dim": index.dim,
            "count": len(index),
            "bytes": size,
            "size": _human(size),
        }
    size = target.stat().st_size
    if target.suffix.lower() == ".npy":
        try:
            arr = np.load(target, mmap_mode="r", allow_pickle=False)
        except ValueError as exc:
            raise CorruptFileError(f"{target} is not a valid .npy file: {exc}") from exc
        return {
            "path": str(target),
            "kind": "npy",
            "spec": None,
            "dim": int(arr.shape[-1]),
            "count": int(arr.shape[0]),
            "dtype": str(arr.dtype),
            "bytes": size,
            "size": _human(size),
        }
    pq = require("pyarrow.parquet", "data")
    try:
        schema = pq.read_schema(str(target))
        count = pq.ParquetFile(str(target)).metadata.num_rows
    except Exception as exc:  # pyarrow.ArrowInvalid and friends
        raise CorruptFileError(f"{target} is not a readable Parquet file: {exc}") from exc
    meta = schema.metadata or {}
    dim = meta.get(b"embedkit.dim")
    return {
        "path": str(target),
        "kind": "parquet",
        "spec": meta.get(b"embedkit.spec", b"").decode() or None,
        "dim": int(dim) if dim else None,
        "count": int(count),
        "columns": [n for n in schema.names if not n.startswith("__")],
        "bytes": size,
        "size": _human(size),
    }


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


# -- the tutorial's CSV ------------------------------------------------------------------
def read_tutorial_csv(
    path: str | os.PathLike[str], *, column: str = "embedding", spec: str | None = None
) -> EmbeddedFrame:
    """Import the tutorial's CSV whose ``column`` holds stringified lists ``"[0.1, -0.2, ...]"``.

    Parsed in one vectorised pass (no ``eval``/``literal_eval``): all cells are
    joined and read by ``numpy``'s C float parser; every row must hold the same
    number of floats. ``spec`` records the model that made them, if known.
    Raises :class:`~embedkit.errors.InvalidInputError` naming malformed rows.
    """
    pandas = require("pandas", "data")
    df = read_csv(path)
    if column not in df.columns:
        raise ConfigError(
            f"{path} has no column {column!r}; columns: {', '.join(map(str, df.columns))}"
        )
    vectors = parse_float_lists(df[column].tolist())
    rows = df.drop(columns=[column])
    empty = pandas.DataFrame(columns=["row", "position", "action", "reason"])
    return EmbeddedFrame(rows, vectors, spec, empty)


def parse_float_lists(cells: list[Any]) -> Matrix:
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
    import warnings

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
