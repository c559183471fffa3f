"""Train static word vectors on your own corpus: Word2Vec, fastText and GloVe.

A corpus is either a path to a UTF-8 text file (one text per line) or a re-iterable
collection of texts (a list, a tuple, or any object whose ``__iter__`` starts over).
It is streamed: :class:`TokenizedCorpus` tokenises one text at a time, once, into a
temporary file (:func:`spooled`) that every training pass reads back line by line,
so a corpus larger than memory trains as well as a small one (the temporary file
needs about as much disk as the corpus). One-shot iterators (generators) are
refused, because every trainer makes several passes.

The tokenizer (:func:`embedkit.tokenize.get_tokenizer`) is applied identically at
training time and at embedding time: its name goes into the returned embedder's
spec and saved folder. With ``workers=1`` (the default) and a fixed ``seed``,
training is reproducible run to run.

* :func:`train_word2vec` -- gensim's Word2Vec, CBOW (``sg=0``) or skip-gram (``sg=1``);
* :func:`train_fasttext` -- fastText with subword n-grams of ``minn..maxn``
  characters (OOV words get vectors from their n-grams), trained by gensim and
  served through the ``fasttext`` module like any ``.bin`` file;
* :func:`train_glove` -- GloVe as in its paper, see :mod:`embedkit.glove`.

Each returns an embedder of its backend (``word2vec``, ``fasttext``, ``glove``);
``embedder.save(folder)`` writes it and ``embedkit.load("<backend>:<folder>")``
reads it back.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from embedkit._optional import require
from embedkit.backends.fasttext import FastTextEmbedder, fasttext_module
from embedkit.backends.gensim import GloVeEmbedder, Word2VecEmbedder
from embedkit.backends.static import StaticEmbedder
from embedkit.errors import BackendError, ConfigError, InvalidInputError
from embedkit.glove import GloVeFit, build_vocab, cooccurrence, fit_glove
from embedkit.tokenize import Tokenizer, get_tokenizer
from embedkit.wordfiles import from_keyed_vectors
from embedkit.words import WordVectors

__all__ = [
    "Corpus",
    "TokenFile",
    "TokenizedCorpus",
    "TrainedGloVe",
    "spooled",
    "train_fasttext",
    "train_glove",
    "train_word2vec",
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
                "be reloaded: call embedkit.tokenize.register_tokenizer(name, factory) first"
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


def train_word2vec(
    corpus: Corpus,
    *,
    sg: int = 0,
    dim: int = 100,
    window: int = 5,
    min_count: int = 5,
    epochs: int = 5,
    negative: int = 5,
    sample: float = 1e-3,
    alpha: float = 0.025,
    seed: int = 1,
    workers: int = 1,
    tokenizer: str | Tokenizer = "words",
    pooling: str = "mean",
    oov: str = "skip",
) -> Word2VecEmbedder:
    """Word2Vec with negative sampling: CBOW (``sg=0``) or skip-gram (``sg=1``), by gensim.

    Returns a ``word2vec`` embedder whose vocabulary is sorted by falling count
    (``words.counts`` holds the counts); ``idf``/``sif`` pooling is fitted on ``corpus``.
    """
    if sg not in (0, 1):
        raise ConfigError(f"sg must be 0 (CBOW) or 1 (skip-gram), got {sg!r}")
    _check_positive(dim=dim, window=window, min_count=min_count, epochs=epochs, workers=workers)
    models = require("gensim.models", "gensim")

    stream = TokenizedCorpus(corpus, tokenizer, max_tokens=GENSIM_MAX_TOKENS)
    tokenizer_name = stream.check_named()
    model = models.Word2Vec(
        vector_size=dim,
        window=window,
        min_count=min_count,
        sg=sg,
        hs=0,
        negative=negative,
        sample=sample,
        alpha=alpha,
        seed=seed,
        workers=workers,
    )
    with spooled(stream) as tokens:
        model.build_vocab(tokens)
        _check_vocab(len(model.wv), min_count)
        try:
            model.train(tokens, total_examples=model.corpus_count, epochs=epochs)
        except (RuntimeError, ValueError) as exc:
            raise BackendError(f"gensim Word2Vec training failed: {exc}") from exc
    embedder = Word2VecEmbedder.from_words(
        from_keyed_vectors(model.wv), tokenizer=tokenizer_name, pooling=pooling, oov=oov
    )
    return _fit_pooling(embedder, corpus)


def train_fasttext(
    corpus: Corpus,
    *,
    sg: int = 1,
    dim: int = 100,
    minn: int = 3,
    maxn: int = 6,
    window: int = 5,
    min_count: int = 5,
    epochs: int = 5,
    negative: int = 5,
    alpha: float = 0.025,
    bucket: int = 2_000_000,
    seed: int = 1,
    workers: int = 1,
    tokenizer: str | Tokenizer = "words",
    pooling: str = "mean",
    oov: str = "skip",
) -> FastTextEmbedder:
    """fastText vectors with character n-grams of ``minn..maxn`` (``maxn=0``: none).

    CBOW (``sg=0``) or skip-gram (``sg=1``, fastText's default). The model is
    trained by gensim's implementation of fastText, written in Facebook's ``.bin``
    format and loaded back through the ``fasttext`` module, so the result is exactly
    what ``load("fasttext:<file>.bin")`` gives. (The ``fasttext`` module's own trainer
    initialises only ``workers / 10`` of its input matrix, leaving the rest as
    uninitialised memory, so with one worker it is neither correct nor reproducible.)

    The input matrix holds ``vocabulary + bucket`` rows of ``dim`` floats: lower
    ``bucket`` for small corpora. Out-of-vocabulary words get the mean of their
    n-gram vectors.
    """
    if sg not in (0, 1):
        raise ConfigError(f"sg must be 0 (CBOW) or 1 (skip-gram), got {sg!r}")
    _check_positive(dim=dim, window=window, min_count=min_count, epochs=epochs, workers=workers)
    if minn < 0 or maxn < 0 or (maxn and minn > maxn) or (maxn and minn == 0):
        raise ConfigError(f"need 1 <= minn <= maxn (or maxn=0 for no subwords), got {minn}, {maxn}")
    fasttext = fasttext_module()
    models = require("gensim.models", "gensim")
    gensim_fasttext = require("gensim.models.fasttext", "gensim")
    stream = TokenizedCorpus(corpus, tokenizer, max_tokens=GENSIM_MAX_TOKENS)
    tokenizer_name = stream.check_named()
    model = models.FastText(
        vector_size=dim,
        window=window,
        min_count=min_count,
        sg=sg,
        hs=0,
        negative=negative,
        alpha=alpha,
        min_n=minn if maxn else 1,
        max_n=maxn,
        bucket=bucket if maxn else 1,
        seed=seed,
        workers=workers,
    )
    with spooled(stream) as tokens:
        model.build_vocab(tokens)
        _check_vocab(len(model.wv), min_count)
        try:
            model.train(tokens, total_examples=model.corpus_count, epochs=epochs)
        except (RuntimeError, ValueError) as exc:
            raise BackendError(f"gensim FastText training failed: {exc}") from exc
        file = tokens.path.with_name("model.bin")
        gensim_fasttext.save_facebook_model(model, str(file))
        try:
            trained = fasttext.load_model(str(file))
        except (RuntimeError, ValueError) as exc:
            raise BackendError(f"fastText cannot read the trained model: {exc}") from exc
    embedder = FastTextEmbedder.from_model(
        trained, tokenizer=tokenizer_name, pooling=pooling, oov=oov
    )
    return _fit_pooling(embedder, corpus)


def train_glove(
    corpus: Corpus,
    *,
    dim: int = 50,
    window: int = 10,
    min_count: int = 5,
    max_vocab: int | None = None,
    symmetric: bool = True,
    epochs: int = 25,
    x_max: float = 100.0,
    alpha: float = 0.75,
    learning_rate: float = 0.05,
    batch_size: int = 16384,
    seed: int = 0,
    tokenizer: str | Tokenizer = "words",
    pooling: str = "mean",
    oov: str = "skip",
    on_epoch: Callable[[int, float], None] | None = None,
) -> TrainedGloVe:
    """GloVe vectors (``W + C``) trained on ``corpus``; see :mod:`embedkit.glove`.

    Two streamed passes build the vocabulary and the co-occurrence matrix; then
    :func:`~embedkit.glove.fit_glove` runs ``epochs`` of AdaGrad. The paper's
    ``x_max=100`` suits corpora of billions of tokens; on small corpora (say under
    a few million tokens) ``x_max=10`` gives markedly better neighbours.
    The result is a ``glove`` embedder with ``loss_history`` (``J / nnz`` per epoch).
    """
    _check_positive(dim=dim, window=window, min_count=min_count, epochs=epochs)
    stream = TokenizedCorpus(corpus, tokenizer)
    tokenizer_name = stream.check_named()
    with spooled(stream) as tokens:
        words, counts = build_vocab(tokens, min_count=min_count, max_vocab=max_vocab)
        _check_vocab(len(words), min_count)
        vocab = {w: i for i, w in enumerate(words)}
        matrix = cooccurrence(tokens, vocab, window=window, symmetric=symmetric)
    fit = fit_glove(
        matrix,
        dim=dim,
        epochs=epochs,
        x_max=x_max,
        alpha=alpha,
        learning_rate=learning_rate,
        batch_size=batch_size,
        seed=seed,
        on_epoch=on_epoch,
    )
    embedder = TrainedGloVe.from_words(
        WordVectors(words, fit.vectors, counts=counts),
        tokenizer=tokenizer_name,
        pooling=pooling,
        oov=oov,
    )
    embedder.fit = fit
    return _fit_pooling(embedder, corpus)


class TrainedGloVe(GloVeEmbedder):
    """A ``glove`` embedder fresh from :func:`train_glove`, with its training record.

    ``fit`` holds ``W``, ``C``, both biases and ``loss_history`` (``J / nnz`` per
    epoch). Saved and reloaded, it is a plain :class:`GloVeEmbedder`.
    """

    fit: GloVeFit

    @property
    def loss_history(self) -> list[float]:
        """``J / nnz`` after each epoch (see :mod:`embedkit.glove`)."""
        return list(self.fit.loss_history)


E = TypeVar("E", bound=StaticEmbedder)


def _fit_pooling(embedder: E, corpus: Corpus) -> E:
    """Fit ``idf``/``sif`` weights on the training corpus (``mean`` needs none)."""
    if embedder.pooling.method != "mean":
        embedder.fit_pooling(corpus)
    return embedder


def _check_vocab(size: int, min_count: int) -> None:
    if size == 0:
        raise ConfigError(
            f"no word occurs at least min_count={min_count} times in the corpus: "
            "lower min_count or give a larger corpus"
        )


def _check_positive(**values: int) -> None:
    bad = [f"{k}={v!r}" for k, v in values.items() if not isinstance(v, int) or v < 1]
    if bad:
        raise ConfigError("these options must be integers >= 1: " + ", ".join(bad))
