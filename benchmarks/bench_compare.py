"""Choosing a model on real data: ``embedkit.evaluate.compare`` on the 1,000 fine-food reviews.

Models: the hashing baseline, Word2Vec and fastText trained here on the reviews'
own text (summaries and reviews, 15 s for both), and MiniLM (all-MiniLM-L6-v2).
Tasks: *title -> review* retrieval (MRR@10; recall/MRR/nDCG at 1, 5, 10 printed
too) and sentiment by a linear probe (macro-F1, accuracy). Each task runs with a
fresh, empty cache, so texts/s is the models' own speed; a last line shows a
second run of the retrieval task answered from the cache. MiniLM is warmed up
first (a process's first batches are 3-4x slower). These are the numbers of
docs/evaluate.md.

    HF_HUB_OFFLINE=1 python benchmarks/bench_compare.py
    HF_HUB_OFFLINE=1 python benchmarks/bench_compare.py --quick     # 150 reviews, no MiniLM
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import embedkit
from embedkit.errors import EmbedkitWarning
from embedkit.evaluate import (
    Comparison,
    RetrievalResult,
    compare,
    read_reviews,
    reviews_retrieval,
    reviews_sentiment,
)
from embedkit.jobs.cache import EmbeddingCache

REVIEWS = Path(__file__).resolve().parents[2] / "shared" / "data" / "fine_food_reviews_1k.csv"
MINILM = "sentence-transformers:all-MiniLM-L6-v2"


def models(path: Path, limit: int | None, minilm: bool) -> dict[str, Any]:
    corpus = [f"{summary}. {text}" for _, summary, text in read_reviews(path, limit=limit)]
    found: dict[str, Any] = {"hashing": "hashing?dim=512"}
    start = time.perf_counter()
    found["word2vec"] = embedkit.train_word2vec(corpus, dim=100, min_count=2, epochs=20)
    found["fasttext"] = embedkit.train_fasttext(
        corpus, dim=100, min_count=2, epochs=20, bucket=200_000
    )
    print(
        f"trained word2vec and fastText on {len(corpus)} reviews in "
        f"{time.perf_counter() - start:.1f}s"
    )
    if minilm:
        start = time.perf_counter()
        found["MiniLM"] = model = embedkit.load(MINILM)
        model.embed([t for t in corpus[:64]])  # warm-up
        print(f"loaded and warmed up MiniLM in {time.perf_counter() - start:.1f}s")
    return found


def show(comparison: Comparison) -> None:
    print()
    print(comparison)
    for row in comparison.rows:
        result = row.result
        if isinstance(result, RetrievalResult):
            s = result.scores
            cells = "  ".join(
                f"@{k}: recall {r:.3f} MRR {m:.3f} nDCG {n:.3f}"
                for k, r, m, n in zip(s.k, s.recall, s.mrr, s.ndcg, strict=True)
            )
            print(f"  {row.model:10s} {cells}")
        elif hasattr(result, "accuracy"):
            print(
                f"  {row.model:10s} accuracy {result.accuracy:.3f}  macro-F1 "
                f"{result.macro_f1:.3f} (+/- {result.macro_f1_std:.3f})"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="150 reviews, no MiniLM")
    parser.add_argument("--data", type=Path, default=REVIEWS)
    args = parser.parse_args(argv)
    limit = 150 if args.quick else None
    warnings.simplefilter("ignore", EmbedkitWarning)  # MiniLM truncates 2% of the reviews
    candidates = models(args.data, limit, minilm=not args.quick)
    tasks = [reviews_retrieval(args.data, limit=limit), reviews_sentiment(args.data, limit=limit)]
    with tempfile.TemporaryDirectory() as tmp:
        for number, task in enumerate(tasks):
            with EmbeddingCache(Path(tmp) / f"task{number}.sqlite3") as cache:
                show(compare(candidates, task, cache=cache, progress=False))
                if number == 0:
                    again = compare(candidates, task, cache=cache, progress=False)
                    print("\nsecond run, from the cache:")
                    print(again)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
