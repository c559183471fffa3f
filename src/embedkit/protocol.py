"""The ``Embedder`` contract, the optional protocols, and the base class that enforces them.

Contract::

    embedder.dim   -> int   (no I/O; may raise UnknownDimensionError before a server's first call)
    embedder.spec  -> str   (backend, model and every option that changes vectors; no secret)
    embedder.embed(texts) -> float32 ndarray, shape (len(texts), dim), always 2-D

Optional, declared as protocols (checked with ``isinstance``, never by string lookups):

* :class:`QueryEmbedder` -- ``embed_query(texts)``, same contract, for models that
  embed queries differently from documents (E5, BGE prompts). :func:`embed_queries`
  uses it where present, else ``embed``.
* :class:`TokenLimited` -- ``max_tokens`` (``None``: no limit), ``on_long`` and
  ``count_tokens(texts) -> int64 (n,)`` with the model's own tokenizer.
* :class:`TokenSpans` -- ``token_spans(text) -> [(start, end), ...]``: where the model's
  tokens of ``text`` lie in it, in characters (chunking by tokens,
  :mod:`embedkit.search.chunks`).

Long texts follow the ``on_long`` policy, applied in exactly one place,
:meth:`BaseEmbedder.embed_detailed`, with tokens counted once per text:

* ``"error"``    raise :class:`~embedkit.errors.TextTooLongError` naming the rows, before any work;
* ``"truncate"`` cut to the model's limit (``embed`` warns with the count);
* ``"chunk"``    split into pieces of at most the limit, embed each piece, and return
  ``normalize(sum_p n_p * v_p)`` where ``n_p`` is the piece's token count.

Counting is cheap where a backend can bound counts from above without its
tokenizer (``_token_bounds``: OpenAI's UTF-8 length); exact counts are then taken
only for texts whose bound exceeds the limit.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol, get_args, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from embedkit.errors import BadResponseError, ConfigError, EmbedkitWarning, TextTooLongError
from embedkit.spec import OptionValue, format_spec
from embedkit.validation import check_texts

__all__ = [
    "BaseEmbedder",
    "Embedded",
    "Embedder",
    "OnLong",
    "QueryEmbedder",
    "TokenLimited",
    "TokenSpans",
    "check_on_long",
    "checked_matrix",
    "embed_queries",
    "over_limit",
]

OnLong = Literal["error", "truncate", "chunk"]
ON_LONG_CHOICES: tuple[str, ...] = get_args(OnLong)
Matrix = NDArray[np.float32]
Counts = NDArray[np.int64]


@runtime_checkable
class Embedder(Protocol):
    """Anything that turns texts into a ``(n, dim)`` float32 matrix."""

    @property
    def dim(self) -> int: ...

    @property
    def spec(self) -> str: ...

    def embed(self, texts: Sequence[str]) -> Matrix: ...


@runtime_checkable
class QueryEmbedder(Embedder, Protocol):
    """An embedder with a separate path for search queries."""

    def embed_query(self, texts: Sequence[str]) -> Matrix: ...


@runtime_checkable
class TokenLimited(Protocol):
    """An embedder whose inputs have a token limit and a policy for texts over it."""

    @property
    def max_tokens(self) -> int | None: ...

    @property
    def on_long(self) -> OnLong: ...

    def count_tokens(self, texts: Sequence[str]) -> Counts: ...


@runtime_checkable
class TokenSpans(Protocol):
    """An embedder that says where its tokens lie in a text.

    ``token_spans(text)[i] == (start, end)``: token ``i`` of ``text`` alone (no prompt,
    no special tokens) covers ``text[start:end]``; spans are in order. Several tokens
    may share one span (byte pieces of one character); whitespace between tokens may
    lie outside every span.
    """

    def token_spans(self, text: str) -> list[tuple[int, int]]: ...


@dataclass(frozen=True)
class Embedded:
    """What :meth:`BaseEmbedder.embed_detailed` did.

    ``vectors``: float32 ``(n, dim)``; ``long``: int64 positions of the texts over
    ``max_tokens`` (truncated or chunked, as ``policy`` says); ``counts``: int64
    ``(n,)`` exact token counts where known, ``-1`` where only a bound under the
    limit was needed (``None`` for models without a limit).
    """

    vectors: Matrix
    long: NDArray[np.int64]
    counts: Counts | None
    policy: OnLong


def embed_queries(embedder: Embedder, texts: Sequence[str] | str) -> Matrix:
    """Embed search queries: ``embedder.embed_query`` if it has one, else ``embed``."""
    items = [texts] if isinstance(texts, str) else texts
    if isinstance(embedder, QueryEmbedder):
        return embedder.embed_query(items)
    return embedder.embed(items)


def check_on_long(value: object) -> OnLong:
    if value not in ON_LONG_CHOICES:
        raise ConfigError(f"on_long must be one of {ON_LONG_CHOICES}, got {value!r}")
    return value  # type: ignore[return-value]


# True while embed_detailed runs for queries, so that the hooks it calls (count_tokens,
# _truncate, _chunk) can count and cut under a model's query prompt; see querying().
_QUERYING: ContextVar[bool] = ContextVar("embedkit_querying", default=False)


class BaseEmbedder(ABC):
    """Shared checks for backends: validation, the ``on_long`` policy, output shape.

    Subclasses set ``backend`` and implement ``dim``, ``_spec_parts`` and
    ``_embed(texts)`` (valid, within-limit texts -> ``(len(texts), dim)``);
    asymmetric models override ``_embed_queries`` (and read :meth:`querying` in
    their token hooks). Backends with a token limit override ``max_tokens``,
    ``count_tokens``, ``_truncate`` and ``_chunk``, and may override
    ``_token_bounds`` with a cheap upper bound of the counts.
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

    def _embed_queries(self, texts: list[str]) -> NDArray[Any]:
        """Queries to vectors; the same as documents unless the model says otherwise."""
        return self._embed(texts)

    @property
    def spec(self) -> str:
        model, options = self._spec_parts()
        return format_spec(self.backend, model, options)

    @property
    def max_tokens(self) -> int | None:
        """Most tokens one input may have, or ``None`` for no limit."""
        return None

    def count_tokens(self, texts: Sequence[str]) -> Counts:
        """Token count per text with the model's own tokenizer: shape ``(len(texts),)``."""
        raise ConfigError(f"backend {self.backend!r} has no tokenizer to count tokens")

    def _token_bounds(self, texts: Sequence[str]) -> Counts | None:
        """Cheap upper bounds of the token counts, or ``None`` (then counts are exact)."""
        return None

    def _truncate(self, text: str) -> str:
        """``text`` cut to ``max_tokens``; backends that truncate natively return it as is."""
        return text

    def _chunk(self, text: str) -> list[tuple[str, int]]:
        """``text`` split into ``(piece, n_tokens)`` pieces within ``max_tokens``."""
        raise ConfigError(f"backend {self.backend!r} does not support on_long='chunk'")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec}>"

    @staticmethod
    def querying() -> bool:
        """Whether the policy path now runs for queries (inside :meth:`embed_query`)."""
        return _QUERYING.get()

    # -- the one path ------------------------------------------------------------------
    def embed(self, texts: Sequence[str] | str) -> Matrix:
        """``(len(texts), dim)`` float32; a bare ``str`` counts as one text."""
        return self._warned(self.embed_detailed(texts))

    def embed_query(self, texts: Sequence[str] | str) -> Matrix:
        """Like :meth:`embed`, for search queries (prompts/prefixes where the model has them)."""
        return self._warned(self.embed_detailed(texts, query=True))

    def token_counts(self, texts: Sequence[str]) -> Counts:
        """Exact counts where a text could be over the limit, ``-1`` where its bound is not.

        ``(len(texts),)`` int64; all ``-1`` for a model without a limit.
        """
        limit = self.max_tokens
        out = np.full(len(texts), -1, dtype=np.int64)
        if limit is None or not len(texts):
            return out
        bounds = self._token_bounds(texts)
        todo = np.arange(len(texts)) if bounds is None else np.flatnonzero(bounds > limit)
        if todo.size:
            out[todo] = self.count_tokens([texts[int(i)] for i in todo])
        return out

    def embed_detailed(
        self,
        texts: Sequence[str] | str,
        *,
        counts: Counts | None = None,
        query: bool = False,
    ) -> Embedded:
        """Embed under the ``on_long`` policy and say what it did (see :class:`Embedded`).

        ``counts``: token counts already known (exact, or ``-1`` where a text is
        known to be within the limit), so that no text is counted twice.
        """
        mode = _QUERYING.set(query)
        try:
            return self._policy(check_texts(texts), counts, query)
        finally:
            _QUERYING.reset(mode)

    def _policy(self, items: list[str], counts: Counts | None, query: bool) -> Embedded:
        run = self._embed_queries if query else self._embed
        limit = self.max_tokens
        none = np.empty(0, np.int64)
        if not items:
            return Embedded(np.empty((0, self.dim), np.float32), none, None, self.on_long)
        if limit is None:
            return Embedded(self._checked(run(items), len(items)), none, None, self.on_long)
        if counts is None:
            counts = self.token_counts(items)
        elif counts.shape != (len(items),):
            raise ConfigError(f"counts has shape {counts.shape}, expected ({len(items)},)")
        long_rows = over_limit(counts, limit, self.on_long)
        if long_rows.size and self.on_long == "chunk":
            vectors = self._embed_chunked(items, set(long_rows.tolist()), run)
        else:
            for i in long_rows:
                items[i] = self._truncate(items[i])
            vectors = self._checked(run(items), len(items))
        return Embedded(vectors, long_rows.astype(np.int64), counts, self.on_long)

    def _warned(self, result: Embedded) -> Matrix:
        if result.long.size and result.policy == "truncate":
            warnings.warn(
                f"{result.long.size} of {len(result.vectors)} texts exceed {self.max_tokens} "
                f"tokens and were truncated (rows {preview(result.long)})",
                EmbedkitWarning,
                stacklevel=3,
            )
        return result.vectors

    def _embed_chunked(
        self, items: list[str], long: set[int], run: Callable[[list[str]], NDArray[Any]]
    ) -> Matrix:
        pieces: list[str] = []
        owner: list[int] = []
        weight: list[float] = []
        for i, text in enumerate(items):
            parts = self._chunk(text) if i in long else [(text, 1)]
            for piece, n_tokens in parts:
                pieces.append(piece)
                owner.append(i)
                weight.append(float(max(n_tokens, 1)))
        vectors = self._checked(run(pieces), len(pieces))
        out = np.zeros((len(items), self.dim), dtype=np.float64)
        np.add.at(out, np.asarray(owner), vectors * np.asarray(weight, dtype=np.float32)[:, None])
        rows = np.asarray(sorted(long))
        norms = np.linalg.norm(out[rows], axis=1, keepdims=True)
        out[rows] /= np.where(norms > 0, norms, 1.0)
        return out.astype(np.float32)

    def _checked(self, matrix: NDArray[Any], n: int) -> Matrix:
        return checked_matrix(matrix, n, lambda: self.dim, self.backend)


def over_limit(counts: Counts, limit: int, policy: str) -> NDArray[np.int64]:
    """Positions with ``counts[i] > limit``; under ``policy="error"`` a
    :class:`TextTooLongError` naming each of them (the one place it is raised)."""
    rows = np.flatnonzero(counts > limit).astype(np.int64)
    if rows.size and policy == "error":
        raise TextTooLongError(
            f"{rows.size} of {len(counts)} texts exceed {limit} tokens (on_long='error'; "
            "use on_long='truncate', 'chunk' or, for tables and jobs, 'drop')",
            [(int(i), f"{int(counts[i])} tokens > {limit}") for i in rows],
        )
    return rows


def checked_matrix(matrix: NDArray[Any], n: int, dim: Callable[[], int], who: str) -> Matrix:
    """``matrix`` as float32 ``(n, dim())``, or :class:`BadResponseError` naming the bad rows.

    ``dim`` is called after the row count is checked: a server model learns its
    width from its first response.
    """
    out = np.asarray(matrix, dtype=np.float32)
    if out.ndim != 2 or out.shape[0] != n or out.shape[1] != dim():
        want = f"({n}, {dim()})" if out.ndim == 2 and out.shape[0] == n else f"({n}, dim)"
        raise BadResponseError(f"{who} returned shape {out.shape}, expected {want}")
    bad = np.flatnonzero(~np.isfinite(out).all(axis=1))
    if bad.size:
        raise BadResponseError(f"{who} returned NaN or infinity for rows {preview(bad.tolist())}")
    return out


def preview(rows: Iterable[int], limit: int = 10) -> str:
    """``"3, 5, 9"``, or the first ``limit`` rows and the total."""
    rows = [int(r) for r in rows]
    text = ", ".join(map(str, rows[:limit]))
    return text + (f", ... ({len(rows)} in all)" if len(rows) > limit else "")
