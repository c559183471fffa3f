"""embedkit collections in Qdrant: local mode (a folder) or a Qdrant server, same code.

::

    from qdrant_client import QdrantClient
    from embedkit.integrations.qdrant import QdrantCollection

    client = QdrantClient(path="build/qdrant")      # or QdrantClient(url="http://host:6333")
    coll = QdrantCollection.create(client, "reviews", model="hashing?dim=256")
    coll.add(["Great dog food", "Spicy hot sauce"], ids=["a", "b"])
    coll.search("pet food", k=1)

Target: a ``QdrantClient``, or a string: ``"http://..."``/``"https://..."`` makes
``QdrantClient(url=...)``, ``":memory:"`` an in-memory local client (a client made
here is closed by :meth:`QdrantCollection.close`, one passed in is not). A folder
is not taken as a string: Qdrant's local mode stores and loads its points with
``pickle``, and embedkit never loads pickles unasked, so opening a folder is the
caller's explicit choice, ``QdrantClient(path=folder)``.

One Qdrant collection per embedkit collection of width ``dim``, distance ``Dot``
on the unit rows (that is the cosine; Qdrant's ``Cosine`` would normalise them
again and change their last bits);
the record (``embedkit.spec``, ``embedkit.dim``, ``embedkit.format``) is the
collection's ``metadata`` (Qdrant >= 1.16 servers keep it). Point ids are the row
ordinals ``0, 1, ...``; the payload holds ``id`` (the embedkit id as text),
``id_is_int`` and ``metadata`` (the row's JSON object, so Qdrant filters can use
``metadata.<field>``).

Search: local mode is always an exact scan. A server searches its HNSW graph once a
segment is large enough to be indexed (Qdrant's ``indexing_threshold``) and exactly
below that; ``ef`` (``hnsw_ef``, default ``DEFAULT_EF``) is sent with every query,
and ``search(..., exact=True)`` asks for the exact answer.

Limits: local mode is for tests and small data: one process at a time holds the
folder (a second client on it is a :class:`~embedkit.errors.StorageError`); it
commits every point to its SQLite file on its own (about 30 ms a point where fsync
is slow; ``":memory:"`` keeps nothing on disk); and it stores points with
``pickle`` (see above: pass the client yourself, and only for folders you made).
qdrant-client sends no telemetry; local mode opens no network connection (checked
with ``strace -f -e trace=connect``). Needs ``pip install 'embedkit[qdrant]'``.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from embedkit._optional import require
from embedkit.errors import ConfigError, CorruptFileError, EmbedkitError, StorageError
from embedkit.integrations._vdbrecord import (
    EngineErrors,
    Match,
    Record,
    Rows,
    decode_id,
    encode_id,
)
from embedkit.integrations._vectordb import VectorCollection
from embedkit.search.rows import Id, Metadata

__all__ = ["DEFAULT_EF", "QdrantCollection"]

DEFAULT_EF = 128
PAGE = 1024


def _models() -> Any:
    return require("qdrant_client.models", "qdrant")


class QdrantCollection(VectorCollection):
    """An embedkit collection in a Qdrant collection; see the module docstring."""

    engine: ClassVar[str] = "qdrant"

    def __init__(self, client: Any, name: str, record: Record, owned: Any = None) -> None:
        super().__init__(name, record, owned)
        self.client = client
        self.ef: int | None = DEFAULT_EF

    @classmethod
    def _connect(cls, target: Any) -> tuple[Any, Any]:
        if isinstance(target, (str, os.PathLike)):
            qdrant = require("qdrant_client", "qdrant")
            where = os.fspath(target)
            if not where.startswith(("http://", "https://")) and where != ":memory:":
                raise ConfigError(
                    f"{where!r} is not a Qdrant URL: Qdrant's local mode keeps its points "
                    "in pickle files, which embedkit does not open unasked; pass "
                    f"QdrantClient(path={where!r}) to choose it"
                )
            try:
                if where == ":memory:":
                    client = qdrant.QdrantClient(location=where)
                else:
                    client = qdrant.QdrantClient(url=where)
            except (RuntimeError, OSError, ValueError) as exc:  # e.g. a bad URL
                raise StorageError(f"cannot open Qdrant at {where}: {exc}") from exc
            return client, client
        if not hasattr(target, "query_points"):
            raise ConfigError(
                f'target must be a QdrantClient, a URL or ":memory:", got {type(target).__name__}'
            )
        return target, None

    @classmethod
    def _make(cls, target: Any, name: str, record: Record, replace: bool) -> QdrantCollection:
        client, owned = cls._connect(target)
        models = _models()
        with _errors(f"Qdrant collection {name!r}: create"):
            if client.collection_exists(name):
                if not replace:
                    raise ConfigError(
                        f"Qdrant collection {name!r} already exists; open() it or pass replace=True"
                    )
                client.delete_collection(name)
            client.create_collection(
                name,
                vectors_config=models.VectorParams(size=record.dim, distance=models.Distance.DOT),
                metadata=record.as_dict(),
            )
        return cls(client, name, record, owned)

    @classmethod
    def _attach(cls, target: Any, name: str) -> QdrantCollection:
        client, owned = cls._connect(target)
        where = f"Qdrant collection {name!r}"
        with _errors(f"{where}: open"):
            if not client.collection_exists(name):
                raise ConfigError(f"no Qdrant collection {name!r}")
            info = client.get_collection(name)
        record = Record.parse(info.config.metadata, where)
        params = info.config.params.vectors
        size = getattr(params, "size", None)
        if size != record.dim or getattr(params, "distance", None) != _models().Distance.DOT:
            raise CorruptFileError(
                f"{where}: vectors {params}, the record says {record.dim} dims, dot product"
            )
        return cls(client, name, record, owned)

    # -- rows ---------------------------------------------------------------------
    def __len__(self) -> int:
        with _errors(f"{self._where}: count"):
            return int(self.client.count(self.name, exact=True).count)

    @property
    def _where(self) -> str:
        return f"Qdrant collection {self.name!r}"

    def _write(self, rows: Rows) -> None:
        models = _models()
        payloads = [
            {"id": text, "id_is_int": flag, "metadata": meta}
            for (text, flag), meta in zip(map(encode_id, rows.ids), rows.metadata, strict=True)
        ]
        batch = models.Batch(
            ids=list(range(rows.start, rows.start + len(rows.ids))),
            vectors=rows.vectors.tolist(),
            payloads=payloads,
        )
        with _errors(f"{self._where}: write"):
            self.client.upsert(self.name, points=batch, wait=True)

    def _scroll(self, vectors: bool) -> list[Any]:
        points: list[Any] = []
        offset = None
        with _errors(f"{self._where}: read"):
            while True:
                page, offset = self.client.scroll(
                    self.name, limit=PAGE, offset=offset, with_payload=True, with_vectors=vectors
                )
                points += page
                if offset is None:
                    return sorted(points, key=lambda p: int(p.id))

    def _match(self, point: Any, score: float) -> Match:
        payload = point.payload or {}
        text, flag, meta = payload.get("id"), payload.get("id_is_int"), payload.get("metadata")
        if not isinstance(text, str) or not isinstance(flag, bool):
            raise CorruptFileError(f"{self._where}: point {point.id} has no embedkit id")
        if meta is not None and not isinstance(meta, dict):
            raise CorruptFileError(f"{self._where}: point {point.id} metadata is not an object")
        return Match(int(point.id), decode_id(text, flag, self._where), score, meta)

    def _stored_ids(self) -> set[Id]:
        return {self._match(p, 0.0).id for p in self._scroll(vectors=False)}

    def _read_all(self) -> tuple[NDArray[np.float32], list[Id], list[Metadata]]:
        points = self._scroll(vectors=True)
        if [int(p.id) for p in points] != list(range(len(points))):
            raise CorruptFileError(f"{self._where}: point ids are not 0..{len(points) - 1}")
        found = [self._match(p, 0.0) for p in points]
        vectors = np.asarray([p.vector for p in points], np.float32).reshape(-1, self.dim)
        return vectors, [m.id for m in found], [m.metadata for m in found]

    # -- search -------------------------------------------------------------------
    def _query(self, vector: NDArray[np.float32], k: int, exact: bool) -> list[Match]:
        models = _models()
        params = models.SearchParams(exact=True if exact else None, hnsw_ef=self.ef)
        with _errors(f"{self._where}: search"), warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Local mode performs exact", UserWarning)
            got = self.client.query_points(
                self.name, query=vector.tolist(), limit=k, with_payload=True, search_params=params
            )
        return [self._match(p, float(p.score)) for p in got.points]

    def _close(self) -> None:
        self._owned.close()


class _errors(EngineErrors):
    """Qdrant failures -> :class:`StorageError` (server errors, I/O); "not found" -> ConfigError."""

    def translate(self, exc: BaseException) -> EmbedkitError | None:
        api = require("qdrant_client.http.exceptions", "qdrant").ApiException
        if not isinstance(exc, (api, OSError, RuntimeError, ValueError)):
            return None
        if isinstance(exc, ValueError) and "not found" in str(exc):
            return ConfigError(f"{self.message}: {exc}")
        return StorageError(f"{self.message}: {exc}")
