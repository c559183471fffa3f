"""GloVe trained by embedkit, side by side with Word2Vec trained on the same corpus.

1. Training on gensim's Lee corpus (300 news articles, 61k tokens) and, in the full
   run, on the 105 Wikipedia articles of gensim's bundled dump (456k tokens):
   seconds (median of ``--repeats``; one run on Wikipedia), GloVe's loss per epoch,
   and the WordSim-353 correlations (Pearson, Spearman; the share of pairs out of
   vocabulary) of embedkit's GloVe (``x_max=10``), gensim's Word2Vec CBOW and
   skip-gram, and fastText, with one worker, the same tokenizer and minimum count.
2. The vectorised GloVe fit vs the paper's update written one non-zero at a time
   in Python (the same arithmetic; see tests/test_glove.py): non-zeros per second.

On the Lee corpus WordSim-353 is 83% out of vocabulary and the correlations are
noise; the Wikipedia sample (35% out of vocabulary) is the meaningful comparison.

    python benchmarks/bench_glove.py            # full settings (several minutes)
    python benchmarks/bench_glove.py --quick    # a few seconds
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def per_entry_epoch(matrix: Any, dim: int, limit: int, seed: int = 0) -> float:
    """Seconds per non-zero of one epoch of the per-entry Python loop (first ``limit``)."""
    coo = matrix.tocoo()
    rng = np.random.default_rng(seed)
    n = coo.shape[0]
    w, c = (rng.random((n, dim)) - 0.5) / dim, (rng.random((n, dim)) - 0.5) / dim
    bw, bc = np.zeros(n), np.zeros(n)
    gw, gc, gbw, gbc = np.ones((n, dim)), np.ones((n, dim)), np.ones(n), np.ones(n)
    order = rng.permutation(coo.nnz)[:limit]
    start = time.perf_counter()
    for e in order:
        i, j, x = coo.row[e], coo.col[e], coo.data[e]
        fdiff = min(1.0, (x / 10.0) ** 0.75) * (w[i] @ c[j] + bw[i] + bc[j] - np.log(x))
        g_w, g_c = fdiff * c[j], fdiff * w[i]
        gw[i] += g_w**2
        gc[j] += g_c**2
        gbw[i] += fdiff**2
        gbc[j] += fdiff**2
        w[i] -= 0.05 * g_w / np.sqrt(gw[i])
        c[j] -= 0.05 * g_c / np.sqrt(gc[j])
        bw[i] -= 0.05 * fdiff / np.sqrt(gbw[i])
        bc[j] -= 0.05 * fdiff / np.sqrt(gbc[j])
    return (time.perf_counter() - start) / len(order)


def wiki_corpus(path: Path) -> Path:
    """Paragraphs of the 105 Wikipedia articles in gensim's bundled dump, one per line."""
    import bz2

    from gensim.corpora.wikicorpus import extract_pages, filter_wiki
    from gensim.test.utils import datapath

    dump = datapath("enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2")
    with bz2.BZ2File(dump) as raw, open(path, "w", encoding="utf-8") as out:
        for _, text, _ in extract_pages(raw, filter_namespaces=("0",)):
            for paragraph in filter_wiki(text).split("\n"):
                if len(paragraph.split()) > 5:
                    out.write(paragraph + "\n")
    return path


def compare_trainers(title: str, corpus: Any, settings: dict[str, Any], repeats: int) -> Any:
    """Train each method on ``corpus``, print seconds and WordSim-353; return the GloVe model."""
    from gensim.test.utils import datapath

    from embedkit import train_fasttext, train_glove, train_word2vec
    from embedkit.words.evaluate import evaluate_word_pairs

    common = {"dim": settings["dim"], "min_count": settings["min_count"]}
    epochs = settings["epochs"]
    trainers: dict[str, Callable[[], Any]] = {
        "GloVe (embedkit)": lambda: train_glove(
            corpus, epochs=settings["glove_epochs"], x_max=10.0, window=10, **common
        ),
        "Word2Vec CBOW": lambda: train_word2vec(corpus, sg=0, epochs=epochs, **common),
        "Word2Vec skip-gram": lambda: train_word2vec(corpus, sg=1, epochs=epochs, **common),
        "fastText CBOW": lambda: train_fasttext(
            corpus, sg=0, epochs=epochs, bucket=50_000, **common
        ),
    }
    print(f"\n{title} (dim {settings['dim']}, 1 worker, median of {repeats})")
    print(
        f"{'trainer':20s} {'seconds':>8s} {'x GloVe':>8s} {'pearson':>8s} {'spearman':>9s} {'oov %':>6s}"
    )
    base = None
    glove_model: Any = None
    for name, train in trainers.items():
        seconds, model = timed(train, repeats)
        base = base or seconds
        if glove_model is None:
            glove_model = model
        try:
            r = evaluate_word_pairs(model.words, datapath("wordsim353.tsv"))
            figures = f"{r.pearson:8.3f} {r.spearman:9.3f} {r.oov_ratio:6.1f}"
        except ValueError:
            figures = f"{'-':>8s} {'-':>9s} {100.0:6.1f}"
        print(f"{name:20s} {seconds:8.2f} {seconds / base:8.2f} {figures}")
    history = glove_model.loss_history
    print("GloVe loss (J / nnz) by epoch: " + " ".join(f"{v:.4f}" for v in history))
    return glove_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings, a few seconds")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    quick = args.quick
    repeats = args.repeats or (1 if quick else 3)

    from gensim.test.utils import datapath

    from embedkit.words.corpus import TokenizedCorpus
    from embedkit.words.glove import cooccurrence, fit_glove

    lee = datapath("lee_background.cor")
    with open(lee, encoding="utf-8") as fh:
        texts = fh.read().splitlines()
    corpus: Any = texts[:60] if quick else lee
    settings = {"dim": 50, "min_count": 2 if quick else 5, "epochs": 2 if quick else 20}
    settings["glove_epochs"] = 3 if quick else 25
    print("1. the same corpus, four trainers; WordSim-353 correlations")
    lee_title = "Lee corpus" + (" (first 60 texts)" if quick else " (61k tokens)")
    glove_model = compare_trainers(lee_title, corpus, settings, repeats)
    if not quick:
        with tempfile.TemporaryDirectory() as tmp:
            wiki = wiki_corpus(Path(tmp) / "wiki.txt")
            wiki_settings = {"dim": 100, "min_count": 5, "epochs": 10, "glove_epochs": 25}
            compare_trainers("105 Wikipedia articles (456k tokens)", wiki, wiki_settings, 1)

    vocab = {w: i for i, w in enumerate(glove_model.words.words)}
    matrix = cooccurrence(TokenizedCorpus(corpus), vocab, window=10)
    epoch_seconds, _ = timed(
        lambda: fit_glove(matrix, dim=50, epochs=1, x_max=10.0, batch_size=16384), repeats
    )
    loop = per_entry_epoch(matrix, 50, 2_000 if quick else 20_000)
    vectorised = epoch_seconds / matrix.nnz
    print(f"\n2. one GloVe epoch on {lee_title}: {matrix.nnz:,} non-zeros, {len(vocab):,} words")
    print(f"{'method':28s} {'non-zeros/s':>12s} {'epoch s':>9s} {'speed-up':>9s}")
    print(f"{'per-entry Python loop':28s} {1 / loop:12,.0f} {loop * matrix.nnz:9.2f} {1.0:9.1f}")
    print(
        f"{'vectorised (batch 16384)':28s} {1 / vectorised:12,.0f} {epoch_seconds:9.2f} "
        f"{loop / vectorised:9.1f}"
    )


if __name__ == "__main__":
    main()
