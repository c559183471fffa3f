"""Writers that stream vectors to disk block by block: ``.npy`` and Parquet.

Memory use is one block, whatever the number of rows. Parquet layout (the one
codec, read back by :func:`read_vector_table`): the row columns, then the vectors
as ``embedding: fixed_size_list<float32>[dim]``; schema metadata ``embedkit.spec``
and ``embedkit.dim``.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from numpy.typing import NDArray

from embedkit._closing import Closing
from embedkit._optional import require
from embedkit.errors import ConfigError, CorruptFileError, InvalidInputError

__all__ = [
    "VECTOR_COLUMN",
    "NpyWriter",
    "ParquetWriter",
    "read_vector_table",
    "spec_metadata",
    "vector_array",
    "vector_field",
]

Matrix = NDArray[np.float32]
VECTOR_COLUMN = "embedding"

_NPY_HEADER_BYTES = 128


class NpyWriter(Closing):
    """Append float32 rows to a ``.npy`` file; :meth:`close` writes the final shape.

    The file is a standard ``.npy`` (``numpy.load(path, mmap_mode="r")`` maps it);
    memory use is one block, whatever the number of rows. An unclosed file (a
    killed job) declares zero rows, so it is never mistaken for a complete one.
    """

    def __init__(self, path: str | os.PathLike[str], dim: int) -> None:
        self.path = Path(path)
        self.dim = int(dim)
        self.rows = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: BinaryIO | None = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        self._fh.write(_npy_header(0, self.dim))

    def write(self, block: Matrix) -> None:
        """Append ``block`` ``(b, dim)``."""
        if self._fh is None:
            raise ConfigError(f"{self.path} is already closed")
        matrix = np.ascontiguousarray(block, dtype="<f4")
        if matrix.ndim != 2 or matrix.shape[1] != self.dim:
            raise ConfigError(f"expected blocks of shape (b, {self.dim}), got {matrix.shape}")
        self._fh.write(matrix.tobytes())
        self.rows += matrix.shape[0]

    def close(self) -> None:
        if self._fh is None:
            return
        self._fh.seek(0)
        self._fh.write(_npy_header(self.rows, self.dim))
        self._fh.close()
        self._fh = None


def _npy_header(rows: int, dim: int) -> bytes:
    text = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" % (rows, dim)  # noqa: UP031
    body_len = _NPY_HEADER_BYTES - 10
    body = text.ljust(body_len - 1) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", body_len) + body.encode("latin1")


class ParquetWriter(Closing):
    """Write rows and their vectors to Parquet, one row group per :meth:`write`.

    Columns: the given ``columns`` (``string``, or the arrow type named in ``types``,
    e.g. ``{"id": "int64"}``) and ``vector_column`` as
    ``fixed_size_list<float32>[dim]``. The schema metadata records
    ``embedkit.spec`` and ``embedkit.dim``, so the file says which model made it.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        dim: int,
        spec: str | None,
        columns: Sequence[str],
        *,
        types: Mapping[str, str] | None = None,
        vector_column: str = VECTOR_COLUMN,
    ) -> None:
        pa = require("pyarrow", "data")
        pq = require("pyarrow.parquet", "data")
        if vector_column in columns:
            raise ConfigError(f"column {vector_column!r} would hold the vectors; rename it")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.dim = int(dim)
        self.columns = list(columns)
        self.vector_column = vector_column
        kinds = dict(types or {})
        try:
            fields = [pa.field(c, pa.type_for_alias(kinds.get(c, "string"))) for c in self.columns]
        except ValueError as exc:
            raise ConfigError(f"unknown column type in {kinds}: {exc}") from exc
        fields.append(vector_field(vector_column, self.dim))
        self.schema = pa.schema(fields, metadata=spec_metadata(spec, self.dim))
        self._pa = pa
        self._writer: Any = pq.ParquetWriter(str(self.path), self.schema)
        self.rows = 0

    def write(self, columns: Mapping[str, Sequence[Any]], block: Matrix) -> None:
        """Append ``len(block)`` rows: ``columns[c][i]`` and ``block[i]``."""
        pa = self._pa
        matrix = np.ascontiguousarray(block, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[1] != self.dim:
            raise ConfigError(f"expected blocks of shape (b, {self.dim}), got {matrix.shape}")
        arrays = []
        for column in self.schema:
            if column.name == self.vector_column:
                continue
            values = list(columns[column.name])
            kind = (
                str
                if pa.types.is_string(column.type)
                else int
                if pa.types.is_integer(column.type)
                else None
            )
            bad = [
                (i, f"{column.name}: {type(v).__name__}, the column holds {column.type}")
                for i, v in enumerate(values)
                if kind is not None
                and v is not None
                and (not isinstance(v, kind) or isinstance(v, bool))
            ]
            if bad:  # never coerced: 1 and "1" must not become one value
                raise InvalidInputError(f"values of another type in column {column.name!r}", bad)
            arrays.append(pa.array(values, column.type))
        arrays.append(vector_array(matrix))
        self._writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))
        self.rows += matrix.shape[0]

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


# -- the Parquet codec: vectors <-> fixed_size_list<float32>[dim] ---------------------
def vector_field(name: str, dim: int) -> Any:
    """The arrow field of a vector column: ``fixed_size_list<float32>[dim]``."""
    pa = require("pyarrow", "data")
    return pa.field(name, pa.list_(pa.float32(), int(dim)))


def vector_array(matrix: Matrix) -> Any:
    """``(n, dim)`` float32 as an arrow ``FixedSizeListArray`` (no copy of the values)."""
    pa = require("pyarrow", "data")
    flat = pa.array(np.ascontiguousarray(matrix, np.float32).reshape(-1), pa.float32())
    return pa.FixedSizeListArray.from_arrays(flat, int(matrix.shape[1]))


def spec_metadata(spec: str | None, dim: int) -> dict[bytes, bytes]:
    """The schema metadata that says which model made the vectors."""
    return {b"embedkit.spec": (spec or "").encode(), b"embedkit.dim": str(int(dim)).encode()}


def read_vector_table(
    path: str | os.PathLike[str], column: str = VECTOR_COLUMN
) -> tuple[Any, Matrix, str | None]:
    """``(table without the vectors, float32 (n, dim) vectors, spec)`` of a Parquet file."""
    pa = require("pyarrow", "data")
    pq = require("pyarrow.parquet", "data")
    target = Path(path)
    if not target.is_file():
        raise FileNotFoundError(2, "No such file or directory", str(target))
    try:
        table = pq.read_table(str(target))
    except (pa.ArrowException, OSError) as exc:
        if isinstance(exc, PermissionError):
            raise
        raise CorruptFileError(f"{target} is not a readable Parquet file: {exc}") from exc
    if column not in table.column_names:
        raise CorruptFileError(f"{target} has no {column!r} column of vectors")
    meta = table.schema.metadata or {}
    col = table.column(column)
    kind = col.type
    if not pa.types.is_fixed_size_list(kind) or not pa.types.is_float32(kind.value_type):
        raise CorruptFileError(f"{target}: {column!r} is {kind}, expected fixed_size_list<float>")
    dim = int(kind.list_size)
    if col.null_count:
        raise CorruptFileError(f"{target}: {col.null_count} rows have no vector")
    flat = col.combine_chunks().flatten().to_numpy(zero_copy_only=False)
    vectors = np.ascontiguousarray(flat, dtype=np.float32).reshape(len(table), dim)
    declared = meta.get(b"embedkit.dim")
    if declared is not None and declared.decode() != str(dim):
        raise CorruptFileError(f"{target}: vectors have dim {dim}, the metadata says {declared!r}")
    spec = meta.get(b"embedkit.spec", b"").decode() or None
    return table.drop_columns([column]), vectors, spec
