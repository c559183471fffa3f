"""``compare(models, task)``: several models on the same data, one table.

Each model is loaded (:func:`embedkit.load`: a spec, a config dict or an
Embedder), scored on ``task`` through the job path and the search seam, and
measured::

    quality          the task's headline metric (``task.metric``, e.g. "mrr@10")
    texts_per_s      texts embedded per second of embedding (model loading excluded;
                     cache hits count as texts, so a warm cache shows as fast)
    dim              vector width
    bytes_per_vector dim * 4 (float32, as the index and the cache store it)
    cache_hits       texts answered by the cache instead of the model

A progress bar runs over the models (the bars of each embedding are off).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from embedkit import _html
from embedkit.errors import ConfigError
from embedkit.evaluate._base import Scored, Task, to_frame
from embedkit.jobs.cache import CacheOption
from embedkit.jobs.embed import DEFAULT_BATCH_SIZE, ModelLike
from embedkit.jobs.progress import Progress
from embedkit.registry import load

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Comparison", "ComparisonRow", "compare"]

COLUMNS = ("texts_per_s", "dim", "bytes_per_vector", "cache_hits", "texts", "seconds")


@dataclass(frozen=True)
class ComparisonRow:
    """One model's line of a :class:`Comparison`; ``result`` is its full task result."""

    model: str
    spec: str
    quality: float
    texts_per_s: float
    dim: int
    bytes_per_vector: int
    cache_hits: int
    texts: int
    seconds: float
    load_seconds: float
    result: Scored = field(repr=False, compare=False)


@dataclass(frozen=True)
class Comparison:
    """Models side by side on one task; ``rows`` in the order the models were given."""

    task: str
    metric: str
    rows: tuple[ComparisonRow, ...]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, model: str) -> ComparisonRow:
        for row in self.rows:
            if model in (row.model, row.spec):
                return row
        raise KeyError(model)

    @property
    def best(self) -> ComparisonRow:
        """The row with the highest quality (the first of equals)."""
        return max(self.rows, key=lambda r: r.quality)

    def _repr_html_(self) -> str:
        return _html.result(self, "Comparison", self.to_frame)

    def to_frame(self) -> pd.DataFrame:
        """One row per model (the index), the quality column named by the metric."""
        return to_frame(
            [
                {"model": r.model, self.metric: r.quality, **{c: getattr(r, c) for c in COLUMNS}}
                for r in self.rows
            ],
            index="model",
        )

    def __str__(self) -> str:
        """A plain-text table (what ``embedkit compare`` prints)."""
        head = ["model", self.metric, "texts/s", "dim", "bytes/vec", "cache hits"]
        lines = [
            [
                r.model,
                f"{r.quality:.3f}",
                f"{r.texts_per_s:,.0f}",
                str(r.dim),
                str(r.bytes_per_vector),
                f"{r.cache_hits}/{r.texts}",
            ]
            for r in self.rows
        ]
        widths = [max(len(x) for x in col) for col in zip(head, *lines, strict=True)]
        left = {0}
        out = [f"task: {self.task}"]
        for line in [head, *lines]:
            cells = [
                c.ljust(w) if i in left else c.rjust(w)
                for i, (c, w) in enumerate(zip(line, widths, strict=True))
            ]
            out.append("  ".join(cells).rstrip())
        return "\n".join(out)


def compare(
    models: Sequence[ModelLike] | Mapping[str, ModelLike],
    task: Task,
    *,
    cache: CacheOption = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool | None = None,
) -> Comparison:
    """Score each of ``models`` on ``task`` (see the module docstring).

    ``models``: a mapping ``name -> model`` (names label the rows) or a sequence
    (rows labelled by spec). Tasks: :class:`~embedkit.evaluate.RetrievalTask`,
    :class:`~embedkit.evaluate.ClassificationTask`, :class:`~embedkit.evaluate.SimilarityTask`
    or anything with ``name``, ``metric`` and ``evaluate(model, ...)``.
    """
    named = _named(models)
    rows: list[ComparisonRow] = []
    with Progress(len(named), "compare", enabled=progress, unit="model") as bar:
        for name, model in named:
            start = time.perf_counter()
            embedder = load(model)
            loaded = time.perf_counter() - start
            result = task.evaluate(embedder, cache=cache, batch_size=batch_size, progress=False)
            run = result.run
            rows.append(
                ComparisonRow(
                    name or run.spec,
                    run.spec,
                    float(result.score),
                    run.texts_per_s,
                    run.dim,
                    run.bytes_per_vector,
                    run.cached,
                    run.texts,
                    run.seconds,
                    loaded,
                    result,
                )
            )
            bar.update(1)
    return Comparison(task.name, task.metric, tuple(rows))


def _named(models: Sequence[ModelLike] | Mapping[str, ModelLike]) -> list[tuple[str, Any]]:
    if isinstance(models, Mapping) and "backend" in models:
        raise ConfigError("models is one config dict; pass [config] or {name: config}")
    if isinstance(models, Mapping):
        pairs = [(str(name), model) for name, model in models.items()]
    elif isinstance(models, (str, Mapping)) or not isinstance(models, Sequence):
        raise ConfigError(
            "models must be a list of models or a mapping name -> model, "
            f"not {type(models).__name__}"
        )
    else:
        pairs = [("", model) for model in models]
    if not pairs:
        raise ConfigError("no models to compare")
    return pairs
