"""Sentence vectors from word vectors: ``mean``, ``idf`` and ``sif`` pooling.

A text ``t`` is a list of tokens; ``x_i`` is the vector of token ``i`` and
``|t|`` the number of tokens kept by the OOV policy (see below). For each text::

    mean:  v(t) = (1 / |t|) Σ_i x_i
    idf:   v(t) = Σ_i w_i x_i / Σ_i w_i,   w = log((1 + D) / (1 + df(word))) + 1
    sif:   s(t) = (1 / |t|) Σ_i a / (a + p(word_i)) x_i,   v(t) = s(t) - (s(t) · u) u

``D`` is the number of texts of the fitting corpus and ``df`` the number of them
containing the word; ``p`` is the word's relative frequency in that corpus and
``u`` the first right singular vector of the (uncentred) matrix of its ``s``
vectors (Arora et al., 2017, with ``a = 1e-3``). Words unseen in the fitting corpus
get the largest weight (``df = 0``, ``p = 0``).

The OOV policy ``on_oov`` for tokens without a vector (fastText vectors have none:
their subword model builds one):

* ``"skip"``  leave them out (``|t|`` counts only known tokens);
* ``"zero"``  count them as zero vectors;
* ``"error"`` raise :class:`~embedkit.errors.OutOfVocabularyError` naming the rows.

A text left with no token (all OOV under ``"skip"``, or no word at all) pools to
the zero vector, never NaN. Pooling is one sparse ``(texts × vocabulary)``
weight matrix times the vector matrix, not a loop per text.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain, repeat
from typing import Literal, get_args

import numpy as np
from numpy.typing import NDArray

from embedkit._optional import require
from embedkit.errors import ConfigError, DimensionMismatchError, OutOfVocabularyError
from embedkit.words.vectors import WordVectors

__all__ = [
    "ON_OOV_CHOICES",
    "POOLINGS",
    "OnOOV",
    "Pooling",
    "PoolingName",
    "Tokens",
    "check_on_oov",
    "encode",
    "paused_gc",
]

OnOOV = Literal["skip", "zero", "error"]
PoolingName = Literal["mean", "idf", "sif"]
ON_OOV_CHOICES: tuple[str, ...] = get_args(OnOOV)
POOLINGS: tuple[str, ...] = get_args(PoolingName)
SIF_A = 1e-3


@dataclass(frozen=True)
class Tokens:
    """Texts as vocabulary rows: the tokens of text ``t`` are ``ids[offsets[t]:offsets[t+1]]``.

    ``ids[j]`` is a row of the vocabulary, ``n + e`` for ``extra[e]`` (a word whose
    vector comes from the subword model), or ``-1`` for an OOV token counted as zero.
    ``oov[t]`` lists the tokens of text ``t`` that had no vector; ``n_tokens[t]`` is
    the number of tokens before the OOV policy.
    """

    ids: NDArray[np.int64]
    offsets: NDArray[np.int64]
    extra: list[str]
    oov: list[list[str]]
    n_tokens: NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def oov_rate(self) -> float:
        """OOV tokens / all tokens over every text (0.0 when there are no tokens)."""
        total = int(self.n_tokens.sum())
        return sum(len(o) for o in self.oov) / total if total else 0.0


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many small lists.

    Creating ~100k token lists otherwise triggers full collections that walk every
    live container again and again (3x slower pooling at 100k texts). Reference
    counting still frees memory; the previous state is restored on exit.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def check_on_oov(value: object) -> OnOOV:
    """``value`` if it is an OOV policy, else :class:`ConfigError` naming the choices."""
    if value not in ON_OOV_CHOICES:
        raise ConfigError(f"on_oov must be one of {ON_OOV_CHOICES}, got {value!r}")
    return value  # type: ignore[return-value]


def encode(
    token_lists: Sequence[Sequence[str]], words: WordVectors, on_oov: OnOOV = "skip"
) -> Tokens:
    """Map tokenised texts to vocabulary rows under the ``on_oov`` policy."""
    on_oov = check_on_oov(on_oov)
    with paused_gc():
        lengths = np.fromiter(map(len, token_lists), np.int64, len(token_lists))
        return _encode(list(chain.from_iterable(token_lists)), lengths, words, on_oov)


def _encode(
    flat: list[str], lengths: NDArray[np.int64], words: WordVectors, on_oov: OnOOV
) -> Tokens:
    n_texts = len(lengths)
    n_tokens = lengths
    ids = np.fromiter(map(words.key_to_index.get, flat, repeat(-1)), np.int64, len(flat))
    owner = np.repeat(np.arange(n_texts), lengths)
    missing = np.flatnonzero(ids < 0)
    per_text: list[list[str]] = [[] for _ in range(n_texts)]
    if missing.size:
        oov_words = [flat[j] for j in missing.tolist()]
        texts, starts = np.unique(owner[missing], return_index=True)
        ends = [*starts[1:].tolist(), len(oov_words)]
        for text, start, end in zip(texts.tolist(), starts.tolist(), ends, strict=True):
            per_text[text] = oov_words[start:end]
    extra: list[str] = []
    if missing.size and words.subword is not None:
        positions: dict[str, int] = {}
        for j in missing.tolist():
            ids[j] = len(words) + positions.setdefault(flat[j], len(positions))
        extra = list(positions)
    elif missing.size and on_oov == "error":
        bad = [(t, "out of vocabulary: " + ", ".join(o)) for t, o in enumerate(per_text) if o]
        raise OutOfVocabularyError(
            f"{len(bad)} of {n_texts} texts have out-of-vocabulary tokens (on_oov='error')",
            bad,
        )
    elif missing.size and on_oov == "skip":
        keep = ids >= 0
        ids = ids[keep]
        lengths = np.bincount(owner[keep], minlength=n_texts).astype(np.int64)
    offsets = np.zeros(n_texts + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return Tokens(ids, offsets, extra, per_text, n_tokens)


@dataclass(frozen=True)
class Pooling:
    """A pooling method with its fitted weights (see the module docstring).

    ``weights``: ``(n,)`` float32 per vocabulary row (``idf``/``sif``; ``None`` for
    ``mean``); ``unseen_weight`` is the weight of words outside the fitting corpus;
    ``component``: the unit ``(dim,)`` vector ``u`` removed by ``sif``.
    """

    method: PoolingName = "mean"
    weights: NDArray[np.float32] | None = None
    unseen_weight: float = 1.0
    component: NDArray[np.float32] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.method not in POOLINGS:
            raise ConfigError(f"pooling must be one of {POOLINGS}, got {self.method!r}")

    @property
    def fitted(self) -> bool:
        return self.method == "mean" or self.weights is not None

    @classmethod
    def fit(
        cls, method: PoolingName, token_lists: Sequence[Sequence[str]], words: WordVectors
    ) -> Pooling:
        """Weights (and for ``sif`` the component ``u``) from a tokenised corpus."""
        if method not in POOLINGS:
            raise ConfigError(f"pooling must be one of {POOLINGS}, got {method!r}")
        if method == "mean":
            return cls("mean")
        if not token_lists:
            raise ConfigError(f"fitting {method!r} pooling needs a non-empty corpus")
        tokens = encode(token_lists, words, "skip")
        n = len(words)
        known = tokens.ids[(tokens.ids >= 0) & (tokens.ids < n)]
        if known.size == 0:
            raise ConfigError(f"no token of the {method!r} fitting corpus is in the vocabulary")
        if method == "idf":
            owner = np.repeat(np.arange(len(tokens)), np.diff(tokens.offsets))
            inside = tokens.ids < n  # subword-only words (fastText) have no row to weight
            pairs = np.unique(owner[inside] * n + tokens.ids[inside])
            df = np.bincount(pairs % n, minlength=n)
            d = len(token_lists)
            idf = (np.log((1.0 + d) / (1.0 + df)) + 1.0).astype(np.float32)
            return cls("idf", idf, float(np.log(1.0 + d) + 1.0))
        total = max(int(tokens.n_tokens.sum()), 1)
        p = np.bincount(known, minlength=n) / total
        weights = (SIF_A / (SIF_A + p)).astype(np.float32)
        unfitted = cls("sif", weights, 1.0)
        s = unfitted._weighted(tokens, words)
        _, _, vt = np.linalg.svd(s.astype(np.float64), full_matrices=False)
        return cls("sif", weights, 1.0, vt[0].astype(np.float32))

    def pool(self, tokens: Tokens, words: WordVectors) -> NDArray[np.float32]:
        """``(len(tokens), dim)`` float32 sentence vectors by this pooling's formula."""
        if not self.fitted:
            raise ConfigError(
                f"{self.method!r} pooling has no weights yet: fit it on a corpus first"
            )
        if self.weights is not None and self.weights.shape != (len(words),):
            raise DimensionMismatchError(
                f"pooling weights cover {self.weights.shape[0]} words, the vocabulary {len(words)}"
            )
        out = self._weighted(tokens, words)
        if self.component is not None:
            out -= np.outer(out @ self.component, self.component).astype(np.float32)
        return out

    def _weighted(self, tokens: Tokens, words: WordVectors) -> NDArray[np.float32]:
        """Σ w_i x_i / Σ w_i (idf) or Σ w_i x_i / |t| (mean, sif) per text; zero if empty."""
        sparse = require("scipy.sparse", "gensim")
        n = len(words)
        ids = tokens.ids
        w = np.ones(ids.shape[0], dtype=np.float32)
        if self.weights is not None:
            inside = (ids >= 0) & (ids < n)
            w[inside] = self.weights[ids[inside]]
            w[~inside] = self.unseen_weight
        counts = np.diff(tokens.offsets)
        if self.method == "idf":
            cumulative = np.concatenate([[0.0], np.cumsum(w, dtype=np.float64)])
            denom = cumulative[tokens.offsets[1:]] - cumulative[tokens.offsets[:-1]]
        else:
            denom = counts.astype(np.float64)
        zero = ids < 0
        cols = np.where(zero, 0, ids)
        w = np.where(zero, np.float32(0.0), w)
        scale = np.divide(1.0, denom, out=np.zeros(len(counts)), where=denom > 0)
        w = w * np.repeat(scale, counts).astype(np.float32)
        width = n + len(tokens.extra)
        matrix = sparse.csr_matrix((w, cols, tokens.offsets), shape=(len(tokens), width))
        out = np.asarray(matrix[:, :n] @ words.vectors, dtype=np.float32)
        if tokens.extra:
            if words.subword is None:
                raise ConfigError("tokens refer to subword vectors but the words have none")
            extra_vectors = words.subword(tokens.extra)
            out += np.asarray(matrix[:, n:] @ extra_vectors, dtype=np.float32)
        return out
