"""Train fastText subword vectors on your own corpus (by gensim, served by ``fasttext``).

Corpora are streamed (:mod:`embedkit.words.corpus`); with ``workers=1`` and a fixed
``seed`` training is reproducible.
"""

from __future__ import annotations

from embedkit._optional import require
from embedkit.backends.fasttext import FastTextEmbedder, fasttext_module
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
from embedkit.words.tokenize import Tokenizer

__all__ = ["train_fasttext"]


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
    on_oov: str = "skip",
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
    check_positive(dim=dim, window=window, min_count=min_count, epochs=epochs, workers=workers)
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
        check_vocab(len(model.wv), min_count)
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
        trained, tokenizer=tokenizer_name, pooling=pooling, on_oov=on_oov
    )
    return fit_pooling(embedder, corpus)
