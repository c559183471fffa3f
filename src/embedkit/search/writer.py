"""``IndexWriter``: build an index folder on disk block by block, in bounded memory.

The folder is the one :class:`~embedkit.search.index.VectorIndex` loads (same
files, same manifest): vectors are appended to ``vectors.npy``, ids to a JSON
array (or, while every row ``i`` has the id ``i``, ``{"range": [0, n]}`` at the
end), metadata to JSON lines, and :meth:`IndexWriter.commit` swaps the folder in
atomically (:mod:`embedkit._folder`). Memory holds one block plus the set of ids
(to refuse duplicates; default ids, the running positions, are kept as ranges,
not one by one); an index of any size can then be searched memory-mapped
(``VectorIndex.load(path, mmap=True)``)::

    with IndexWriter("idx", dim=384, spec=model.spec) as out:
        for block in job.batches():
            out.add(block.vectors, ids, metadata)
        out.commit()
"""

from __future__ import annotations

import bisect
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO

from numpy.typing import ArrayLike

from embedkit._closing import Closing
from embedkit._folder import FolderWriter
from embedkit.errors import ConfigError
from embedkit.jobs.writers import NpyWriter
from embedkit.search.columns import is_range
from embedkit.search.index import IDS, KIND, METADATA
from embedkit.search.rows import Id, Metadata, check_ids, check_metadata, metadata_lines, unit_rows
from embedkit.search.store import VECTORS, ExactStore
from embedkit.spec import canonical_spec

__all__ = ["IndexWriter"]


class IndexWriter(Closing):
    """Stream rows into the index folder ``path``; nothing replaces it before :meth:`commit`."""

    def __init__(self, path: str | os.PathLike[str], dim: int, spec: str | None) -> None:
        self.dim = int(dim)
        self.spec = None if spec is None else canonical_spec(spec)
        self._folder = FolderWriter(path, KIND)
        self._vectors = NpyWriter(self._folder.path_of(VECTORS), self.dim)
        self._ids: IO[bytes] = open(self._folder.path_of(IDS), "wb")  # noqa: SIM115
        self._meta: IO[bytes] = open(self._folder.path_of(METADATA), "wb")  # noqa: SIM115
        self._seen = _TakenIds()
        self._ranged = True  # every id so far is its row number: none written yet
        self.count = 0

    def add(
        self,
        vectors: ArrayLike,
        ids: Sequence[Id] | None = None,
        metadata: Sequence[Metadata] | None = None,
    ) -> None:
        """Append ``vectors`` ``(m, dim)`` with their ids (default: running positions)."""
        unit = unit_rows(vectors, self.dim)
        m = unit.shape[0]
        new_ids = check_ids(ids, m, self.count, self._seen)
        lines = metadata_lines(check_metadata(metadata, m))
        if ids is None or is_range(new_ids, self.count):
            self._seen.add_range(self.count, self.count + m)
        else:
            for offset, row_id in enumerate(new_ids):
                self._seen.explicit[row_id] = self.count + offset
            if self._ranged:  # the first other id: write the row numbers so far
                self._ranged = False
                self._ids.write(b"[")
                for start in range(0, self.count, 1 << 16):
                    stop = min(self.count, start + (1 << 16))
                    self._ids.write(b"".join(b"%d," % i for i in range(start, stop)))
        if not self._ranged and m:
            encoded = ",".join(json.dumps(i) for i in new_ids).encode()
            self._ids.write(encoded + b",")
        self._meta.write(lines)
        self._vectors.write(unit)
        self.count += m

    def commit(self) -> Path:
        """Finish the files and make them the folder's content; returns the folder."""
        if self._ids.closed:
            raise ConfigError("this IndexWriter is already closed")
        if self._ranged:
            self._ids.write(json.dumps({"range": [0, self.count]}).encode())
        else:
            self._ids.seek(-1, os.SEEK_END)  # the last ","
            self._ids.write(b"]")
        self._finish()
        meta = {"spec": self.spec, "dim": self.dim, "count": self.count}
        return self._folder.commit({**meta, "store": {"kind": ExactStore.kind}})

    def _finish(self) -> None:
        self._vectors.close()
        self._ids.close()
        self._meta.close()

    def close(self) -> None:
        self._finish()
        self._folder.close()


class _TakenIds(Mapping[Id, int]):
    """The ids written so far, id -> row: explicit ids in a dict, default ids (row
    ``i`` has id ``i``) as ranges, so 10M default ids cost a few bytes, not 1 GB."""

    def __init__(self) -> None:
        self.explicit: dict[Id, int] = {}
        self._starts: list[int] = []
        self._stops: list[int] = []

    def add_range(self, start: int, stop: int) -> None:
        if self._stops and self._stops[-1] == start:
            self._stops[-1] = stop
        elif stop > start:
            self._starts.append(start)
            self._stops.append(stop)

    def _in_ranges(self, key: object) -> bool:
        if not isinstance(key, int) or isinstance(key, bool):
            return False
        at = bisect.bisect_right(self._starts, key) - 1
        return at >= 0 and key < self._stops[at]

    def __contains__(self, key: object) -> bool:
        return key in self.explicit or self._in_ranges(key)

    def __getitem__(self, key: Id) -> int:
        if key in self.explicit:
            return self.explicit[key]
        if self._in_ranges(key):
            return int(key)
        raise KeyError(key)

    def __iter__(self) -> Iterator[Id]:
        yield from self.explicit
        for start, stop in zip(self._starts, self._stops, strict=True):
            yield from range(start, stop)

    def __len__(self) -> int:
        return len(self.explicit) + sum(
            b - a for a, b in zip(self._starts, self._stops, strict=True)
        )
