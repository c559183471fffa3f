"""Embed a text column of a ``dask.dataframe`` on a Dask cluster (extra ``dask``).

::

    from distributed import Client
    import dask.dataframe as dd
    from embedkit.dask import embed_dataframe, write_parquet

    client = Client("tcp://scheduler:8786")
    ddf = dd.read_parquet("reviews/")
    out = embed_dataframe(ddf, "sbert:all-MiniLM-L6-v2", cache="/shared/embedkit.sqlite3")
    write_parquet(out[out.status == "ok"], "embedded/")

``ddf.map_partitions`` runs each partition through
:class:`~embedkit.jobs.batch.BatchEmbedder`, the core shared with :mod:`embedkit.ray`;
each worker process builds it (loads the model, opens the cache) once and keeps it
for every later partition. The output partitions have the input's columns (index
kept), then ``embedding`` (``pandas.ArrowDtype(fixed_size_list<float32>[dim])``,
null for rows not embedded), ``status`` and ``message``. :func:`write_parquet` is
``to_parquet`` with the schema metadata ``embedkit.spec``/``embedkit.dim`` that
:class:`~embedkit.frame.EmbeddedFrame` reads.

Learning the output width takes one small task before the job (it loads the model
on a worker, which keeps it).
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from embedkit._optional import require
from embedkit.errors import ConfigError
from embedkit.jobs.batch import MESSAGE_COLUMN, STATUS_COLUMN, BatchEmbedder, portable_cache
from embedkit.jobs.cache import CacheOption
from embedkit.jobs.embed import DEFAULT_BATCH_SIZE, JobOnLong, ModelLike
from embedkit.jobs.writers import VECTOR_COLUMN, spec_metadata

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["MESSAGE_COLUMN", "SPEC_ATTR", "STATUS_COLUMN", "embed_dataframe", "write_parquet"]

SPEC_ATTR = "embedkit.spec"
_CORES: dict[str, BatchEmbedder] = {}  # per worker process: key -> the loaded core
_LOCK = threading.Lock()


def _core(key: str, model: ModelLike, options: Mapping[str, Any]) -> BatchEmbedder:
    """The worker's :class:`BatchEmbedder` for ``key``, built on first use."""
    with _LOCK:
        core = _CORES.get(key)
        if core is None:
            core = _CORES[key] = BatchEmbedder(model, **options)
        return core


def _probe(key: str, model: ModelLike, options: Mapping[str, Any]) -> tuple[str, int]:
    core = _core(key, model, options)
    return core.spec, core.dim


def _partition(
    part: pd.DataFrame, key: str, model: ModelLike, options: Mapping[str, Any]
) -> pd.DataFrame:
    return _core(key, model, options).frame(part)


def embed_dataframe(
    ddf: Any,
    model: ModelLike = None,
    *,
    column: str = "text",
    on_long: JobOnLong | None = None,
    cache: CacheOption = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    vector_column: str = VECTOR_COLUMN,
) -> Any:
    """``ddf`` with the vectors of its ``column`` and a per-row report (lazy, a Dask DataFrame).

    Output row ``i`` of each partition = input row ``i`` + ``embedding`` (float32
    ``[dim]`` or null) + ``status`` + ``message`` (see :mod:`embedkit.jobs.batch`).
    ``model``: a spec, a config dict or an Embedder (sent to each worker once);
    ``cache``: a path every worker can reach makes re-runs compute only what is
    missing. The spec is in ``result.attrs["embedkit.spec"]`` (and in the files
    :func:`write_parquet` writes).
    """
    dask = require("dask", "dask")
    dd = require("dask.dataframe", "dask")
    pandas = require("pandas", "dask")
    pa = require("pyarrow", "dask")
    if not isinstance(ddf, dd.DataFrame):
        raise ConfigError(f"expected a dask.dataframe.DataFrame, got {type(ddf).__name__}")
    options: dict[str, Any] = {
        "column": column,
        "on_long": on_long,
        "cache": portable_cache(cache),
        "batch_size": batch_size,
        "vector_column": vector_column,
    }
    BatchEmbedder.check_options(model=model, **options)
    if column not in ddf.columns:
        raise ConfigError(f"no column {column!r}; columns: {', '.join(map(str, ddf.columns))}")
    if model is None or isinstance(model, (str, Mapping)):
        key = json.dumps({"model": model, **options}, sort_keys=True, default=str)
        shipped: Any = model
    else:  # one copy of the object in the graph, sent to each worker once
        key = f"embedder-{uuid.uuid4().hex}"
        shipped = dask.delayed(model, name=key)
    spec, dim = dask.delayed(_probe, pure=False)(key, shipped, options).compute()
    meta = ddf._meta.copy()
    vector_type = pandas.ArrowDtype(pa.list_(pa.float32(), int(dim)))
    meta[vector_column] = pandas.Series([], dtype=vector_type, index=meta.index)
    text_type = pandas.ArrowDtype(pa.string())
    meta[STATUS_COLUMN] = pandas.Series([], dtype=text_type, index=meta.index)
    meta[MESSAGE_COLUMN] = pandas.Series([], dtype=text_type, index=meta.index)
    meta.attrs[SPEC_ATTR] = spec
    return ddf.map_partitions(_partition, key, shipped, options, meta=meta)


def write_parquet(
    ddf: Any,
    path: str | os.PathLike[str],
    *,
    spec: str | None = None,
    vector_column: str = VECTOR_COLUMN,
    **to_parquet: Any,
) -> None:
    """``ddf.to_parquet(path)`` with the schema metadata ``embedkit.spec``/``embedkit.dim``.

    ``spec``: the model's spec (default: ``ddf.attrs["embedkit.spec"]``, set by
    :func:`embed_dataframe`); other keywords go to ``to_parquet``. Every part file
    is then readable by :meth:`~embedkit.frame.EmbeddedFrame.load` when every row has
    a vector (keep ``status == "ok"`` rows first). Columns of ``object`` dtype need
    their arrow type in ``schema=`` (Dask infers none once one column's type is given).
    """
    pa = require("pyarrow", "dask")
    pandas = require("pandas", "dask")
    found = spec or ddf._meta.attrs.get(SPEC_ATTR)
    if not found:
        raise ConfigError("no spec: pass spec= (the embedkit.spec of the model)")
    dtype = ddf._meta.dtypes.get(vector_column)
    kind: Any = getattr(dtype, "pyarrow_dtype", None)
    if not isinstance(dtype, pandas.ArrowDtype) or not pa.types.is_fixed_size_list(kind):
        raise ConfigError(f"column {vector_column!r} holds {dtype}, not fixed-size vectors")
    dim = int(kind.list_size)
    # pandas cannot read back its own metadata of an ArrowDtype(fixed_size_list) column
    # ("Passing pyarrow type specific parameters ([dim]) ... is not supported"): hand
    # the vectors to to_parquet as objects and declare the arrow type explicitly
    # (the meta says float32 only so that dask's schema inference passes; the schema
    # below declares the column's real type)
    meta = ddf._meta.copy()
    meta[vector_column] = pandas.Series([], dtype="float32", index=meta.index)
    plain = ddf.map_partitions(_plain_vectors, vector_column, meta=meta, enforce_metadata=False)
    schema = {
        **dict(to_parquet.pop("schema", None) or {}),
        vector_column: pa.list_(pa.float32(), dim),
    }
    plain.to_parquet(
        str(path), schema=schema, custom_metadata=spec_metadata(str(found), dim), **to_parquet
    )


def _plain_vectors(part: pd.DataFrame, vector_column: str) -> pd.DataFrame:
    """``part`` with its vector column as objects (a float32 array per row, None where null)."""
    pandas = require("pandas", "dask")
    out = part.copy()
    arrow = part[vector_column].array._pa_array  # the ChunkedArray behind the ArrowDtype column
    values = arrow.to_numpy(zero_copy_only=False)
    out[vector_column] = pandas.Series(values, index=part.index, dtype=object)
    return out
