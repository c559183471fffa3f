"""The review-search workflow as an API: a table in, searchable rows with vectors out.

The tutorial's steps (build a text from columns, drop rows with missing fields,
count tokens, embed, save, reload, search with a text query), each done right::

    ef = embed_frame(df, "hashing?dim=256", template="Title: {Summary}; Content: {Text}")
    ef.report                       # one row per input row left out or changed, and why
    ef.save("reviews.parquet")      # rows + vectors (fixed-size float32 lists) + the spec
    ef = EmbeddedFrame.load("reviews.parquet")
    ef.search_rows("pet food", k=5)   # the matching rows as a DataFrame, with a score column
    ef.search("pet food", k=5)        # the same as list[Hit], like VectorIndex.search

* Missing fields (None, NaN, empty or whitespace-only cells, in any field the
  template uses) are reported per row and the rows dropped (``on_missing="drop"``),
  or raise :class:`~embedkit.errors.InvalidInputError` naming them (``"error"``).
* Every row goes through the one job path (:class:`~embedkit.jobs.embed.EmbedJob`):
  the cache, batches, progress, and tokens counted once per row with the
  backend's own tokenizer (the ``n_tokens`` column). Rows over its limit follow
  ``on_long``: ``"error"``, ``"truncate"``, ``"chunk"`` or ``"drop"``.
* Search goes through the one search seam (a :class:`~embedkit.search.index.VectorIndex`
  over the vectors, with the same model check).

Parquet layout (:mod:`embedkit.jobs.writers`): the frame's columns, ``text`` and
``n_tokens``, and the vectors as ``embedding: fixed_size_list<float32>[dim]``;
schema metadata ``embedkit.spec`` and ``embedkit.dim``.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from embedkit import _html
from embedkit._optional import require
from embedkit.errors import ConfigError, EmbedkitWarning, InvalidInputError, TextTooLongError
from embedkit.jobs.cache import CacheOption
from embedkit.jobs.embed import DEFAULT_BATCH_SIZE, EmbedJob, JobOnLong, ModelLike
from embedkit.jobs.readers import OnMissing
from embedkit.jobs.tables import build_texts, parse_float_lists, read_csv
from embedkit.jobs.writers import (
    VECTOR_COLUMN,
    read_vector_table,
    spec_metadata,
    vector_array,
    vector_field,
)
from embedkit.protocol import Embedder
from embedkit.search.index import Hit, VectorIndex
from embedkit.spec import canonical_spec

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["EmbeddedFrame", "embed_frame", "read_tutorial_csv"]

Matrix = NDArray[np.float32]
REPORT_COLUMNS = ["row", "position", "action", "reason"]
ACTIONS = {"truncate": "truncated", "chunk": "chunked", "drop": "dropped"}


def embed_frame(
    data: pd.DataFrame | str | os.PathLike[str],
    model: ModelLike = None,
    *,
    template: str | None = None,
    column: str | None = None,
    on_missing: OnMissing = "drop",
    on_long: JobOnLong | None = None,
    cache: CacheOption = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool | None = None,
) -> EmbeddedFrame:
    """Embed the rows of a DataFrame (or a CSV file) and keep them with their vectors.

    Steps: text per row from ``template``/``column`` (default column ``"text"``);
    rows with missing fields dropped and reported (``on_missing="drop"``) or an
    :class:`~embedkit.errors.InvalidInputError` naming them (``"error"``); then the
    job path with ``on_long`` (``None``: the model's own policy). ``result.report``
    lists every row dropped, truncated or chunked, and why.
    """
    pandas = require("pandas", "data")
    if on_missing not in ("drop", "error"):
        raise ConfigError(f"on_missing must be 'drop' or 'error', got {on_missing!r}")
    df = read_csv(data) if isinstance(data, (str, os.PathLike)) else data
    if not isinstance(df, pandas.DataFrame):
        raise ConfigError(f"data must be a DataFrame or a CSV path, got {type(df).__name__}")
    if template is None and column is None:
        column = "text"
    if column != "text" and "text" in df.columns:
        raise ConfigError("the frame already has a 'text' column; use column='text' or rename it")
    built = build_texts(df, template=template, column=column)
    bad = built["problem"].notna().to_numpy()
    problems = built["problem"].tolist()
    missing = [(int(i), str(problems[i])) for i in np.flatnonzero(bad)]
    if missing and on_missing == "error":
        raise InvalidInputError(f"{len(missing)} of {len(df)} rows have missing fields", missing)
    report: list[tuple[Any, int, str, str]] = [(df.index[i], i, "dropped", w) for i, w in missing]
    keep = np.flatnonzero(~bad)
    texts = [str(t) for t in built["text"].to_numpy()[keep]]
    try:
        job = EmbedJob(
            texts,
            model,
            cache=cache,
            batch_size=batch_size,
            progress=progress,
            on_long=on_long,
            count_tokens=True,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", EmbedkitWarning)  # reported per row in .report
            blocks = list(job.batches())
    except TextTooLongError as exc:  # job rows -> positions in the frame
        raise TextTooLongError(
            str(exc.args[0]).split(": rows")[0], [(int(keep[i]), why) for i, why in exc.rows]
        ) from None
    rows = np.concatenate([b.rows for b in blocks]) if blocks else np.empty(0, np.int64)
    vectors = np.concatenate([b.vectors for b in blocks]) if blocks else None
    counts = [b.counts for b in blocks if b.counts is not None]
    stats = job.stats
    dropped = set(stats.dropped)
    for i in sorted([*dropped, *stats.long_rows]):
        action = "dropped" if i in dropped else ACTIONS[str(job.policy)]
        reason = f"{stats.over_limit[i]} tokens > {job.limit}"
        report.append((df.index[keep[i]], int(keep[i]), action, reason))
    kept: pd.DataFrame = df.iloc[keep[rows]].copy()
    kept["text"] = [texts[i] for i in rows.tolist()]
    kept["n_tokens"] = pandas.array(
        np.concatenate(counts) if counts else [None] * len(rows), dtype="Int64"
    )
    frame_report = pandas.DataFrame(report, columns=REPORT_COLUMNS)
    frame_report = frame_report.sort_values("position", kind="stable").reset_index(drop=True)
    matrix = vectors if vectors is not None else np.empty((0, job.dim), np.float32)
    return EmbeddedFrame(kept, matrix, job.spec, frame_report, _embedder=job.embedder)


def read_tutorial_csv(
    path: str | os.PathLike[str], *, column: str = "embedding", spec: str | None = None
) -> EmbeddedFrame:
    """Import the tutorial's CSV whose ``column`` holds stringified lists ``"[0.1, -0.2, ...]"``.

    Parsed in one vectorised pass (no ``eval``/``literal_eval``, see
    :func:`~embedkit.jobs.readers.parse_float_lists`). ``spec`` records the model
    that made them, if known (stored in canonical form).
    """
    df = read_csv(path)
    if column not in df.columns:
        raise ConfigError(
            f"{path} has no column {column!r}; columns: {', '.join(map(str, df.columns))}"
        )
    vectors = parse_float_lists(df[column].tolist())
    spec = None if spec is None else canonical_spec(spec)
    return EmbeddedFrame(df.drop(columns=[column]), vectors, spec, _empty_report())


def _empty_report() -> pd.DataFrame:
    pandas = require("pandas", "data")
    out: pd.DataFrame = pandas.DataFrame(columns=REPORT_COLUMNS)
    return out


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
    report: pd.DataFrame = field(default_factory=_empty_report)
    _embedder: Embedder | None = None
    _index: VectorIndex | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.vectors.ndim != 2 or self.vectors.shape[0] != len(self.rows):
            raise ConfigError(f"{len(self.rows)} rows but vectors of shape {self.vectors.shape}")

    def __len__(self) -> int:
        return len(self.rows)

    def _repr_html_(self) -> str:
        return _html.embedded_frame(self)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def index(self) -> VectorIndex:
        """The vectors as a :class:`VectorIndex` (ids = row positions), built once."""
        if self._index is None:
            self._index = VectorIndex.from_vectors(self.vectors, spec=self.spec)
            if self._embedder is not None:
                self._index.use_embedder(self._embedder)
        return self._index

    @property
    def embedder(self) -> Embedder:
        """The query model: the one given or attached, else built from ``spec``."""
        return self.index.embedder

    def use_embedder(self, model: ModelLike) -> None:
        """Attach the query model; it must match ``spec`` (else ModelMismatchError)."""
        self.index.use_embedder(model)
        self._embedder = self.index.embedder
        self.spec = self.index.spec

    def search(self, query: str, k: int = 10, *, model: ModelLike = None) -> list[Hit]:
        """The ``k`` rows most similar to ``query`` as hits; ``hit.id`` is the row's index label."""
        positions, scores = self._top(query, k, model)
        labels = self.rows.index[positions].tolist()
        return [Hit(label, score) for label, score in zip(labels, scores, strict=True)]

    def search_rows(self, query: str, k: int = 10, *, model: ModelLike = None) -> pd.DataFrame:
        """The ``k`` rows most similar to ``query``, best first, as a DataFrame with ``score``."""
        positions, scores = self._top(query, k, model)
        out: pd.DataFrame = self.rows.iloc[positions].copy()
        out["score"] = np.asarray(scores, dtype=np.float32)
        return out

    def _top(self, query: str, k: int, model: ModelLike) -> tuple[list[int], list[float]]:
        if model is not None:
            self.use_embedder(model)
        hits = self.index.search(query, k)
        return [int(h.id) for h in hits], [h.score for h in hits]

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write rows + vectors to one Parquet file (see the module docstring)."""
        pa = require("pyarrow", "data")
        pq = require("pyarrow.parquet", "data")
        if VECTOR_COLUMN in self.rows.columns:
            raise ConfigError(f"the rows already have a column {VECTOR_COLUMN!r}")
        table = pa.Table.from_pandas(self.rows, preserve_index=True)
        table = table.append_column(
            vector_field(VECTOR_COLUMN, self.dim), vector_array(self.vectors)
        )
        meta = {**(table.schema.metadata or {}), **spec_metadata(self.spec, self.dim)}
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        pq.write_table(table.replace_schema_metadata(meta), str(partial))
        os.replace(partial, target)
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> EmbeddedFrame:
        """Read a Parquet file written by :meth:`save` or ``embedkit embed --out x.parquet``."""
        table, vectors, spec = read_vector_table(path)
        return cls(table.to_pandas(), vectors, spec)

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
