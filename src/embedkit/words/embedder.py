"""Sentence vectors from static word vectors (Word2Vec, GloVe, fastText).

``embed(texts)`` tokenises each text with the named tokenizer (the same one used at
training time), maps tokens to vocabulary rows under the OOV policy and pools
them (:mod:`embedkit.words.pooling` has the formulas)::

    embed(texts)[t] = pool(vectors of tokenize(texts[t]))      shape (len(texts), dim)

The spec names the vectors (a path or a content id), the tokenizer, the pooling,
the OOV policy ``on_oov``, ``limit`` (when only the first rows of a file are kept) and, for
``idf``/``sif``, the fitted weights (``fit_corpus`` = the corpus file they were fitted
on, or their content id ``sha256:...``), so that two embedders giving different
vectors never share a spec, and ``embedkit.load(embedder.spec)`` rebuilds it. (A
content id names vectors that exist only in memory: ``load`` says to save them first.)

:meth:`StaticEmbedder.save` writes a native folder in one atomic write (the
:class:`WordVectors` files, the settings and the pooling weights: see
:mod:`embedkit.words.saved`) that ``load("<backend>:<folder>")`` reloads in well under
a second. The file backends (``word2vec``, ``glove``, ``fasttext``) share
:func:`~embedkit.words.saved.locate`, :func:`~embedkit.words.saved.read_folder` and
:meth:`StaticEmbedder._init_loaded`, so a folder's saved settings and weights are
reused, or refitted, the same way by all of them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
from numpy.typing import NDArray

from embedkit import _folder
from embedkit.errors import ConfigError, CorruptFileError
from embedkit.protocol import BaseEmbedder
from embedkit.spec import OptionValue
from embedkit.validation import check_texts
from embedkit.words.pooling import POOLINGS, OnOOV, Pooling, check_on_oov, encode, paused_gc
from embedkit.words.saved import write_folder
from embedkit.words.tokenize import Tokenizer, get_tokenizer
from embedkit.words.vectors import WordVectors

__all__ = ["PooledTexts", "StaticEmbedder"]

T = TypeVar("T", bound="StaticEmbedder")


@dataclass(frozen=True)
class PooledTexts:
    """Sentence vectors with their OOV report.

    ``vectors``: ``(n, dim)`` float32; ``oov[t]``: the tokens of text ``t`` with no
    vector; ``n_tokens[t]``: its token count; ``oov_rate`` = OOV tokens / all tokens.
    """

    vectors: NDArray[np.float32]
    oov: list[list[str]]
    n_tokens: NDArray[np.int64]
    oov_rate: float


class StaticEmbedder(BaseEmbedder):
    """Pooled static word vectors; subclasses set ``backend`` and load the vectors."""

    backend: ClassVar[str] = "static"

    def __init__(
        self,
        words: WordVectors,
        *,
        source: str,
        tokenizer: str = "words",
        pooling: str = "mean",
        on_oov: str = "skip",
        weights: Pooling | None = None,
        fit_corpus: str | None = None,
    ) -> None:
        if not isinstance(words, WordVectors):
            raise ConfigError(f"words must be a WordVectors, got {type(words).__name__}")
        if pooling not in POOLINGS:
            raise ConfigError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.on_oov: OnOOV = check_on_oov(on_oov)
        self._words = words
        self.source = str(source)
        self._tokenizer: Tokenizer = get_tokenizer(tokenizer)
        self.fit_corpus: str | None = None
        self.limit: int | None = None  # set by the file backends: only the first rows were kept
        self._pooling = weights if weights is not None else Pooling(pooling)  # type: ignore[arg-type]
        if self._pooling.method != pooling:
            raise ConfigError(
                f"pooling {pooling!r} given with fitted {self._pooling.method!r} weights"
            )
        if fit_corpus is None:
            return
        if pooling == "mean":
            raise ConfigError("fit_corpus is for pooling='idf' or 'sif'; 'mean' has no weights")
        if fit_corpus.startswith("sha256:"):
            if weights is None or self._pooling_id() != fit_corpus:
                raise ConfigError(
                    f"pooling weights {fit_corpus} are not available: they were fitted in memory "
                    "and exist only in the native folder they were saved in (embedder.save("
                    f"folder), then load '{self.backend}:<folder>'); or give fit_corpus as a "
                    "corpus file to fit them again"
                )
        elif weights is None:
            self.fit_pooling(Path(fit_corpus))
            self.fit_corpus = fit_corpus
        else:
            self.fit_corpus = fit_corpus  # weights saved after fitting on this corpus

    @classmethod
    def from_words(cls: type[T], words: WordVectors, **options: Any) -> T:
        """An embedder over in-memory (e.g. freshly trained) vectors.

        ``source`` defaults to ``words.content_id()``; other options as in ``__init__``.
        """
        obj = cls.__new__(cls)
        options.setdefault("source", words.content_id())
        StaticEmbedder.__init__(obj, words, **options)
        return obj

    # -- contract ----------------------------------------------------------------------
    @property
    def words(self) -> WordVectors:
        """The word-level API: similarity, most_similar, analogy, OOV lookups."""
        return self._words

    @property
    def dim(self) -> int:
        return self._words.dim

    @property
    def tokenizer(self) -> Tokenizer:
        return self._tokenizer

    @property
    def pooling(self) -> Pooling:
        return self._pooling

    def _spec_parts(self) -> tuple[str, dict[str, OptionValue]]:
        options: dict[str, OptionValue] = {
            "tokenizer": self._tokenizer.name,
            "pooling": self._pooling.method,
            "on_oov": self.on_oov,
        }
        if self.limit is not None:
            options["limit"] = self.limit
        if self._pooling.method != "mean":
            options["fit_corpus"] = self.fit_corpus or self._pooling_id()
        return self.source, options

    def _init_loaded(
        self,
        words: WordVectors,
        path: Path,
        config: Mapping[str, Any],
        weights: Pooling | None,
        *,
        tokenizer: str | None,
        pooling: str | None,
        on_oov: str | None,
        fit_corpus: str | None,
        limit: int | None,
    ) -> None:
        """``__init__`` for vectors read from ``path`` (a file, or a folder with ``config``).

        Options left ``None`` come from the folder's ``config``. Its saved pooling
        ``weights`` are kept only while everything they were fitted on is unchanged
        (method, tokenizer, vocabulary, ``fit_corpus``); otherwise they are refitted on
        ``fit_corpus`` (the given one, else the saved one), so the vectors always match
        the spec.
        """
        method = pooling or config.get("pooling", "mean")
        saved_tokenizer = config.get("tokenizer", "words")
        tokenizer = tokenizer or saved_tokenizer
        saved_fit = config.get("fit_corpus")
        if fit_corpus is None and method != "mean" and method == config.get("pooling"):
            fit_corpus = saved_fit if isinstance(saved_fit, str) else None
        if weights is not None:
            changed = [
                name
                for name, differs in (
                    (f"pooling={method}", weights.method != method),
                    (f"tokenizer={tokenizer}", tokenizer != saved_tokenizer),
                    (f"limit={limit}", limit is not None),
                )
                if differs
            ]
            if changed or fit_corpus != saved_fit:
                weights = None
            if changed and fit_corpus is not None and fit_corpus.startswith("sha256:"):
                raise ConfigError(
                    f"the {method!r} weights saved in {path} do not apply with "
                    f"{', '.join(changed)}: give fit_corpus=<corpus file> to refit them, "
                    "or pooling='mean'"
                )
        StaticEmbedder.__init__(
            self,
            words,
            source=str(path),
            tokenizer=tokenizer,
            pooling=method,
            on_oov=on_oov or config.get("on_oov", "skip"),
            weights=weights,
            fit_corpus=fit_corpus,
        )
        self.limit = limit

    def count_tokens(self, texts: Sequence[str]) -> NDArray[np.int64]:
        """Tokens per text by this embedder's tokenizer."""
        return np.asarray([len(self._tokenizer(t)) for t in texts], dtype=np.int64)

    def _embed(self, texts: list[str]) -> NDArray[np.float32]:
        return self._pool(texts).vectors

    def embed_report(self, texts: Sequence[str] | str) -> PooledTexts:
        """Like ``embed``, with the OOV tokens of each text and the overall OOV rate."""
        items = check_texts(texts)
        return self._pool(items)

    def _pool(self, texts: list[str]) -> PooledTexts:
        tokenize = self._tokenizer
        with paused_gc():  # 100k token lists otherwise trigger repeated full collections
            token_lists = [tokenize(t) for t in texts]
        tokens = encode(token_lists, self._words, self.on_oov)
        vectors = self._pooling.pool(tokens, self._words)
        return PooledTexts(vectors, tokens.oov, tokens.n_tokens, tokens.oov_rate)

    def embed_tokens(self, token_lists: Sequence[Sequence[str]]) -> NDArray[np.float32]:
        """``(len(token_lists), dim)``: pooled vectors of already tokenised texts."""
        tokens = encode(token_lists, self._words, self.on_oov)
        return self._pooling.pool(tokens, self._words)

    # -- pooling weights -------------------------------------------------------------------
    def fit_pooling(self: T, corpus: Iterable[str] | str | os.PathLike[str]) -> T:
        """Fit ``idf``/``sif`` weights on a corpus (texts, or a file with one text a line).

        Returns ``self``; the spec then names the fitted weights.
        """
        if isinstance(corpus, (str, os.PathLike)):
            path = Path(corpus)
            if not path.is_file():
                raise ConfigError(f"pooling corpus {path} is not a file")
            try:
                with open(path, encoding="utf-8") as fh:
                    token_lists = [self._tokenizer(line) for line in fh]
            except UnicodeDecodeError as exc:
                raise CorruptFileError(f"pooling corpus {path} is not UTF-8 text: {exc}") from exc
        else:
            token_lists = [self._tokenizer(t) for t in check_texts(corpus)]
        self._pooling = Pooling.fit(self._pooling.method, token_lists, self._words)
        self.fit_corpus = None
        return self

    def _pooling_id(self) -> str:
        if not self._pooling.fitted:
            return "unfitted"
        digest = hashlib.sha256(self._pooling.method.encode())
        for part in (self._pooling.weights, self._pooling.component):
            if part is not None:
                digest.update(np.ascontiguousarray(part).tobytes())
        return "sha256:" + digest.hexdigest()[:12]

    # -- native folder ---------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write vectors, settings and pooling weights to the folder ``path`` in one atomic write.

        Saved and reloaded (``load("<backend>:<folder>")``), the embedder gives the same
        vectors, its spec naming the folder.
        """
        config: dict[str, Any] = {
            "backend": self.backend,
            "source": self.source,
            "tokenizer": self._tokenizer.name,
            "pooling": self._pooling.method,
            "on_oov": self.on_oov,
            "fit_corpus": self._spec_parts()[1].get("fit_corpus"),
        }
        return write_folder(path, self._words, config, self._pooling, self._save_files)

    def _save_files(self, writer: _folder.FolderWriter) -> None:
        """Add backend files to the folder being saved (fastText: its ``model.bin``)."""
