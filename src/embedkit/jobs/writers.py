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
from embedkit.errors import ConfigError

__all__ = ["NpyWriter", "ParquetWriter"]

Matrix = NDArray[np.float32]

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
        vector_column: str = "embedding",
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
        fields.append(pa.field(vector_column, pa.list_(pa.float32(), self.dim)))
        meta = {b"embedkit.spec": (spec or "").encode(), b"embedkit.dim": str(self.dim).encode()}
        self.schema = pa.schema(fields, metadata=meta)
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
            values = columns[column.name]
            if pa.types.is_string(column.type):
                values = [None if v is None else str(v) for v in values]
            arrays.append(pa.array(values, column.type))
        flat = pa.array(matrix.reshape(-1), pa.float32())
        arrays.append(pa.FixedSizeListArray.from_arrays(flat, self.dim))
        self._writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))
        self.rows += matrix.shape[0]

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
