"""The ``Embedder`` contract and a small base class that enforces it.

Contract::

    embedder.dim   -> int
    embedder.spec  -> str  (backend, model and every option that changes vectors; no secret)
    embedder.embed(texts) -> float32 ndarray, shape (len(texts), dim), always 2-D

Asymmetric models may add ``embed_query(texts)`` with the same contract;
:func:`embed_queries` falls back to ``embed`` where it is absent.

Long texts follow the ``on_long`` policy shared by every backend:

* ``"error"``    raise :class:`~embedkit.errors.TextTooLongError` naming the rows, before any work;
* ``"truncate"`` cut to the model's limit, with an :class:`~embedkit.errors.EmbedkitWarning`
  saying how many rows were cut;
* ``"chunk"``    split into pieces of at most the limit, embed each piece, and return
  ``normalize(sum_p n_p * v_p)`` where ``n_p`` is the piece's token count.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, Literal, Protocol, get_args, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from embedkit.errors import (
    BadResponseError,
    ConfigError,
    EmbedkitWarning,
    TextTooLongError,
)
from embedkit.spec import OptionValue, format_spec
from embedkit.validation import check_texts

__all__ = ["BaseEmbedder", "Embedder", "OnLong", "check_on_long", "embed_queries"]

OnLong = Literal["error", "truncate", "chunk"]
ON_LONG_CHOICES: tuple[str, ...] = get_args(OnLong)
Matrix = NDArray[np.float32]


@runtime_checkable
class Embedder(Protocol):
    """Anything that turns texts into a ``(n, dim)`` float32 matrix."""

    @property
    def dim(self) -> int: ...

    @property
    def spec(self) -> str: ...

    def embed(self, texts: Sequence[str]) -> Matrix: ...


def embed_queries(embedder: Embedder, texts: Sequence[str] | str) -> Matrix:
    """Embed search queries: ``embedder.embed_query`` if it has one, else ``embed``."""
    fn = getattr(embedder, "embed_query", None)
    return fn(texts) if callable(fn) else embedder.embed(texts)  # type: ignore[arg-type]


def check_on_long(value: object) -> OnLong:
    if value not in ON_LONG_CHOICES:
        raise ConfigError(f"on_long must be one of {ON_LONG_CHOICES}, got {value!r}")
    return value  # type: ignore[return-value]


class BaseEmbedder(ABC):
    """Shared checks for backends: validation, the ``on_long`` policy, output shape.

    Subclasses set ``backend`` and implement ``dim``, ``_spec_parts`` and
    ``_embed(texts)`` (valid, within-limit texts -> ``(len(texts), dim)``).
    Backends with a token limit override ``max_tokens``, ``count_tokens``,
    ``_truncate`` and ``_chunk``.
    """

    backend: ClassVar[str]
    on_long: OnLong = "error"

    @property
    @abstractmethod
    def dim(self) -> int: ...

    @abstractmethod
    def _spec_parts(self) -> tuple[str, dict[str, OptionValue]]:
        """``(model, options)``: every option that changes the vectors, no secrets."""

    @abstractmethod
    def _embed(self, texts: list[str]) -> NDArray[Any]: ...

    @property
    def spec(self) -> str:
        model, options = self._spec_parts()
        return format_spec(self.backend, model, options)

    @property
    def max_tokens(self) -> int | None:
        """Most tokens one input may have, or ``None`` for no limit."""
        return None

    def count_tokens(self, texts: Sequence[str]) -> NDArray[np.int64]:
        """Token count per text with the model's own tokenizer: shape ``(len(texts),)``."""
        raise ConfigError(f"backend {self.backend!r} has no tokenizer to count tokens")

    def _truncate(self, text: str) -> str:
        """``text`` cut to ``max_tokens``; backends that truncate natively return it as is."""
        return text

    def _chunk(self, text: str) -> list[tuple[str, int]]:
        """``text`` split into ``(piece, n_tokens)`` pieces within ``max_tokens``."""
        raise ConfigError(f"backend {self.backend!r} does not support on_long='chunk'")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec} dim={self.dim}>"

    def embed(self, texts: Sequence[str] | str) -> Matrix:
        """``(len(texts), dim)`` float32; a bare ``str`` counts as one text."""
        items = check_texts(texts)
        if not items:
            return np.empty((0, self.dim), dtype=np.float32)
        limit = self.max_tokens
        if limit is None:
            return self._checked(self._embed(items), len(items))
        counts = self.count_tokens(items)
        long_rows = np.flatnonzero(counts > limit)
        if long_rows.size == 0:
            return self._checked(self._embed(items), len(items))
        if self.on_long == "error":
            raise TextTooLongError(
                f"{long_rows.size} of {len(items)} texts exceed {limit} tokens "
                f"(on_long='error'; use on_long='truncate' or 'chunk')",
                [(int(i), f"{int(counts[i])} tokens") for i in long_rows],
            )
        if self.on_long == "truncate":
            warnings.warn(
                f"{long_rows.size} of {len(items)} texts exceed {limit} tokens and were "
                f"truncated (rows {_preview(long_rows)})",
                EmbedkitWarning,
                stacklevel=2,
            )
            for i in long_rows:
                items[i] = self._truncate(items[i])
            return self._checked(self._embed(items), len(items))
        return self._embed_chunked(items, counts, set(long_rows.tolist()))

    def _embed_chunked(self, items: list[str], counts: NDArray[np.int64], long: set[int]) -> Matrix:
        pieces: list[str] = []
        owner: list[int] = []
        weight: list[float] = []
        for i, text in enumerate(items):
            parts = self._chunk(text) if i in long else [(text, 1)]
            for piece, n_tokens in parts:
                pieces.append(piece)
                owner.append(i)
                weight.append(float(max(n_tokens, 1)))
        vectors = self._checked(self._embed(pieces), len(pieces))
        out = np.zeros((len(items), self.dim), dtype=np.float64)
        np.add.at(out, np.asarray(owner), vectors * np.asarray(weight, dtype=np.float32)[:, None])
        rows = np.asarray(sorted(long))
        norms = np.linalg.norm(out[rows], axis=1, keepdims=True)
        out[rows] /= np.where(norms > 0, norms, 1.0)
        return out.astype(np.float32)

    def _checked(self, matrix: NDArray[Any], n: int) -> Matrix:
        out = np.asarray(matrix, dtype=np.float32)
        if out.shape != (n, self.dim):
            raise BadResponseError(
                f"{self.backend} returned shape {out.shape}, expected ({n}, {self.dim})"
            )
        bad = np.flatnonzero(~np.isfinite(out).all(axis=1))
        if bad.size:
            raise BadResponseError(
                f"{self.backend} returned NaN or infinity for rows {_preview(bad.tolist())}"
            )
        return out


def _preview(rows: Iterable[int], limit: int = 10) -> str:
    rows = [int(r) for r in rows]
    text = ", ".join(map(str, rows[:limit]))
    return text + (f", ... ({len(rows)} in all)" if len(rows) > limit else "")
