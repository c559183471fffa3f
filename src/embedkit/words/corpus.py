"""Training corpora, streamed: the input of every word-vector trainer.

A corpus is either a path to a UTF-8 text file (one text per line) or a re-iterable
collection of texts (a list, a tuple, or any object whose ``__iter__`` starts over).
It is streamed: :class:`TokenizedCorpus` tokenises one text at a time, once, into a
temporary file (:func:`spooled`) that every training pass reads back line by line,
so a corpus larger than memory trains as well as a small one (the temporary file
needs about as much disk as the corpus). One-shot iterators (generators) are
refused, because every trainer makes several passes.

The tokenizer (:func:`embedkit.words.tokenize.get_tokenizer`) is applied identically at
training time and at embedding time: its name goes into the returned embedder's
spec and saved folder.

The trainers live beside their backends: ``train_word2vec`` and ``train_glove`` in
:mod:`embedkit.backends.gensim_train`, ``train_fasttext`` in
:mod:`embedkit.backends.fasttext_train` (all three reachable as ``embedkit.train_*``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from embedkit.errors import ConfigError, InvalidInputError
from embedkit.words.embedder import StaticEmbedder
from embedkit.words.tokenize import Tokenizer, get_tokenizer

__all__ = [
    "GENSIM_MAX_TOKENS",
    "Corpus",
    "TokenFile",
    "TokenizedCorpus",
    "check_positive",
    "check_vocab",
    "fit_pooling",
    "spooled",
]

Corpus = Iterable[str] | str | os.PathLike[str]
# gensim's Cython routines silently drop tokens past 10,000 per text; we split instead
GENSIM_MAX_TOKENS = 10_000


class TokenizedCorpus:
    """A restartable stream of token lists: each ``iter()`` re-reads the corpus.

    Texts with no token are skipped. ``max_tokens`` splits longer texts into
    consecutive pieces of at most that many tokens.
    """

    def __init__(
        self, corpus: Corpus, tokenizer: str | Tokenizer = "words", max_tokens: int | None = None
    ) -> None:
        if isinstance(corpus, (str, os.PathLike)):
            path = Path(corpus)
            if not path.is_file():
                raise ConfigError(f"corpus file {path} does not exist")
            self.path: Path | None = path
            self.texts: Iterable[str] | None = None
        elif isinstance(corpus, Iterable):
            if iter(corpus) is corpus:
                raise ConfigError(
                    "the corpus is a one-shot iterator (a generator?), but training makes "
                    "several passes: pass a list, a re-iterable object or a file path"
                )
            self.path, self.texts = None, corpus
        else:
            raise ConfigError(
                f"a corpus must be a file path or an iterable of texts, got {type(corpus).__name__}"
            )
        self.tokenizer = get_tokenizer(tokenizer)
        self.max_tokens = max_tokens

    def check_named(self) -> str:
        """The tokenizer's name, which must resolve again (it goes into specs and folders)."""
        name = self.tokenizer.name
        try:
            get_tokenizer(name)
        except ConfigError as exc:
            raise ConfigError(
                f"tokenizer {name!r} is not registered, so a model trained with it could not "
                "be reloaded: call embedkit.words.tokenize.register_tokenizer(name, factory) first"
            ) from exc
        return name

    def __iter__(self) -> Iterator[list[str]]:
        for tokens in map(self.tokenizer, self._texts()):
            if not tokens:
                continue
            step = self.max_tokens or len(tokens)
            for start in range(0, len(tokens), step):
                yield tokens[start : start + step]

    def _texts(self) -> Iterator[str]:
        if self.path is not None:
            with open(self.path, encoding="utf-8") as fh:
                try:
                    yield from fh
                except UnicodeDecodeError as exc:
                    raise InvalidInputError(f"corpus file {self.path} is not UTF-8: {exc}") from exc
            return
        assert self.texts is not None
        for row, text in enumerate(self.texts):
            if not isinstance(text, str):
                raise InvalidInputError(
                    "corpus texts must be str", [(row, f"got {type(text).__name__}")]
                )
            yield text

    def write(self, path: Path) -> int:
        """Write the tokens, space-separated, one text a line; returns the number of lines."""
        lines = 0
        with open(path, "w", encoding="utf-8") as fh:
            for tokens in self:
                line = " ".join(tokens)
                if len(line.split()) != len(tokens):
                    bad = [t for t in tokens if not t or any(c.isspace() for c in t)]
                    raise InvalidInputError(
                        f"tokenizer {self.tokenizer.name!r} returned empty tokens or tokens "
                        f"with whitespace: {bad[:5]!r}",
                        [(lines, "bad token")],
                    )
                fh.write(line + "\n")
                lines += 1
        return lines


class TokenFile:
    """Token lists read back from a file written by :meth:`TokenizedCorpus.write`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __iter__(self) -> Iterator[list[str]]:
        with open(self.path, encoding="utf-8") as fh:
            for line in fh:
                yield line.split()


@contextmanager
def spooled(stream: TokenizedCorpus) -> Iterator[TokenFile]:
    """Tokenise ``stream`` once into a temporary file; every pass then reads that file.

    Training makes many passes; tokenising (jieba above all) once instead of once per
    pass keeps memory flat and saves time. The file is removed on exit.
    """
    with tempfile.TemporaryDirectory(prefix="embedkit-corpus-") as tmp:
        file = Path(tmp) / "tokens.txt"
        if stream.write(file) == 0:
            raise ConfigError("the corpus has no tokens to train on")
        yield TokenFile(file)


E = TypeVar("E", bound=StaticEmbedder)


def fit_pooling(embedder: E, corpus: Corpus) -> E:
    """Fit ``idf``/``sif`` weights on the training corpus (``mean`` needs none)."""
    if embedder.pooling.method != "mean":
        embedder.fit_pooling(corpus)
    return embedder


def check_vocab(size: int, min_count: int) -> None:
    if size == 0:
        raise ConfigError(
            f"no word occurs at least min_count={min_count} times in the corpus: "
            "lower min_count or give a larger corpus"
        )


def check_positive(**values: int) -> None:
    bad = [f"{k}={v!r}" for k, v in values.items() if not isinstance(v, int) or v < 1]
    if bad:
        raise ConfigError("these options must be integers >= 1: " + ", ".join(bad))
