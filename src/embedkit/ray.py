"""Embed a text column of a Ray Data ``Dataset`` on a cluster (extra ``ray``).

::

    import ray
    from embedkit.ray import embed_dataset

    ds = ray.data.read_parquet("reviews/")
    out = embed_dataset(ds, "sbert:all-MiniLM-L6-v2", column="text",
                        concurrency=4, cache="/shared/embedkit.sqlite3")
    out.filter(expr="status == 'ok'").write_parquet("embedded/")

The idiomatic shape: ``ds.map_batches`` with a callable class on an actor pool, so
that each actor loads the model (and opens the cache) once. Each batch goes
through :class:`~embedkit.jobs.batch.BatchEmbedder`, the core shared with
:mod:`embedkit.dask`: the output has the input's columns, then ``embedding``
(``fixed_size_list<float32>[dim]``, null for rows not embedded), ``status``
(``ok``/``missing``/``too-long``/``invalid``) and ``message``; the schema metadata
carries ``embedkit.spec`` and ``embedkit.dim``, so Ray's own ``write_parquet``
writes files that :class:`~embedkit.frame.EmbeddedFrame` and
:func:`~embedkit.outputs.load_searchable` read (keep only ``status == 'ok'`` rows
first: those readers refuse rows without a vector).

Fault tolerance is Ray's: a dead actor is restarted and its batch retried; the
batch output is all or nothing, so no row is lost or duplicated, and the rows it
had already embedded come from the cache. Nothing here calls ``ray.init``: connect
to your cluster first (``ray.init(address=...)``); see docs/cluster.md.
"""

from __future__ import annotations

from typing import Any

from embedkit._optional import require
from embedkit.errors import ConfigError
from embedkit.jobs.batch import MESSAGE_COLUMN, STATUS_COLUMN, BatchEmbedder, portable_cache
from embedkit.jobs.cache import CacheOption
from embedkit.jobs.embed import DEFAULT_BATCH_SIZE, JobOnLong, ModelLike
from embedkit.jobs.writers import VECTOR_COLUMN

__all__ = ["MESSAGE_COLUMN", "STATUS_COLUMN", "dataset_spec", "embed_dataset"]


class EmbedBatches:
    """The callable class of ``map_batches``: one :class:`BatchEmbedder` per actor."""

    def __init__(self, **options: Any) -> None:
        self.core = BatchEmbedder(**options)

    def __call__(self, batch: Any) -> Any:
        """A ``pyarrow.Table`` batch -> the same rows with ``embedding``, ``status``, ``message``."""
        return self.core.table(batch)


def embed_dataset(
    ds: Any,
    model: ModelLike = None,
    *,
    column: str = "text",
    on_long: JobOnLong | None = None,
    cache: CacheOption = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    vector_column: str = VECTOR_COLUMN,
    concurrency: int | tuple[int, int] | None = None,
    compute: Any = None,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    **ray_remote_args: Any,
) -> Any:
    """``ds`` with the vectors of its ``column`` and a per-row report (lazy, a ``Dataset``).

    Output row ``i`` = input row ``i`` + ``embedding`` (float32 ``[dim]`` or null) +
    ``status`` + ``message`` (see :mod:`embedkit.jobs.batch`). ``model``: a spec, a
    config dict or an Embedder (shipped to each actor; a spec is loaded there).
    ``cache``: a path every worker can reach (a shared filesystem) makes re-runs
    compute only what is missing; ``True``: each worker's default cache.

    ``concurrency``: actors, a fixed ``n`` or an autoscaling ``(min, max)``, turned
    into ``ray.data.ActorPoolStrategy`` (or pass ``compute=`` yourself, not both);
    ``batch_size``: rows per actor call (and per cache commit); ``num_cpus``,
    ``num_gpus`` and ``ray_remote_args`` (``memory``, ``max_restarts`` ...) go to
    ``map_batches`` as they are.
    """
    ray = require("ray", "ray")
    require("ray.data", "ray")
    if not isinstance(ds, ray.data.Dataset):
        raise ConfigError(f"expected a ray.data.Dataset, got {type(ds).__name__}")
    if compute is not None and concurrency is not None:
        raise ConfigError("pass concurrency= or compute=, not both")
    if compute is None:
        compute = _strategy(ray, concurrency)
    options: dict[str, Any] = {
        "model": model,
        "column": column,
        "on_long": on_long,
        "cache": portable_cache(cache),
        "batch_size": batch_size,
        "vector_column": vector_column,
    }
    BatchEmbedder.check_options(**options)  # fail here, not in every actor
    return ds.map_batches(
        EmbedBatches,
        fn_constructor_kwargs=options,
        batch_format="pyarrow",
        batch_size=batch_size,
        compute=compute,
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        **ray_remote_args,
    )


def _strategy(ray: Any, concurrency: int | tuple[int, int] | None) -> Any:
    pool = ray.data.ActorPoolStrategy
    if concurrency is None:
        return pool()
    if isinstance(concurrency, int) and not isinstance(concurrency, bool) and concurrency >= 1:
        return pool(size=concurrency)
    if (
        isinstance(concurrency, tuple)
        and len(concurrency) == 2
        and all(isinstance(c, int) and not isinstance(c, bool) for c in concurrency)
        and 1 <= concurrency[0] <= concurrency[1]
    ):
        return pool(min_size=concurrency[0], max_size=concurrency[1])
    raise ConfigError(
        f"concurrency must be a positive int or a (min, max) tuple, got {concurrency!r}"
    )


def dataset_spec(ds: Any) -> str | None:
    """The ``embedkit.spec`` in the schema metadata of a Dataset (executes it if needed)."""
    schema = ds.schema()
    base = getattr(schema, "base_schema", None)
    meta = getattr(base, "metadata", None) or {}
    spec = meta.get(b"embedkit.spec", b"").decode()
    return spec or None
