"""embedkit's sentence-transformers backend vs ``SentenceTransformer.encode``, same texts.

Both run the same model object in the same process on the same 2,000 real texts
(the ``Text`` column of the OpenAI cookbook's fine-food reviews, cycled). Both
are warmed up first (a process's first batches are 3-4x slower), then the runs
alternate and the medians are compared. The overhead is then split into its
parts: input validation and the tokenizer pass the backend makes to count tokens
for its ``on_long`` policy.

    HF_HUB_OFFLINE=1 python benchmarks/bench_embed.py
    HF_HUB_OFFLINE=1 python benchmarks/bench_embed.py --quick
"""

from __future__ import annotations

import argparse
import csv
import itertools
import os
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np

import embedkit
from embedkit.backends.sbert import SentenceTransformerEmbedder
from embedkit.validation import check_texts

REVIEWS = Path(__file__).resolve().parents[2] / "shared" / "data" / "fine_food_reviews_1k.csv"
SPEC = "sentence-transformers:all-MiniLM-L6-v2"


def review_texts(n: int, path: Path = REVIEWS) -> list[str]:
    """``n`` review texts from the CSV's ``Text`` column, cycled."""
    with open(path, newline="", encoding="utf-8") as fh:
        texts = [row["Text"] for row in csv.DictReader(fh)]
    return list(itertools.islice(itertools.cycle(texts), n))


def seconds(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="16 texts, one run each")
    parser.add_argument("--texts", type=int, default=2_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    n, repeats = (16, 1) if args.quick else (args.texts, args.repeats)

    texts = review_texts(n)
    embedder = embedkit.load(SPEC)
    assert isinstance(embedder, SentenceTransformerEmbedder)
    model = embedder._model  # the very SentenceTransformer object the backend runs

    def direct() -> np.ndarray:
        out: np.ndarray = model.encode(
            texts,
            batch_size=embedder.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return out

    def through_embedkit() -> np.ndarray:
        with warnings.catch_warnings():  # long reviews: the truncation warning, by design
            warnings.simplefilter("ignore", embedkit.errors.EmbedkitWarning)
            return embedder.embed(texts)

    print(f"{SPEC}: {n} review texts, {os.cpu_count()} CPUs, torch default threads")
    warm = texts[: min(n, 256)]
    for _ in range(2):  # warm-up of both paths
        model.encode(warm, batch_size=32, show_progress_bar=False)
    diff = float(np.abs(through_embedkit() - direct()).max())
    print(f"max |embedkit - encode| = {diff:.2e} (same vectors)")

    times: dict[str, list[float]] = {"encode": [], "embedkit": [], "count_tokens": [], "check": []}
    for r in range(repeats):
        order = [("encode", direct), ("embedkit", through_embedkit)]
        for name, fn in order if r % 2 == 0 else order[::-1]:
            times[name].append(seconds(fn))
        times["count_tokens"].append(seconds(lambda: embedder.count_tokens(texts)))
        times["check"].append(seconds(lambda: check_texts(texts)))

    med = {name: statistics.median(values) for name, values in times.items()}
    counts = embedder.count_tokens(texts)
    long_rows = int((counts > embedder.max_tokens).sum())
    print(f"{long_rows} of {n} texts exceed {embedder.max_tokens} tokens (truncated by both)")
    print(f"{'':<34} {'median s':>9} {'texts/s':>8} {'vs encode':>10}")
    for name, label in (
        ("encode", "SentenceTransformer.encode"),
        ("embedkit", "embedkit embed()"),
        ("count_tokens", "  of which: tokenizer count pass"),
        ("check", "  of which: input validation"),
    ):
        print(
            f"{label:<34} {med[name]:>9.3f} {n / med[name]:>8.0f} "
            f"{med[name] / med['encode'] * 100:>9.1f}%"
        )
    overhead = med["embedkit"] / med["encode"] - 1
    print(f"overhead of embedkit: {overhead * 100:+.1f}% (target < 5%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
