"""``elmo:<folder>``: contextual token vectors and pooled sentence vectors from AllenNLP ELMo files.

``folder`` holds a published model's ``options.json`` and ``weights.hdf5`` (or the one
``*options.json`` and one ``*.hdf5`` of an AllenNLP download). Per text, with
``h_l[t]`` (``l = 0..L``) the biLM's layers (:mod:`.model`) at token ``t``::

    v[t]   = h_layer[t]                                 layer=<int>
    v[t]   = gamma * sum_l softmax(s)_l * h_l[t]        layer="mix" (default; s = scalar_mix)
    embed  = pool_t v[t]   (mean or max over the tokens, <S> and </S> left out), then
             divided by its norm if normalize

``scalar_mix`` defaults to zeros, so the default is the plain average of the layers
(AllenNLP's ``Elmo`` before training its mix); pass task-trained weights as
``scalar_mix=0.1,-0.3,0.2`` (one per layer, before the softmax). No layer norm.
``dim = 2 * projection_dim`` (1024 for the original model).

Tokens come from ``tokenizer`` (:mod:`.chars`). ``max_tokens`` (default 512) bounds
one text; longer ones follow ``on_long`` through the shared path of
:class:`~embedkit.protocol.BaseEmbedder` (``"truncate"`` by default, with a warning).
The spec records the folder (as an absolute path) and every option above.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from embedkit._optional import require
from embedkit.backends.elmo.chars import TOKENIZERS, char_ids, token_spans
from embedkit.backends.elmo.files import find_files, read_weights
from embedkit.backends.elmo.model import ElmoBiLm
from embedkit.errors import BackendError, ConfigError, OutOfVocabularyError
from embedkit.protocol import BaseEmbedder, Counts, OnLong, check_on_long
from embedkit.spec import OptionValue
from embedkit.validation import check_texts

__all__ = ["POOLINGS", "ElmoEmbedder", "ElmoTokens"]

POOLINGS = ("mean", "max")
Matrix = NDArray[np.float32]


@dataclass(frozen=True)
class ElmoTokens:
    """Contextual vectors of one text: ``vectors[i]`` (float32, ``(len(tokens), dim)``)
    belongs to ``tokens[i]``, found at ``text[spans[i][0]:spans[i][1]]``."""

    tokens: list[str]
    vectors: Matrix
    spans: list[tuple[int, int]]

    def vector_of(self, word: str) -> Matrix:
        """The vector of the first token equal to ``word`` (``(dim,)``); a ``KeyError``
        (:class:`~embedkit.errors.OutOfVocabularyError`) if there is none."""
        if word not in self.tokens:
            raise OutOfVocabularyError(f"{word!r} is not among the tokens", [(0, repr(word))])
        found: Matrix = self.vectors[self.tokens.index(word)]
        return found


def _typed(name: str, value: object, kind: type | tuple[type, ...]) -> Any:
    """``value`` if it is of ``kind`` (a bool is not an int here), else a ConfigError."""
    if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
        kinds = kind if isinstance(kind, tuple) else (kind,)
        wanted = " or ".join(k.__name__ for k in kinds)
        raise ConfigError(f"elmo option {name} must be {wanted}, got {type(value).__name__}")
    return value


def _parse_mix(value: object, n: int) -> tuple[float, ...]:
    if value is None:
        return (0.0,) * n
    if not isinstance(value, str):
        raise ConfigError(
            f"scalar_mix must be a str like '0.1,0.2,0.7', got {type(value).__name__}"
        )
    try:
        parts = tuple(float(v) for v in value.split(","))
    except ValueError as exc:
        raise ConfigError(f"scalar_mix must be {n} comma-separated numbers: {value!r}") from exc
    if len(parts) != n or not all(np.isfinite(parts)):
        raise ConfigError(f"scalar_mix needs {n} finite weights (one per layer), got {value!r}")
    return parts


def _same(layers: Matrix) -> Matrix:
    return layers


def _check_device(device: object) -> str:
    """``device`` if torch can run on it here (CUDA asked without CUDA: a ConfigError)."""
    torch = require("torch", "elmo")
    try:
        where = torch.device(_typed("device", device, str))
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"device {device!r} is not a torch device: {exc}") from exc
    if where.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked, but torch here has no usable CUDA")
    return str(device)


class ElmoEmbedder(BaseEmbedder):
    """``elmo:/path/to/folder?layer=mix&pooling=mean&normalize=true&tokenizer=punct``."""

    backend = "elmo"

    def __init__(
        self,
        model: str,
        *,
        layer: int | str = "mix",
        scalar_mix: str | None = None,
        gamma: float = 1.0,
        pooling: str = "mean",
        normalize: bool = True,
        tokenizer: str = "punct",
        max_tokens: int | None = 512,
        on_long: OnLong = "truncate",
        batch_size: int = 32,
        device: str = "cpu",
    ) -> None:
        if not isinstance(model, str) or not model:
            raise ConfigError("elmo needs a model folder: 'elmo:/path/to/folder'")
        self.folder = os.path.abspath(os.path.expanduser(model))
        self.gamma = float(_typed("gamma", gamma, (int, float)))
        self.normalize = bool(_typed("normalize", normalize, bool))
        self.batch_size = int(_typed("batch_size", batch_size, int))
        self.pooling = str(_typed("pooling", pooling, str))
        self.tokenizer = str(_typed("tokenizer", tokenizer, str))
        self._max_tokens = (
            None if max_tokens is None else int(_typed("max_tokens", max_tokens, int))
        )
        self.on_long = check_on_long(on_long)
        if self.pooling not in POOLINGS:
            raise ConfigError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if self.tokenizer not in TOKENIZERS:
            raise ConfigError(f"tokenizer must be one of {TOKENIZERS}, got {tokenizer!r}")
        if self.batch_size < 1 or (self._max_tokens is not None and self._max_tokens < 1):
            raise ConfigError("batch_size and max_tokens must be >= 1")
        if not np.isfinite(self.gamma):
            raise ConfigError(f"gamma must be finite, got {gamma!r}")
        weights = read_weights(find_files(self.folder))
        self._model = ElmoBiLm(weights, _check_device(device))
        n = self._model.n_layers
        if layer == "mix":
            self.layer: int | str = "mix"
            self.scalar_mix = _parse_mix(scalar_mix, n)
        elif isinstance(layer, int) and not isinstance(layer, bool) and 0 <= layer < n:
            if scalar_mix is not None or self.gamma != 1.0:
                raise ConfigError("scalar_mix and gamma apply to layer='mix' only")
            self.layer, self.scalar_mix = layer, ()
        else:
            raise ConfigError(f"layer must be 'mix' or an int in 0..{n - 1}, got {layer!r}")

    @property
    def dim(self) -> int:
        return self._model.width

    @property
    def max_tokens(self) -> int | None:
        """Most tokens (``<S>``/``</S>`` not counted) one text may have, or ``None``."""
        return self._max_tokens

    def _spec_parts(self) -> tuple[str, dict[str, OptionValue]]:
        options: dict[str, OptionValue] = {
            "layer": self.layer,
            "max_tokens": self._max_tokens,
            "normalize": self.normalize,
            "on_long": self.on_long,
            "pooling": self.pooling,
            "tokenizer": self.tokenizer,
        }
        if self.layer == "mix":
            options["gamma"] = self.gamma
            if any(self.scalar_mix):  # all zero (the default): the plain average, left out
                options["scalar_mix"] = ",".join(repr(w) for w in self.scalar_mix)
        return self.folder, options

    # ------------------------------------------------------------------ tokens
    def tokenize(self, text: str) -> list[str]:
        """The tokens ELMo reads for ``text``."""
        return [text[a:b] for a, b in token_spans(text, self.tokenizer)]

    def count_tokens(self, texts: Sequence[str]) -> Counts:
        """Tokens per text, ``(len(texts),)`` int64 (``<S>``/``</S>`` not counted)."""
        return np.asarray([len(token_spans(t, self.tokenizer)) for t in texts], dtype=np.int64)

    def _truncate(self, text: str) -> str:
        spans = token_spans(text, self.tokenizer)
        limit = self._max_tokens
        return text if limit is None or len(spans) <= limit else text[: spans[limit - 1][1]]

    def _chunk(self, text: str) -> list[tuple[str, int]]:
        spans = token_spans(text, self.tokenizer)
        step = self._max_tokens or max(len(spans), 1)
        return [
            (text[part[0][0] : part[-1][1]], len(part))
            for part in (spans[i : i + step] for i in range(0, len(spans), step))
        ]

    # ----------------------------------------------------------------- vectors
    def _mixed(self, layers: Matrix) -> Matrix:
        """``(n_layers, ..., dim)`` -> ``(..., dim)`` by ``layer`` (see the module docstring)."""
        if isinstance(self.layer, int):
            one: Matrix = layers[self.layer]
            return one
        s = np.asarray(self.scalar_mix, dtype=np.float64)
        w = np.exp(s - s.max())
        w = self.gamma * w / w.sum()
        out: Matrix = np.tensordot(w, layers.astype(np.float64), axes=1).astype(np.float32)
        return out

    def _run(self, sentences: list[list[str]], keep: Callable[[Matrix], Matrix]) -> list[Matrix]:
        """``keep(layers)`` per sentence, ``layers`` being its ``(n_layers, len(sentence), dim)``;
        batched by length (a batch's arrays are dropped once it is done), input order kept."""
        out: list[Matrix] = [np.empty(0, np.float32)] * len(sentences)
        order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
        max_chars = self._model.options.max_chars
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            ids = char_ids([sentences[i] for i in rows], max_chars)
            try:
                layers = self._model.layers(ids)
            except RuntimeError as exc:  # torch: out of memory, device lost
                raise BackendError(f"the ELMo model failed on a batch: {exc}") from exc
            for k, i in enumerate(rows):
                out[i] = np.array(keep(layers[:, k, 1 : len(sentences[i]) + 1]), np.float32)
        return out

    def _pool(self, layers: Matrix) -> Matrix:
        vectors = self._mixed(layers)
        pooled: Matrix = vectors.mean(axis=0) if self.pooling == "mean" else vectors.max(axis=0)
        return pooled

    def _embed(self, texts: list[str]) -> Matrix:
        rows = self._run([self.tokenize(t) for t in texts], self._pool)
        pooled = np.stack(rows) if rows else np.empty((0, self.dim), np.float32)
        if self.normalize:
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            pooled /= np.where(norms > 0, norms, 1.0)
        return pooled

    def layer_vectors(self, text: str) -> Matrix:
        """Every layer at every token of ``text``: float32 ``(n_layers, n_tokens, dim)``.

        ``out[0]`` is the context-free character layer ``[r, r]``; ``out[l]`` the
        ``l``-th biLSTM layer. Not truncated: the whole text is read.
        """
        (text,) = check_texts([text])
        (layers,) = self._run([self.tokenize(text)], _same)
        return layers

    def token_vectors(self, text: str, *, layer: int | None = None) -> ElmoTokens:
        """Each token's contextual vector in ``text`` (see :class:`ElmoTokens`).

        ``layer``: that layer (``0..n_layers-1``) instead of the embedder's
        ``layer``/``scalar_mix`` output. Not normalised, not truncated.
        """
        (text,) = check_texts([text])
        spans = token_spans(text, self.tokenizer)
        (layers,) = self._run([[text[a:b] for a, b in spans]], _same)
        if layer is None:
            vectors = self._mixed(layers)
        elif isinstance(layer, int) and not isinstance(layer, bool) and 0 <= layer < len(layers):
            vectors = layers[layer]
        else:
            raise ConfigError(f"layer must be an int in 0..{len(layers) - 1}, got {layer!r}")
        return ElmoTokens([text[a:b] for a, b in spans], vectors, spans)
