"""Train Word2Vec (by gensim) and GloVe (by :mod:`embedkit.words.glove`) on your own corpus.

Corpora are streamed (:mod:`embedkit.words.corpus`). With ``workers=1`` (the default)
and a fixed ``seed``, training is reproducible run to run. Each trainer returns an
embedder of its backend; ``embedder.save(folder)`` writes it and
``embedkit.load("<backend>:<folder>")`` reads it back.
"""

from __future__ import annotations

from collections.abc import Callable

from embedkit._optional import require
from embedkit.backends.gensim import GloVeEmbedder, Word2VecEmbedder
from embedkit.errors import BackendError, ConfigError
from embedkit.words.corpus import (
    GENSIM_MAX_TOKENS,
    Corpus,
    TokenizedCorpus,
    check_positive,
    check_vocab,
    fit_pooling,
    spooled,
)
from embedkit.words.files import from_keyed_vectors
from embedkit.words.glove import GloVeFit, build_vocab, cooccurrence, fit_glove
from embedkit.words.tokenize import Tokenizer
from embedkit.words.vectors import WordVectors

__all__ = ["TrainedGloVe", "train_glove", "train_word2vec"]


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
    on_oov: str = "skip",
) -> Word2VecEmbedder:
    """Word2Vec with negative sampling: CBOW (``sg=0``) or skip-gram (``sg=1``), by gensim.

    Returns a ``word2vec`` embedder whose vocabulary is sorted by falling count
    (``words.counts`` holds the counts); ``idf``/``sif`` pooling is fitted on ``corpus``;
    ``on_oov`` is its OOV policy (``"skip"``, ``"zero"``, ``"error"``).
    """
    if sg not in (0, 1):
        raise ConfigError(f"sg must be 0 (CBOW) or 1 (skip-gram), got {sg!r}")
    check_positive(dim=dim, window=window, min_count=min_count, epochs=epochs, workers=workers)
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
        check_vocab(len(model.wv), min_count)
        try:
            model.train(tokens, total_examples=model.corpus_count, epochs=epochs)
        except (RuntimeError, ValueError) as exc:
            raise BackendError(f"gensim Word2Vec training failed: {exc}") from exc
    embedder = Word2VecEmbedder.from_words(
        from_keyed_vectors(model.wv), tokenizer=tokenizer_name, pooling=pooling, on_oov=on_oov
    )
    return fit_pooling(embedder, corpus)


def train_glove(
    corpus: Corpus,
    *,
    dim: int = 50,
    window: int = 10,
    min_count: int = 5,
    limit: int | None = None,
    symmetric: bool = True,
    epochs: int = 25,
    x_max: float = 100.0,
    alpha: float = 0.75,
    learning_rate: float = 0.05,
    batch_size: int = 16384,
    seed: int = 0,
    tokenizer: str | Tokenizer = "words",
    pooling: str = "mean",
    on_oov: str = "skip",
    on_epoch: Callable[[int, float], None] | None = None,
) -> TrainedGloVe:
    """GloVe vectors (``W + C``) trained on ``corpus``; see :mod:`embedkit.words.glove`.

    Two streamed passes build the vocabulary (words seen ``min_count`` times; with
    ``limit``, only the ``limit`` most frequent of them) and the co-occurrence matrix; then
    :func:`~embedkit.words.glove.fit_glove` runs ``epochs`` of AdaGrad. The paper's
    ``x_max=100`` suits corpora of billions of tokens; on small corpora (say under
    a few million tokens) ``x_max=10`` gives markedly better neighbours.
    The result is a ``glove`` embedder with ``loss_history`` (``J / nnz`` per epoch).
    """
    check_positive(dim=dim, window=window, min_count=min_count, epochs=epochs)
    stream = TokenizedCorpus(corpus, tokenizer)
    tokenizer_name = stream.check_named()
    with spooled(stream) as tokens:
        words, counts = build_vocab(tokens, min_count=min_count, limit=limit)
        check_vocab(len(words), min_count)
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
        on_oov=on_oov,
    )
    embedder.fit = fit
    return fit_pooling(embedder, corpus)


class TrainedGloVe(GloVeEmbedder):
    """A ``glove`` embedder fresh from :func:`train_glove`, with its training record.

    ``fit`` holds ``W``, ``C``, both biases and ``loss_history`` (``J / nnz`` per
    epoch). Saved and reloaded, it is a plain :class:`GloVeEmbedder`.
    """

    fit: GloVeFit

    @property
    def loss_history(self) -> list[float]:
        """``J / nnz`` after each epoch (see :mod:`embedkit.words.glove`)."""
        return list(self.fit.loss_history)
