"""One batch of table rows -> a vector column and a per-row report: the core of the cluster adapters.

:class:`BatchEmbedder` is what a Ray actor (:mod:`embedkit.ray`) or a Dask worker
(:mod:`embedkit.dask`) holds: the model, loaded once, and the cache, opened once.
Each call takes a batch of rows (a ``pyarrow.Table`` or a ``pandas.DataFrame``) and
returns the same rows, in the same order, with three columns added::

    embedding: fixed_size_list<float32>[dim]   null where status != "ok"
    status:    string   "ok" | "missing" | "too-long" | "invalid"
    message:   string   why (null for a plain "ok"; "truncated: 300 tokens > 256" ...)

and, on a ``pyarrow.Table``, the schema metadata ``embedkit.spec`` / ``embedkit.dim``
(the Parquet codec of :mod:`embedkit.jobs.writers`, which ``EmbeddedFrame`` reads).

Row ``i`` of the batch with text ``t_i = batch[column][i]``:

* ``missing``: ``t_i`` is None, NaN/NA, empty or whitespace-only;
* ``invalid``: not a string, or not valid Unicode (a lone surrogate);
* ``too-long``: over the model's token limit under ``on_long="error"`` or ``"drop"``
  (in a distributed job neither fails the job: the row is reported instead);
* ``ok``: ``embedding[i] == embed([t_i])[0]`` through the one job path
  (:class:`~embedkit.jobs.embed.EmbedJob`: NFC, the cache, ``"truncate"``/``"chunk"``).

The cache is keyed by spec + sha256(text) and safe under concurrent writers, so
workers sharing one cache file (a shared filesystem) recompute, on a re-run, only
the rows no worker has committed yet.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

from embedkit._optional import require
from embedkit.errors import ConfigError, EmbedkitWarning
from embedkit.jobs.cache import CacheOption, EmbeddingCache, open_cache
from embedkit.jobs.embed import (
    DEFAULT_BATCH_SIZE,
    EmbedJob,
    JobOnLong,
    JobStats,
    ModelLike,
    with_policy,
)
from embedkit.jobs.writers import VECTOR_COLUMN, spec_metadata
from embedkit.protocol import Embedder, TokenLimited
from embedkit.registry import load
from embedkit.validation import text_problem

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "MESSAGE_COLUMN",
    "STATUSES",
    "STATUS_COLUMN",
    "BatchEmbedder",
    "BatchResult",
    "portable_cache",
]

Matrix = NDArray[np.float32]
Status = Literal["ok", "missing", "too-long", "invalid"]
STATUSES: tuple[Status, ...] = ("ok", "missing", "too-long", "invalid")
STATUS_COLUMN = "status"
MESSAGE_COLUMN = "message"
_MISSING = ("None", "NaN", "NA", "empty", "whitespace")


@dataclass(frozen=True)
class BatchResult:
    """The outcome of one batch of ``n`` rows.

    ``vectors``: float32 ``(n, dim)``, ``vectors[i]`` meaningful only where
    ``ok[i]`` (zeros elsewhere); ``ok``: bool ``(n,)``; ``status[i]`` in
    :data:`STATUSES`; ``message[i]``: why, or ``None`` for a plain ``"ok"``.
    """

    vectors: Matrix
    ok: NDArray[np.bool_]
    status: list[str]
    message: list[str | None]


def portable_cache(cache: CacheOption) -> bool | str:
    """``cache`` in a form that can travel to another process: a path string or a bool.

    An :class:`EmbeddingCache` becomes its file path; ``None`` means ``True`` (each
    worker's default cache file).
    """
    if cache is None:
        return True
    if isinstance(cache, bool):
        return cache
    if isinstance(cache, EmbeddingCache):
        return str(cache.path)
    if isinstance(cache, str) or hasattr(cache, "__fspath__"):
        return str(cache)
    raise ConfigError(f"cache must be a bool, a path or an EmbeddingCache, got {cache!r}")


class BatchEmbedder:
    """Embed the ``column`` of batches of rows; the model and the cache are opened once.

    ``model``: a spec, a config dict or an Embedder; ``on_long``: ``None`` (the
    model's own policy), ``"error"``/``"drop"`` (rows over the limit reported as
    ``too-long``), ``"truncate"``/``"chunk"`` (embedded, said so in ``message``);
    ``batch_size``: rows per backend call and per cache commit.
    """

    def __init__(
        self,
        model: ModelLike = None,
        *,
        column: str = "text",
        on_long: JobOnLong | None = None,
        cache: CacheOption = True,
        batch_size: int = DEFAULT_BATCH_SIZE,
        vector_column: str = VECTOR_COLUMN,
    ) -> None:
        self.check_options(
            model=model,
            column=column,
            on_long=on_long,
            cache=cache,
            batch_size=batch_size,
            vector_column=vector_column,
        )
        added = (vector_column, STATUS_COLUMN, MESSAGE_COLUMN)
        self.column = column
        self.vector_column = vector_column
        self.batch_size = batch_size
        self.added = added
        limits = on_long not in ("error", "drop")
        self.embedder: Embedder = with_policy(model, on_long) if limits else load(model)
        own = self.embedder.on_long if isinstance(self.embedder, TokenLimited) else None
        self.policy = on_long or own
        # "error" and "drop" are counted and enforced by the job ("drop"), row by row;
        # "truncate"/"chunk" are applied by the model, every row counted to say so
        self._job_on_long: JobOnLong | None = "drop" if self.policy in ("error", "drop") else None
        self.limit = self.embedder.max_tokens if isinstance(self.embedder, TokenLimited) else None
        self.cache = open_cache(cache)
        self.stats = JobStats()

    @staticmethod
    def check_options(
        *,
        model: ModelLike,
        column: str,
        on_long: JobOnLong | None,
        cache: CacheOption,
        batch_size: int,
        vector_column: str,
    ) -> None:
        """Refuse wrong options before any worker starts (the model is not loaded here)."""
        if (
            model is not None
            and not isinstance(model, (str, Mapping))
            and not hasattr(model, "embed")
        ):
            raise ConfigError(
                f"model must be a spec, a config dict or an Embedder, got {type(model).__name__}"
            )
        if not isinstance(column, str) or not column:
            raise ConfigError(f"column must be a non-empty column name, got {column!r}")
        if not isinstance(vector_column, str) or not vector_column:
            raise ConfigError(f"vector_column must be a column name, got {vector_column!r}")
        if on_long not in (None, "error", "truncate", "chunk", "drop"):
            raise ConfigError(
                f"on_long must be 'error', 'truncate', 'chunk' or 'drop', got {on_long!r}"
            )
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        added = (vector_column, STATUS_COLUMN, MESSAGE_COLUMN)
        if column in added:
            raise ConfigError(f"column {column!r} would be overwritten by the output columns")
        portable_cache(cache)

    @property
    def spec(self) -> str:
        return self.embedder.spec

    @property
    def dim(self) -> int:
        return int(self.embedder.dim)

    def embed_values(self, values: list[Any]) -> BatchResult:
        """Embed ``values`` (the texts of a batch, any Python objects); see :class:`BatchResult`."""
        n = len(values)
        status: list[str] = ["ok"] * n
        message: list[str | None] = [None] * n
        good: list[int] = []
        for i, value in enumerate(values):
            why = text_problem(value)
            if why is None:
                good.append(i)
            else:
                status[i] = "missing" if why.startswith(_MISSING) else "invalid"
                message[i] = why
        texts = [values[i] for i in good]
        counted = self.limit is not None and self.policy in ("truncate", "chunk")
        job = EmbedJob(
            texts,
            self.embedder,
            cache=self.cache if self.cache is not None else False,
            batch_size=self.batch_size,
            progress=False,
            on_long=self._job_on_long,
            count_tokens=counted,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", EmbedkitWarning)  # reported per row instead
            blocks = list(job.batches())
        out = np.zeros((n, job.dim), dtype=np.float32)  # a server model knows it by now
        ok = np.zeros(n, dtype=bool)
        where = np.asarray(good, dtype=np.int64)
        for block in blocks:
            out[where[block.rows]] = block.vectors
            ok[where[block.rows]] = True
        stats = job.stats
        for j in stats.dropped:
            status[good[j]] = "too-long"
            message[good[j]] = f"{stats.over_limit[j]} tokens > {self.limit}"
        action = "truncated" if self.policy == "truncate" else "chunked"
        for j in stats.long_rows:
            count = stats.over_limit.get(j)
            over = f"{count} tokens > {self.limit}" if count else f"over {self.limit} tokens"
            message[good[j]] = f"{action}: {over}"
        self._add(stats)
        return BatchResult(out, ok, status, message)

    def _add(self, stats: JobStats) -> None:
        self.stats.rows += stats.rows
        self.stats.cached += stats.cached
        self.stats.computed += stats.computed
        self.stats.duplicates += stats.duplicates

    def _check_columns(self, names: list[str]) -> None:
        if self.column not in names:
            raise ConfigError(
                f"the batch has no column {self.column!r}; columns: {', '.join(map(str, names))}"
            )
        clash = [c for c in self.added if c in names]
        if clash:
            raise ConfigError(f"the batch already has column(s) {clash}; rename them")

    def vector_array(self, result: BatchResult) -> Any:
        """``result.vectors`` as a ``FixedSizeListArray`` of float32, null where not ok."""
        pa = require("pyarrow", "data")
        flat = pa.array(result.vectors.reshape(-1), pa.float32())
        mask = pa.array(~result.ok, pa.bool_())
        return pa.FixedSizeListArray.from_arrays(flat, self.dim, mask=mask)

    def table(self, batch: Any) -> Any:
        """A ``pyarrow.Table`` batch -> the same rows + the three output columns + spec metadata."""
        pa = require("pyarrow", "data")
        if not isinstance(batch, pa.Table):
            raise ConfigError(f"expected a pyarrow.Table batch, got {type(batch).__name__}")
        self._check_columns(batch.column_names)
        result = self.embed_values(batch.column(self.column).to_pylist())
        vectors = self.vector_array(result)
        out = batch.append_column(pa.field(self.vector_column, vectors.type), vectors)
        out = out.append_column(STATUS_COLUMN, pa.array(result.status, pa.string()))
        out = out.append_column(MESSAGE_COLUMN, pa.array(result.message, pa.string()))
        meta = {**(batch.schema.metadata or {}), **spec_metadata(self.spec, self.dim)}
        return out.replace_schema_metadata(meta)

    def frame(self, batch: pd.DataFrame) -> pd.DataFrame:
        """A ``pandas.DataFrame`` batch -> a copy with the three output columns (index kept).

        The vectors are a ``pandas.ArrowDtype(fixed_size_list<float32>[dim])`` column, the
        report columns ``ArrowDtype(string)``.
        """
        pandas = require("pandas", "data")
        pa = require("pyarrow", "data")
        if not isinstance(batch, pandas.DataFrame):
            raise ConfigError(f"expected a pandas.DataFrame batch, got {type(batch).__name__}")
        self._check_columns([str(c) for c in batch.columns])
        result = self.embed_values(batch[self.column].tolist())
        out: pd.DataFrame = batch.copy()
        out[self.vector_column] = _arrow_series(self.vector_array(result), batch.index)
        out[STATUS_COLUMN] = _arrow_series(pa.array(result.status, pa.string()), batch.index)
        out[MESSAGE_COLUMN] = _arrow_series(pa.array(result.message, pa.string()), batch.index)
        return out


def _arrow_series(array: Any, index: Any) -> Any:
    """An arrow array as a pandas Series of ``ArrowDtype`` on ``index``."""
    pandas = require("pandas", "data")
    return pandas.Series(pandas.arrays.ArrowExtensionArray(array), index=index)
