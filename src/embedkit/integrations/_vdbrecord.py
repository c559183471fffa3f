"""What every embedkit collection stores beside its vectors, whatever the engine.

* :class:`Record`: the model's spec and the vectors' dim (and the format version),
  as string pairs an engine keeps as schema metadata, collection metadata or a row;
* :class:`Rows`: a checked batch to write, :class:`Match`: a row an engine found;
* ids as ``(text, is_int)`` so that ``1`` and ``"1"`` stay apart; metadata as JSON
  text (the rules of :mod:`embedkit.search.rows`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from embedkit.errors import CorruptFileError, EmbedkitError
from embedkit.search.rows import Id, Metadata

__all__ = [
    "DIM_KEY",
    "FORMAT",
    "FORMAT_KEY",
    "SPEC_KEY",
    "Match",
    "Record",
    "Rows",
    "decode_id",
    "decode_metadata",
    "encode_id",
    "encode_metadata",
]

FORMAT = 1
SPEC_KEY, DIM_KEY, FORMAT_KEY = "embedkit.spec", "embedkit.dim", "embedkit.format"


@dataclass(frozen=True)
class Record:
    """What a collection stores beside its rows: the model's ``spec`` (or None) and ``dim``."""

    spec: str | None
    dim: int

    def as_dict(self) -> dict[str, str]:
        """The record as string pairs (schema metadata, collection metadata, a table row)."""
        return {SPEC_KEY: self.spec or "", DIM_KEY: str(self.dim), FORMAT_KEY: str(FORMAT)}

    @classmethod
    def parse(cls, raw: Mapping[str, Any] | None, where: str) -> Record:
        """The inverse of :meth:`as_dict`; :class:`CorruptFileError` naming ``where`` if bad."""
        if not raw or DIM_KEY not in raw:
            raise CorruptFileError(f"{where} has no embedkit record (spec and dim): not made here?")
        spec, dim, version = raw.get(SPEC_KEY), str(raw.get(DIM_KEY)), str(raw.get(FORMAT_KEY))
        if not isinstance(spec, str):
            raise CorruptFileError(f"{where}: the stored spec is not a string: {spec!r}")
        if not dim.isdigit() or int(dim) < 1:
            raise CorruptFileError(f"{where}: the stored dim is not a positive integer: {dim!r}")
        if version != str(FORMAT):
            raise CorruptFileError(
                f"{where}: record format {version!r}, this embedkit reads {FORMAT}"
            )
        return cls(spec or None, int(dim))


class Rows(NamedTuple):
    """A checked batch to write: rows ``start .. start + m - 1``, unit ``vectors`` ``(m, dim)``."""

    start: int
    vectors: NDArray[np.float32]
    ids: list[Id]
    metadata: list[Metadata]

    def encoded(self) -> list[tuple[int, str, bool, str | None]]:
        """Per row ``(row, id text, id_is_int, metadata JSON or None)``."""
        return [
            (self.start + i, *encode_id(row_id), encode_metadata(meta))
            for i, (row_id, meta) in enumerate(zip(self.ids, self.metadata, strict=True))
        ]


class Match(NamedTuple):
    """One row an engine found: its ordinal ``row``, ``id``, cosine ``score``, ``metadata``."""

    row: int
    id: Id
    score: float
    metadata: Metadata


def encode_id(value: Id) -> tuple[str, bool]:
    """``(text, is_int)``: ``1 -> ("1", True)``, ``"1" -> ("1", False)``."""
    return str(value), isinstance(value, int)


def decode_id(text: str, is_int: bool, where: str) -> Id:
    """The inverse of :func:`encode_id`; a bad stored int is a :class:`CorruptFileError`."""
    if not is_int:
        return text
    try:
        return int(text)
    except ValueError as exc:
        raise CorruptFileError(f"{where}: stored id {text!r} is flagged int but is not") from exc


def encode_metadata(entry: Metadata) -> str | None:
    return None if entry is None else json.dumps(entry, ensure_ascii=False, allow_nan=False)


def decode_metadata(text: str | None, where: str) -> Metadata:
    """Stored JSON text (or None) back to a dict (or None)."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise CorruptFileError(f"{where}: stored metadata is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise CorruptFileError(f"{where}: stored metadata is not a JSON object")
    return value


class EngineErrors:
    """``with Sub(message):`` turns an engine's exception into embedkit's error tree.

    Each engine's subclass says how in :meth:`translate` (an embedkit error to raise
    ``from`` the engine's, or ``None`` to let it pass); embedkit's own errors pass.
    """

    def __init__(self, message: str) -> None:
        self.message = message

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        if exc is None or isinstance(exc, EmbedkitError):
            return
        error = self.translate(exc)
        if error is not None:
            raise error from exc

    def translate(self, exc: BaseException) -> EmbedkitError | None:
        """The embedkit error for ``exc``, or ``None``; the base class translates nothing."""
        return None
