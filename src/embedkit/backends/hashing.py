"""A dependency-free lexical baseline: signed feature hashing of word n-grams.

For a text with token n-grams ``g`` (n = 1..``ngrams``, tokens from ``tokenizer``,
by default ``"words"``: :func:`embedkit.words.tokenize.simple_tokenize`)::

    v[h(g) mod dim] += s(g)      with s(g) = +1 or -1 from another bit of h(g)
    embed(text) = v / ||v||

``h`` is CRC-32 of the UTF-8 n-gram (stable across processes and platforms,
unlike Python's ``hash``). Texts with no word characters embed to the zero
vector, whose cosine similarity with anything is defined as 0.

Chinese and Japanese need no option: the default ``words`` tokenizer makes each
Han/kana character a token, so the n-grams there are character unigrams and
bigrams, and two near-identical Chinese sentences share most of them (Korean keeps
its space-delimited words). ``tokenizer`` takes any name the word-vector backends
take (``"jieba"`` for Chinese words, ``"words-cased"``, a registered one) and is
part of the spec; ``lowercase`` folds the tokens' case whichever tokenizer runs.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from embedkit.errors import ConfigError
from embedkit.protocol import BaseEmbedder
from embedkit.spec import OptionValue
from embedkit.words.tokenize import (
    Tokenizer,
    WordTokenizer,
    get_tokenizer,
    simple_token_spans,
    simple_tokenize,
    word_spans,
)

__all__ = ["HashingEmbedder"]


class HashingEmbedder(BaseEmbedder):
    """``hashing?dim=384&ngrams=2&tokenizer=words``: deterministic, fast, no model file."""

    backend = "hashing"

    def __init__(
        self,
        model: str = "",
        *,
        dim: int = 384,
        ngrams: int = 2,
        lowercase: bool = True,
        tokenizer: str | Tokenizer = "words",
    ) -> None:
        if model:
            raise ConfigError(f"the hashing backend takes no model name (got {model!r})")
        if not isinstance(dim, int) or dim < 2:
            raise ConfigError(f"dim must be an integer >= 2, got {dim!r}")
        if not isinstance(ngrams, int) or ngrams < 1:
            raise ConfigError(f"ngrams must be an integer >= 1, got {ngrams!r}")
        self._dim = dim
        self.ngrams = ngrams
        self.lowercase = lowercase
        self._tokenizer = get_tokenizer(tokenizer)
        self.tokenizer = self._tokenizer.name

    @property
    def dim(self) -> int:
        return self._dim

    def _spec_parts(self) -> tuple[str, dict[str, OptionValue]]:
        return "", {
            "dim": self._dim,
            "ngrams": self.ngrams,
            "lowercase": self.lowercase,
            "tokenizer": self.tokenizer,
        }

    def tokens(self, text: str) -> list[str]:
        """The tokens n-grams are built from (``words``: cased or not as ``lowercase`` says)."""
        if self.tokenizer == "words":
            return simple_tokenize(text, self.lowercase)
        found = self._tokenizer(text)
        return [t.lower() for t in found] if self.lowercase else found

    def count_tokens(self, texts: Sequence[str]) -> NDArray[np.int64]:
        """Number of tokens per text."""
        return np.asarray([len(self.tokens(t)) for t in texts], np.int64)

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Where the tokens of ``text`` lie in it: exact for the ``words`` tokenizers, else
        non-space runs with each CJK character apart (the chunker checks counts anyway)."""
        if isinstance(self._tokenizer, WordTokenizer):
            return simple_token_spans(text)
        return word_spans(text)

    def _embed(self, texts: list[str]) -> NDArray[np.float32]:
        rows: list[int] = []
        codes: list[int] = []
        for row, text in enumerate(texts):
            tokens = self.tokens(text)
            grams = list(tokens)
            for n in range(2, self.ngrams + 1):
                grams += [" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
            codes += [zlib.crc32(g.encode()) for g in grams]
            rows += [row] * len(grams)
        code = np.asarray(codes, dtype=np.uint64)
        sign = np.where((code >> np.uint64(31)) & np.uint64(1), -1.0, 1.0)
        flat = np.asarray(rows, np.int64) * self._dim + (code % np.uint64(self._dim)).astype(
            np.int64
        )
        out = np.bincount(flat, weights=sign, minlength=len(texts) * self._dim)
        matrix = out.reshape(len(texts), self._dim)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        return (matrix / np.where(norms > 0, norms, 1.0)).astype(np.float32)
