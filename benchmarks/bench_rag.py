"""Question -> passage retrieval: whole documents against chunks, on the Lee articles and the reviews.

Tasks: *held-out sentence -> article* on gensim's 300 Lee articles
(``embedkit.evaluate.passages.lee_retrieval``: one random sentence of each article,
removed from it, is the query), the same restricted to the sentences that began
after MiniLM's 256-token window, and *title -> review* on the 1,000 reviews.
Models: hashing and MiniLM (all-MiniLM-L6-v2, window 256 tokens: whole articles
longer than that are truncated). Each row: recall@1/5/10 and MRR@10 of whole
documents, then of chunks (documents ranked by their best chunk), and the ratio
chunks / whole. These are the numbers of docs/rag.md.

    HF_HUB_OFFLINE=1 python benchmarks/bench_rag.py
    HF_HUB_OFFLINE=1 python benchmarks/bench_rag.py --quick     # hashing, 60 articles
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import embedkit
from embedkit.errors import EmbedkitWarning
from embedkit.evaluate import RetrievalResult, RetrievalTask, reviews_retrieval
from embedkit.evaluate.passages import evaluate_passages, lee_retrieval, queries_past

REVIEWS = Path(__file__).resolve().parents[2] / "shared" / "data" / "fine_food_reviews_1k.csv"
MINILM = "sentence-transformers:all-MiniLM-L6-v2"


def row(label: str, whole: RetrievalResult, chunks: RetrievalResult) -> str:
    def cells(r: RetrievalResult) -> str:
        return " ".join(f"{r.at(m):.3f}" for m in ("recall@1", "recall@5", "recall@10", "mrr@10"))

    ratio = chunks.at("mrr@10") / max(whole.at("mrr@10"), 1e-9)
    recall = chunks.at("recall@10") / max(whole.at("recall@10"), 1e-9)
    return f"{label:<44} {cells(whole)} | {cells(chunks)} | {ratio:.2f} {recall:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="hashing only, small data")
    args = parser.parse_args()
    limit = 60 if args.quick else None
    models: dict[str, Any] = {"hashing": embedkit.load("hashing?dim=512")}
    if not args.quick:
        models["MiniLM"] = minilm = embedkit.load(MINILM)
        minilm.embed(["warm up"] * 64)  # a process's first batches are 3-4x slower
    from gensim.test.utils import datapath

    articles = Path(datapath("lee_background.cor")).read_text("utf-8").splitlines()[:limit]
    lee = lee_retrieval(limit=limit)
    tasks: list[tuple[str, RetrievalTask, int, int]] = [
        ("lee", lee, 256, 0),
        ("lee", lee, 128, 32),
        ("reviews", reviews_retrieval(REVIEWS, limit=150 if args.quick else None), 128, 32),
    ]
    header = "recall@1 recall@5 recall@10 mrr@10"
    print(f"{'model / task / chunks':<44} whole: {header} | chunks: {header} | ratio mrr, r@10")
    for name, model in models.items():
        late = queries_past(lee, articles, model, 256)
        for label, task, size, overlap in [
            *tasks,
            ("lee, sentences after 256 tokens", late, 256, 0),
        ]:
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", EmbedkitWarning)  # MiniLM truncates whole articles
                whole = task.evaluate(model, cache=False, progress=False)
            chunks = evaluate_passages(
                model, task, size=size, overlap=overlap, cache=False, progress=False
            )
            tag = f"{name} / {label} ({len(task)} q) / {size}+{overlap}"
            print(row(tag, whole, chunks), f"[{time.perf_counter() - start:.0f}s]", flush=True)


if __name__ == "__main__":
    main()
