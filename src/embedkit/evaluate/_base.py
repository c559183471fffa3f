"""What every evaluation shares: texts embedded through the job path, timed, with cache counts.

:func:`embed_timed` is the only way the evaluations turn texts into vectors: one
:class:`~embedkit.jobs.embed.EmbedJob` (validation, batches, the cache, progress),
with the wall time and the job's counts kept in a :class:`RunStats`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from numpy.typing import NDArray

from embedkit._optional import require
from embedkit.errors import ConfigError
from embedkit.jobs.cache import CacheOption
from embedkit.jobs.embed import DEFAULT_BATCH_SIZE, EmbedJob, ModelLike
from embedkit.protocol import Embedder

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["RunStats", "Scored", "Task", "embed_timed", "to_frame"]

Matrix = NDArray[np.float32]
FLOAT32_BYTES = 4


@dataclass(frozen=True)
class RunStats:
    """How an evaluation embedded its texts.

    ``texts``: texts embedded (documents and queries); ``cached``: of those, answered
    by the cache; ``computed``: sent to the model; ``seconds``: wall time of the
    embedding (and, for retrieval, of the search), model loading excluded.
    """

    spec: str
    dim: int
    texts: int
    cached: int
    computed: int
    seconds: float

    @property
    def texts_per_s(self) -> float:
        return self.texts / self.seconds if self.seconds > 0 else float("inf")

    @property
    def bytes_per_vector(self) -> int:
        """Bytes of one stored vector: ``dim`` float32 values (index and cache alike)."""
        return self.dim * FLOAT32_BYTES

    def __add__(self, other: RunStats) -> RunStats:
        return RunStats(
            self.spec,
            self.dim,
            self.texts + other.texts,
            self.cached + other.cached,
            self.computed + other.computed,
            self.seconds + other.seconds,
        )


class Scored(Protocol):
    """An evaluation result: its headline ``score`` (named by ``metric``) and ``run``."""

    @property
    def task(self) -> str: ...

    @property
    def metric(self) -> str: ...

    @property
    def score(self) -> float: ...

    @property
    def run(self) -> RunStats: ...

    def to_frame(self) -> pd.DataFrame: ...


class Task(Protocol):
    """Data plus a way to score a model on it (see :func:`embedkit.evaluate.compare`)."""

    @property
    def name(self) -> str: ...

    @property
    def metric(self) -> str: ...

    def evaluate(
        self,
        model: ModelLike,
        *,
        cache: CacheOption = True,
        batch_size: int = DEFAULT_BATCH_SIZE,
        progress: bool | None = None,
    ) -> Scored: ...


def embed_timed(
    texts: Sequence[str],
    model: ModelLike,
    *,
    cache: CacheOption,
    batch_size: int,
    progress: bool | None,
    desc: str = "embedding",
) -> tuple[Matrix, RunStats, Embedder]:
    """``(vectors (len(texts), dim) float32, stats, the model)`` through one :class:`EmbedJob`."""
    start = time.perf_counter()
    job = EmbedJob(texts, model, cache=cache, batch_size=batch_size, progress=progress, desc=desc)
    out: Matrix | None = None
    for block in job.batches():
        if out is None:
            out = np.empty((len(texts), job.dim), dtype=np.float32)
        out[block.rows] = block.vectors
    vectors = out if out is not None else np.empty((0, job.dim), np.float32)
    seconds = time.perf_counter() - start
    stats = RunStats(job.spec, job.dim, len(texts), job.stats.cached, job.stats.computed, seconds)
    return vectors, stats, job.embedder


def check_size(name: str, value: object, minimum: int = 1) -> int:
    """``value`` as an int ``>= minimum``, or a :class:`ConfigError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def to_frame(records: Sequence[dict[str, Any]], index: str | None = None) -> pd.DataFrame:
    """A DataFrame of ``records`` (needs pandas: ``pip install 'embedkit[data]'``)."""
    pandas = require("pandas", "data")
    frame: pd.DataFrame = pandas.DataFrame.from_records(list(records))
    return frame.set_index(index) if index is not None and len(frame) else frame
