"""Benchmarks for static word vectors, embedkit vs gensim side by side.

1. analogy evaluation (questions-words.txt) with the first 300,000 and 30,000 words
   (``limit=``; gensim calls it ``restrict_vocab``);
2. pooling sentences: embedkit's sparse product vs a per-sentence loop over gensim
   ``KeyedVectors.get_mean_vector``;
3. GloVe text load vs gensim ``load_word2vec_format(no_header=True)``, and reload of
   embedkit's cached native form (plain and memory-mapped; every file's sha256 is
   checked by default, also timed with ``verify=False``).

The analogy evaluation is also compared with the bare float32 product of its question
vectors with the first ``limit`` rows (the fastest of a few block shapes, timed in the
same run): the scores it must compute at least.

No real 400k-word GloVe file exists offline, so the 400k x 50 vectors are SYNTHETIC: the
real vocabulary of the analogy set placed among the 30,000 first rows, generated
words for the rest, random vectors where each analogy section shares a relation
offset (so accuracy is neither 0 nor 1). Both libraries get exactly the same
vectors. Figures are medians of ``--repeats`` runs. gensim's analogy evaluation
(minutes per run here) is run once on every ``--stride``-th question (default 10)
and its time scaled to the whole file; embedkit runs the whole file and, on
gensim's sample, must give the identical accuracy and section counts. gensim is
timed as installed and with OpenBLAS limited to one thread (its per-question
matrix-vector products are slower with two threads on this VM).

    python benchmarks/bench_words.py            # full sizes (several minutes)
    python benchmarks/bench_words.py --quick    # tiny sizes, a few seconds
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
from numpy.typing import NDArray


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def synthetic_vectors(n: int, dim: int, seed: int = 0) -> tuple[list[str], NDArray[np.float32]]:
    """``n`` words (the analogy vocabulary among the first rows) and structured random vectors."""
    from gensim.test.utils import datapath

    rng = np.random.default_rng(seed)
    sections: list[list[tuple[str, str]]] = []
    real: dict[str, None] = {}
    for line in Path(datapath("questions-words.txt")).read_text("utf-8").splitlines(True):
        if line.startswith(":"):
            sections.append([])
            continue
        a, b, c, d = line.lower().split()
        sections[-1] += [(a, b), (c, d)]
        real.update(dict.fromkeys((a, b, c, d)))
    real_words = list(real)[: n // 2]
    words = [f"w{i:06d}" for i in range(n)]
    spread = min(n, 30_000)
    slots = rng.choice(spread, size=len(real_words), replace=False)
    for slot, word in zip(slots.tolist(), real_words, strict=False):
        words[slot] = word
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    row = {w: i for i, w in enumerate(words)}
    for pairs in sections:
        offset = rng.standard_normal(dim).astype(np.float32) * 1.0
        for x, y in dict.fromkeys(pairs):
            if x in row and y in row:
                noise = rng.standard_normal(dim).astype(np.float32) * 1.1
                vectors[row[y]] = vectors[row[x]] + offset + noise
    return words, vectors


def question_file(folder: Path, stride: int) -> Path:
    """Every ``stride``-th question of questions-words.txt, section headers kept."""
    from gensim.test.utils import datapath

    if stride == 1:
        return Path(datapath("questions-words.txt"))
    kept, count = [], 0
    for line in Path(datapath("questions-words.txt")).read_text("utf-8").splitlines(True):
        if line.startswith(":"):
            kept.append(line)
            continue
        if count % stride == 0:
            kept.append(line)
        count += 1
    path = folder / f"questions-every-{stride}.txt"
    path.write_text("".join(kept), encoding="utf-8")
    return path


def gensim_analogies(kv: Any, path: Path, limit: int, threads: int | None) -> tuple[float, Any]:
    def run() -> Any:
        return kv.evaluate_word_analogies(str(path), restrict_vocab=limit)

    if threads is None:
        return timed(run, 1)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads, user_api="blas"):
        return timed(run, 1)


def bare_products(matrix: NDArray[np.float32], questions: int, repeats: int) -> tuple[float, str]:
    """The fastest of a few block shapes of the plain ``(questions, d) @ matrix.T`` product
    (no ranking): the bound of the analogy evaluation, whose scores are exactly these."""
    rng = np.random.default_rng(3)
    queries = rng.standard_normal((questions, matrix.shape[1])).astype(np.float32)
    best = (float("inf"), "")
    for q_chunk, rows in ((256, 16384), (1024, 4096), (1024, 16384), (4096, 4096)):

        def run(q_chunk: int = q_chunk, rows: int = rows) -> None:
            for q0 in range(0, questions, q_chunk):
                part = queries[q0 : q0 + q_chunk].T
                for r0 in range(0, matrix.shape[0], rows):
                    matrix[r0 : r0 + rows] @ part

        seconds, _ = timed(run, repeats)
        best = min(best, (seconds, f"{q_chunk} questions x {rows} rows"))
    return best


def bench_analogies(
    words: Any, kv: Any, folder: Path, limits: list[int], stride: int, repeats: int
) -> list[tuple[str, float, float, str]]:
    from gensim.test.utils import datapath

    from embedkit.words.evaluate import evaluate_analogies

    full = Path(datapath("questions-words.txt"))
    sample = question_file(folder, stride)
    rows = []
    for limit in limits:

        def evaluate(n: int = limit) -> Any:
            return evaluate_analogies(words, full, limit=n)

        ours_t, ours = timed(evaluate, repeats)
        bare, shape = bare_products(words.normed[:limit], ours.questions, repeats)
        ours_t = min(ours_t, timed(evaluate, 1)[0])  # the product and ours, in turns
        print(
            f"analogies limit={limit:,}: embedkit {ours_t:.2f} s (best of {repeats + 1}), the bare "
            f"({ours.questions} x {limit:,} x {words.dim}) float32 product {bare:.2f} s (fastest "
            f"shape: {shape}, best of {repeats}) -> {ours_t / bare:.2f}x the bare product",
            flush=True,
        )
        ours_sample = evaluate_analogies(words, sample, limit=limit)
        share = ours_sample.questions / ours.questions
        for label, threads in (("gensim", None), ("gensim, 1 BLAS thread", 1)):
            g_t, (score, sections) = gensim_analogies(kv, sample, limit, threads)
            same = score == ours_sample.accuracy and [
                (len(s["correct"]), len(s["incorrect"])) for s in sections[:-1]
            ] == [(s.correct, s.incorrect) for s in ours_sample.sections]
            note = (
                f"accuracy {ours.accuracy:.4f} (all {ours.questions}); on gensim's "
                f"{ours_sample.questions}-question sample {score:.4f} vs {ours_sample.accuracy:.4f}"
                f" {'IDENTICAL' if same else 'DIFFERENT'}"
            )
            rows.append((f"analogies limit={limit:,} vs {label}", g_t / share, ours_t, note))
    return rows


def bench_pooling(n_sentences: int, repeats: int) -> list[tuple[str, float, float, str]]:
    from gensim.models import Word2Vec
    from gensim.test.utils import datapath

    from embedkit.backends.gensim import Word2VecEmbedder
    from embedkit.words.files import from_keyed_vectors
    from embedkit.words.tokenize import simple_tokenize

    text = Path(datapath("lee_background.cor")).read_text("utf-8")
    sentences = [s.strip() for s in text.replace("\n", " ").split(". ") if s.strip()]
    model = Word2Vec(
        [simple_tokenize(s) for s in sentences], vector_size=100, min_count=2, seed=1, workers=1
    )
    texts = [sentences[i % len(sentences)] for i in range(n_sentences)]
    tokens = [simple_tokenize(t) for t in texts]
    kv = model.wv
    emb = Word2VecEmbedder.from_words(from_keyed_vectors(kv))

    def gensim_tokens() -> NDArray[np.float32]:
        return np.stack([kv.get_mean_vector(t, pre_normalize=False) for t in tokens])

    def gensim_texts() -> NDArray[np.float32]:
        return np.stack(
            [kv.get_mean_vector(simple_tokenize(t), pre_normalize=False) for t in texts]
        )

    g_tok_t, g_out = timed(gensim_tokens, max(1, repeats // 2))
    e_tok_t, e_out = timed(lambda: emb.embed_tokens(tokens), repeats)
    g_txt_t, _ = timed(gensim_texts, max(1, repeats // 2))
    e_txt_t, _ = timed(lambda: emb.embed(texts), repeats)
    same = np.allclose(g_out, e_out, atol=1e-5)
    note = f"{n_sentences:,} sentences, {sum(map(len, tokens)):,} tokens; equal vectors: {same}"
    return [
        ("pooling (mean) from tokens", g_tok_t, e_tok_t, note),
        ("pooling (mean) from texts, tokenising", g_txt_t, e_txt_t, "same tokenizer both sides"),
    ]


def write_glove(path: Path, words: list[str], vectors: NDArray[np.float32]) -> None:
    fmt = " ".join(["%.6f"] * vectors.shape[1]) + "\n"
    with open(path, "w", encoding="utf-8") as fh:
        for start in range(0, len(words), 10_000):
            block = vectors[start : start + 10_000].tolist()
            fh.write(
                "".join(
                    w + " " + fmt % tuple(row) for w, row in zip(words[start:], block, strict=False)
                )
            )


def bench_load(
    path: Path, folder: Path, repeats: int, gensim_repeats: int
) -> list[tuple[str, float, float, str]]:
    from gensim.models import KeyedVectors

    from embedkit.words.files import read_glove
    from embedkit.words.vectors import WordVectors

    g_t, kv = timed(
        lambda: KeyedVectors.load_word2vec_format(str(path), no_header=True), gensim_repeats
    )
    e_t, words = timed(lambda: read_glove(path), repeats)
    same = words.words == list(kv.index_to_key) and np.array_equal(words.vectors, kv.vectors)
    size = f"{path.stat().st_size / 2**20:.0f} MiB, {len(words):,} x {words.dim}"
    native = words.save(folder / "native")
    c_t, _ = timed(lambda: WordVectors.load(native), repeats)
    m_t, _ = timed(lambda: WordVectors.load(native, mmap=True), repeats)
    u_t, _ = timed(lambda: WordVectors.load(native, mmap=True, verify=False), repeats)
    return [
        ("glove load (text)", g_t, e_t, f"{size}; identical to gensim: {same}"),
        ("glove load vs cached native (.npy)", g_t, c_t, "WordVectors.load (sha256 checked)"),
        ("glove load vs cached native, mmap", g_t, m_t, "WordVectors.load(mmap=True)"),
        ("glove load vs native, mmap, no sha256", g_t, u_t, "load(mmap=True, verify=False)"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a few seconds")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--stride", type=int, default=10, help="gensim runs every n-th question")
    parser.add_argument(
        "--only", choices=("load", "pooling", "analogies"), nargs="*", default=None,
        help="run only these parts (default: all)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.quick:
        n, dim, limits, stride, sentences, repeats = 3_000, 50, [2_000], 50, 2_000, 1
    else:
        n, dim, limits, stride, sentences, repeats = (
            400_000,
            50,
            [300_000, 30_000],
            args.stride,
            100_000,
            args.repeats,
        )
    from gensim.models import KeyedVectors

    from embedkit.words.vectors import WordVectors

    words_list, vectors = synthetic_vectors(n, dim)
    words = WordVectors(words_list, vectors)
    kv = KeyedVectors(dim)
    kv.add_vectors(words_list, vectors)
    print(f"{'benchmark':<46} {'gensim s':>10} {'embedkit s':>11} {'ratio':>8}  notes")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        glove = folder / "synthetic_glove.txt"
        parts = args.only or ["load", "pooling", "analogies"]
        if "load" in parts:
            write_glove(glove, words_list, vectors)
            show(bench_load(glove, folder, repeats, 1))
        if "pooling" in parts:
            show(bench_pooling(sentences, repeats))
        if "analogies" in parts:
            show(bench_analogies(words, kv, folder, limits, stride, max(1, repeats // 2)))
    print("ratio = gensim time / embedkit time (medians); vectors are synthetic (see docstring)")


def show(rows: list[tuple[str, float, float, str]]) -> None:
    for name, theirs, ours, note in rows:
        print(
            f"{name:<46} {theirs:>10.3f} {ours:>11.3f} {theirs / ours:>7.1f}x  {note}", flush=True
        )


if __name__ == "__main__":
    main()
