"""Open and describe what embedkit writes: index folders, Parquet files of rows + vectors, ``.npy``.

* :func:`load_searchable` -- an index folder or a Parquet file as a ``VectorIndex``;
* :func:`describe` -- spec, dim, count and size of any of them (what ``embedkit info`` prints).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from embedkit import _folder
from embedkit._optional import require
from embedkit.errors import ConfigError, CorruptFileError
from embedkit.frame import EmbeddedFrame
from embedkit.search.index import KIND, VectorIndex

__all__ = ["describe", "load_searchable"]


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
    target = Path(path)
    if not target.exists():
        raise FileNotFoundError(2, "No such file or directory", str(target))
    if target.is_dir():
        with _folder.read(target, KIND, verify=False) as snap:
            meta, size = dict(snap.meta), snap.size
        spec, dim, count = meta.get("spec"), meta.get("dim"), meta.get("count")
        return _info(target, "index", spec, dim, count, size)
    size = target.stat().st_size
    if target.suffix.lower() == ".npy":
        try:
            arr = np.load(target, mmap_mode="r", allow_pickle=False)
        except ValueError as exc:
            raise CorruptFileError(f"{target} is not a valid .npy file: {exc}") from exc
        info = _info(target, "npy", None, int(arr.shape[-1]), int(arr.shape[0]), size)
        return {**info, "dtype": str(arr.dtype)}
    pa = require("pyarrow", "data")
    pq = require("pyarrow.parquet", "data")
    try:
        schema = pq.read_schema(str(target))
        count = pq.ParquetFile(str(target)).metadata.num_rows
    except (pa.ArrowException, OSError) as exc:
        if isinstance(exc, PermissionError):
            raise
        raise CorruptFileError(f"{target} is not a readable Parquet file: {exc}") from exc
    schema_meta: dict[bytes, bytes] = schema.metadata or {}
    dim = schema_meta.get(b"embedkit.dim")
    spec = schema_meta.get(b"embedkit.spec", b"").decode() or None
    info = _info(target, "parquet", spec, int(dim) if dim else None, int(count), size)
    return {**info, "columns": [n for n in schema.names if not n.startswith("__")]}


def _info(
    path: Path, kind: str, spec: str | None, dim: int | None, count: int | None, size: int
) -> dict[str, Any]:
    return {
        "path": str(path),
        "kind": kind,
        "spec": spec,
        "dim": dim,
        "count": count,
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
