"""``VectorIndex``: ids + metadata + unit-normalised float32 vectors + the model's spec.

Search is exact cosine similarity (:func:`embedkit.search.kernels.search`). The index
remembers which model made its vectors (``spec``) and their width (``dim``): a
text query is embedded by that model, an embedder with another spec is refused
with :class:`~embedkit.errors.ModelMismatchError`, a vector of another width with
:class:`~embedkit.errors.DimensionMismatchError`.

On disk an index is a folder, no pickle anywhere::

    manifest.json    format, version, spec, dim, count, sha256 and size of each file
    vectors.npy      float32 (count, dim), unit-normalised rows
    ids.json         list of ids (str or int)
    metadata.jsonl   one JSON object (or null) per row
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from embedkit.errors import (
    ConfigError,
    CorruptFileError,
    DimensionMismatchError,
    InvalidInputError,
    ModelMismatchError,
)
from embedkit.protocol import Embedder, embed_queries
from embedkit.registry import load
from embedkit.search.kernels import DEFAULT_BLOCK_BYTES, as_matrix, normalize, search

__all__ = ["Hit", "VectorIndex"]

FORMAT = "embedkit.search.index"
VERSION = 1
Id = str | int
Metadata = dict[str, Any] | None
Query = str | ArrayLike


@dataclass(frozen=True)
class Hit:
    """One search result: the row's ``id``, its cosine ``score`` and its ``metadata``."""

    id: Id
    score: float
    metadata: Metadata = field(default=None, compare=False)


class VectorIndex:
    """Exact cosine-similarity index over float32 vectors, with ids and metadata."""

    def __init__(
        self,
        dim: int,
        *,
        spec: str | None = None,
        embedder: Embedder | None = None,
        block_bytes: int = DEFAULT_BLOCK_BYTES,
    ) -> None:
        if embedder is not None:
            spec = spec or embedder.spec
            _check_same_model(spec, embedder)
        self.dim = int(dim)
        self.spec = spec
        self.block_bytes = block_bytes
        self._embedder = embedder
        self._store: NDArray[np.float32] = np.empty((0, self.dim), np.float32)  # capacity >= n
        self._ids: list[Id] = []
        self._metadata: list[Metadata] = []
        self._positions: dict[Id, int] = {}

    # -- construction -------------------------------------------------------------
    @classmethod
    def from_vectors(
        cls,
        vectors: ArrayLike,
        ids: Sequence[Id] | None = None,
        metadata: Sequence[Metadata] | None = None,
        spec: str | None = None,
    ) -> VectorIndex:
        """An index over ``vectors`` ``(n, dim)``; ``spec`` names the model that made them."""
        matrix = as_matrix(vectors, "vectors")
        index = cls(matrix.shape[1], spec=spec)
        index.add_vectors(matrix, ids, metadata)
        return index

    @classmethod
    def from_texts(
        cls,
        texts: Sequence[str],
        embedder: Embedder | str | Mapping[str, Any] | None = None,
        ids: Sequence[Id] | None = None,
        metadata: Sequence[Metadata] | None = None,
    ) -> VectorIndex:
        """Embed ``texts`` with ``embedder`` (anything :func:`embedkit.load` takes)."""
        model = load(embedder)
        index = cls(model.dim, embedder=model)
        index.add(texts, ids, metadata)
        return index

    def add(
        self,
        texts: Sequence[str],
        ids: Sequence[Id] | None = None,
        metadata: Sequence[Metadata] | None = None,
    ) -> None:
        """Embed ``texts`` with the index's model and append them."""
        self.add_vectors(self.embedder.embed(texts), ids, metadata)

    def add_vectors(
        self,
        vectors: ArrayLike,
        ids: Sequence[Id] | None = None,
        metadata: Sequence[Metadata] | None = None,
    ) -> None:
        """Append ``vectors`` ``(m, dim)``; ids default to running positions."""
        matrix = as_matrix(vectors, "vectors")
        m = matrix.shape[0]
        if matrix.shape[1] != self.dim:
            raise DimensionMismatchError(
                f"vectors have dimension {matrix.shape[1]}, the index has {self.dim}"
            )
        bad = np.flatnonzero(~np.isfinite(matrix).all(axis=1))
        if bad.size:
            raise InvalidInputError(
                "vectors contain NaN or infinity", [(int(i), "not finite") for i in bad]
            )
        new_ids = list(range(len(self), len(self) + m)) if ids is None else list(ids)
        new_meta = [None] * m if metadata is None else list(metadata)
        if len(new_ids) != m or len(new_meta) != m:
            raise ConfigError(
                f"{m} vectors but {len(new_ids)} ids and {len(new_meta)} metadata entries"
            )
        positions = dict(self._positions)
        for offset, row_id in enumerate(new_ids):
            if not isinstance(row_id, (str, int)) or isinstance(row_id, bool):
                raise ConfigError(f"id at row {offset} must be str or int, got {row_id!r}")
            if row_id in positions:
                raise ConfigError(f"duplicate id {row_id!r} at row {offset}")
            positions[row_id] = len(self) + offset
        self._reserve(len(self) + m)
        self._store[len(self) : len(self) + m] = normalize(matrix)
        self._ids += new_ids
        self._metadata += new_meta
        self._positions = positions

    def _reserve(self, rows: int) -> None:
        """Grow the in-memory store geometrically (amortised O(1) appends)."""
        if rows <= self._store.shape[0] and not isinstance(self._store, np.memmap):
            return
        grown = np.empty((max(rows, 2 * self._store.shape[0], 16), self.dim), np.float32)
        grown[: len(self)] = self._store[: len(self)]
        self._store = grown

    @property
    def _vectors(self) -> NDArray[np.float32]:
        return self._store[: len(self)]

    # -- access -------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._ids)

    def __repr__(self) -> str:
        return f"<VectorIndex n={len(self)} dim={self.dim} spec={self.spec!r}>"

    @property
    def ids(self) -> list[Id]:
        return list(self._ids)

    @property
    def metadata(self) -> list[Metadata]:
        return list(self._metadata)

    @property
    def vectors(self) -> NDArray[np.float32]:
        """The unit-normalised ``(n, dim)`` matrix (read-only view)."""
        view = self._vectors.view()
        view.flags.writeable = False
        return view

    @property
    def embedder(self) -> Embedder:
        """The model of this index, built from ``spec`` on first use if not given."""
        if self._embedder is None:
            if self.spec is None:
                raise ConfigError(
                    "this index has no model spec; pass embedder= or search with vectors"
                )
            self._embedder = load(self.spec)
        return self._embedder

    def use_embedder(self, embedder: Embedder | str | Mapping[str, Any]) -> None:
        """Attach the model used for text queries; it must match the index's spec."""
        model = load(embedder)
        if self.spec is None:
            self.spec = model.spec
        _check_same_model(self.spec, model)
        if model.dim != self.dim:
            raise DimensionMismatchError(f"model dimension {model.dim} != index {self.dim}")
        self._embedder = model

    # -- search -------------------------------------------------------------------
    def search(self, query: Query, k: int = 10) -> list[Hit]:
        """The ``k`` rows most similar to one query (a text or a ``(dim,)`` vector)."""
        if isinstance(query, str):
            return self.search_batch([query], k)[0]
        vector = np.asarray(query, dtype=np.float32)
        if vector.ndim != 1:
            raise DimensionMismatchError("search() takes one query; use search_batch() for many")
        return self.search_batch(vector[None, :], k)[0]

    def search_batch(self, queries: Sequence[str] | ArrayLike, k: int = 10) -> list[list[Hit]]:
        """For each query (texts, or a ``(q, dim)`` matrix), its ``k`` best rows."""
        qm = self._query_matrix(queries)
        found = search(normalize(qm), self._vectors, k, block_bytes=self.block_bytes)
        return [
            [
                Hit(self._ids[i], float(s), self._metadata[i])
                for i, s in zip(row_idx.tolist(), row_val.tolist(), strict=True)
            ]
            for row_idx, row_val in zip(found.indices, found.scores, strict=True)
        ]

    def _query_matrix(self, queries: Sequence[str] | ArrayLike) -> NDArray[np.float32]:
        if isinstance(queries, str):
            queries = [queries]
        items = queries if isinstance(queries, np.ndarray) else list(queries)  # type: ignore[arg-type]
        if len(items) and all(isinstance(q, str) for q in items):
            model = self.embedder
            _check_same_model(self.spec, model)
            return embed_queries(model, items)  # type: ignore[arg-type]
        if any(isinstance(q, str) for q in items):
            raise ConfigError("queries must be all texts or all vectors")
        qm = as_matrix(np.asarray(items, dtype=np.float32).reshape(len(items), -1), "queries")
        if qm.shape[1] != self.dim:
            raise DimensionMismatchError(
                f"query vectors have dimension {qm.shape[1]}, the index has {self.dim} "
                f"(made by {self.spec!r})"
            )
        return qm

    # -- persistence --------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the index to the folder ``path`` (created if needed); returns it."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        files = {
            "vectors.npy": _npy_bytes(np.ascontiguousarray(self._vectors, dtype=np.float32)),
            "ids.json": json.dumps(self._ids).encode(),
            "metadata.jsonl": b"".join(
                json.dumps(m, default=_json_default, ensure_ascii=False).encode() + b"\n"
                for m in self._metadata
            ),
        }
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "spec": self.spec,
            "dim": self.dim,
            "count": len(self),
            "files": {
                name: {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                for name, data in files.items()
            },
        }
        (folder / "manifest.json").unlink(missing_ok=True)  # an interrupted save stays invalid
        for name, data in files.items():
            _write_atomic(folder / name, data)
        _write_atomic(folder / "manifest.json", json.dumps(manifest, indent=2).encode())
        return folder

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        embedder: Embedder | str | Mapping[str, Any] | None = None,
        *,
        mmap: bool = False,
        verify: bool = True,
    ) -> VectorIndex:
        """Read an index saved by :meth:`save`.

        ``mmap=True`` maps ``vectors.npy`` instead of reading it: search then
        streams the matrix from disk block by block. ``verify`` checks every
        file's sha256 against the manifest (sizes are always checked).
        """
        folder = Path(path)
        manifest = _read_manifest(folder)
        for name, info in manifest["files"].items():
            _check_file(folder / name, info, verify)
        try:
            raw = np.load(
                folder / "vectors.npy", mmap_mode="r" if mmap else None, allow_pickle=False
            )
            ids = json.loads((folder / "ids.json").read_text("utf-8"))
            lines = (folder / "metadata.jsonl").read_text("utf-8").splitlines()
            metadata = [json.loads(line) for line in lines]
        except (ValueError, OSError) as exc:
            raise CorruptFileError(f"index at {folder} cannot be read: {exc}") from exc
        count, dim = int(manifest["count"]), int(manifest["dim"])
        if raw.dtype != np.float32 or raw.shape != (count, dim):
            raise CorruptFileError(
                f"{folder / 'vectors.npy'} holds {raw.dtype} {raw.shape}, "
                f"the manifest says float32 ({count}, {dim})"
            )
        if len(ids) != count or len(metadata) != count:
            raise CorruptFileError(f"index at {folder}: ids/metadata do not match count {count}")
        index = cls(dim, spec=manifest["spec"])
        index._store = raw
        index._ids = [i for i in ids]
        index._metadata = metadata
        index._positions = {row_id: pos for pos, row_id in enumerate(index._ids)}
        if embedder is not None:
            index.use_embedder(embedder)
        return index


def _check_same_model(spec: str | None, embedder: Embedder) -> None:
    if spec is not None and embedder.spec != spec:
        raise ModelMismatchError(
            f"the index was built with {spec!r} but the query model is {embedder.spec!r}; "
            "documents and queries must be embedded by the same model"
        )


def _npy_bytes(array: NDArray[np.float32]) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"metadata value {value!r} of type {type(value).__name__} is not JSON")


def _read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / "manifest.json"
    try:
        manifest: dict[str, Any] = json.loads(path.read_text("utf-8"))
    except FileNotFoundError as exc:
        raise CorruptFileError(f"{folder} is not a saved index (no manifest.json)") from exc
    except (ValueError, OSError) as exc:
        raise CorruptFileError(f"{path} is not valid JSON: {exc}") from exc
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise CorruptFileError(f"{path} is not an {FORMAT} v{VERSION} manifest")
    return manifest


def _check_file(path: Path, info: Mapping[str, Any], verify: bool) -> None:
    try:
        size = path.stat().st_size
    except FileNotFoundError as exc:
        raise CorruptFileError(f"{path} is missing") from exc
    if size != info["bytes"]:
        raise CorruptFileError(f"{path} has {size} bytes, the manifest says {info['bytes']}")
    if verify:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(2**22), b""):
                digest.update(chunk)
        if digest.hexdigest() != info["sha256"]:
            raise CorruptFileError(f"{path} fails its checksum: the file was altered")
