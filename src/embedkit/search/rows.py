"""Checks and encodings shared by every index writer: vectors, ids, metadata, queries.

* vectors: float32 ``(m, dim)``, finite (NaN/inf rows named), stored unit-normalised;
* ids: ``str`` or ``int`` (not ``bool``), unique; ``1`` and ``"1"`` are different ids;
* metadata: one JSON object (or ``None``) per row, stored as JSON lines. Lines are
  split on ``\\n`` only, so text holding U+2028, U+2029 or U+0085 round-trips.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from embedkit.errors import ConfigError, DimensionMismatchError, InvalidInputError
from embedkit.search.kernels import FLOAT32_MAX, normalize

__all__ = [
    "Id",
    "Metadata",
    "check_ids",
    "check_metadata",
    "metadata_lines",
    "query_rows",
    "unit_rows",
]

Id = str | int
Metadata = dict[str, Any] | None


def unit_rows(vectors: ArrayLike, dim: int | None, what: str = "vectors") -> NDArray[np.float32]:
    """``vectors`` as unit-normalised float32 ``(m, dim)``; non-finite rows are refused."""
    if isinstance(vectors, (str, bytes, Mapping)):
        raise ConfigError(f"{what} must be an array, got {type(vectors).__name__}")
    with np.errstate(over="ignore"):  # float64 values beyond float32 become inf: refused below
        matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim == 1 and what == "queries":
        matrix = matrix[None, :]
    if matrix.ndim != 2:
        raise DimensionMismatchError(f"{what} must be 2-D (m, dim), got shape {matrix.shape}")
    if dim is not None and matrix.shape[1] != dim:
        raise DimensionMismatchError(
            f"{what} have dimension {matrix.shape[1]}, the index has {dim}"
        )
    if np.isfinite(matrix).all():
        return normalize(matrix)
    bad = np.flatnonzero(~np.isfinite(matrix).all(axis=1))
    if bad.size:
        raise InvalidInputError(
            f"{what} contain NaN or infinity (or values beyond float32)",
            [(int(i), "not finite") for i in bad],
        )
    return normalize(matrix)


def query_rows(queries: ArrayLike, dim: int) -> NDArray[np.float32]:
    """Query vectors ``(dim,)`` or ``(q, dim)`` as unit float32 rows (checked like vectors).

    One float32 query (the common case) takes a short path, the same result as
    :func:`unit_rows`: its float64 sum of squares is finite exactly when every entry
    is, so one product both checks it and scales it.
    """
    one = (dim,), (1, dim)
    if isinstance(queries, np.ndarray) and queries.dtype == np.float32 and queries.shape in one:
        wide = queries.astype(np.float64).reshape(dim)  # few numpy calls: each costs here
        squares = float(wide @ wide)
        if math.isfinite(squares) and squares <= FLOAT32_MAX**2:  # else: unit_rows's way
            out = queries / np.float32(math.sqrt(squares) or 1.0)  # float32 / float32
            return out.astype(np.float32, copy=False).reshape(1, dim)
    return unit_rows(queries, dim, "queries")


def check_ids(ids: Sequence[Id] | None, m: int, start: int, taken: Mapping[Id, int]) -> list[Id]:
    """``m`` ids (default: ``start, start + 1, ...``), unique among themselves and ``taken``."""
    if ids is None:
        out: list[Id] = list(range(start, start + m))
    elif isinstance(ids, (str, bytes, Mapping)) or not isinstance(ids, Sequence | np.ndarray):
        raise ConfigError(f"ids must be a sequence of str or int, got {type(ids).__name__}")
    else:
        out = [int(i) if isinstance(i, np.integer) else i for i in ids]
    if len(out) != m:
        raise ConfigError(f"{m} vectors but {len(out)} ids")
    seen: set[Id] = set()
    for row, value in enumerate(out):
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise ConfigError(f"id at row {row} must be str or int, got {value!r}")
        if value in taken or value in seen:
            raise ConfigError(f"duplicate id {value!r} at row {row}")
        seen.add(value)
    return out


def check_metadata(metadata: Sequence[Metadata] | None, m: int) -> list[Metadata]:
    """``m`` metadata entries (default ``None``), each a JSON object or ``None``.

    The rule: values are ``str``, ``int``, finite ``float``, ``bool``, ``None``, lists
    and dicts with ``str`` keys of those; numpy scalars become their Python value.
    Anything else (a datetime, NaN, a lone surrogate ``"\\ud800"``, bytes) is refused
    with :class:`InvalidInputError` naming the row and key, before anything is stored.
    """
    if metadata is None:
        return [None] * m
    if isinstance(metadata, (str, bytes, Mapping)) or not isinstance(metadata, Sequence):
        raise ConfigError(
            f"metadata must be a sequence with one dict (or None) per row, got "
            f"{type(metadata).__name__}"
        )
    out = list(metadata)
    if len(out) != m:
        raise ConfigError(f"{m} vectors but {len(out)} metadata entries")
    bad: list[tuple[int, str]] = []
    for row, entry in enumerate(out):
        if entry is None:
            continue
        if not isinstance(entry, dict):
            raise ConfigError(f"metadata at row {row} must be a dict or None")
        clean, why = _json_value(entry, "")
        if why is not None:
            bad.append((row, why))
        else:
            out[row] = clean
    if bad:
        raise InvalidInputError("metadata values that cannot be stored as JSON", bad)
    return out


def _json_value(value: Any, where: str) -> tuple[Any, str | None]:
    """``(value as plain JSON, None)`` or ``(None, why)`` with the key path in ``why``."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int)):
        return value, None
    if isinstance(value, float):
        return (value, None) if np.isfinite(value) else (None, f"{where or 'value'}: {value}")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return None, f"{where or 'value'}: lone surrogate in a string"
        return value, None
    if isinstance(value, dict):
        clean: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                return None, f"{where}{key!r}: keys must be str"
            clean[key], why = _json_value(item, f"{where}{key}" if not where else f"{where}.{key}")
            if why is not None:
                return None, why
        return clean, None
    if isinstance(value, (list, tuple)):
        items = []
        for i, item in enumerate(value):
            plain, why = _json_value(item, f"{where}[{i}]")
            if why is not None:
                return None, why
            items.append(plain)
        return items, None
    return None, f"{where or 'value'}: {type(value).__name__} is not JSON (convert it, e.g. str())"


def metadata_lines(entries: Sequence[Metadata]) -> bytes:
    """One JSON document per row, each ending in ``\\n`` (entries checked by check_metadata)."""
    return b"".join(
        json.dumps(e, ensure_ascii=False, allow_nan=False).encode() + b"\n" for e in entries
    )
