"""``embedkit compare``: several models on the review tasks (or word pairs), one table each.

::

    embedkit compare "hashing?dim=512" sentence-transformers:all-MiniLM-L6-v2 \\
        --data fine_food_reviews_1k.csv                        # both review tasks
    embedkit compare w2v=word2vec:build/w2v minilm=st:all-MiniLM-L6-v2 \\
        --task retrieval --limit 200 --json
    embedkit compare "hashing?dim=512" --word-pairs wordsim353.tsv

A model is a spec, or ``NAME=SPEC`` to label its row. Tasks: ``retrieval``
(title -> review, MRR@10) and ``sentiment`` (linear probe, macro-F1) on the
reviews CSV (``--data``, default ``$EMBEDKIT_REVIEWS_CSV``); ``--word-pairs FILE``
adds a similarity task (Spearman). Columns: quality, texts/s, dim, bytes per
vector, cache hits (see :mod:`embedkit.evaluate.compare`). Exit codes as for
every command (:mod:`embedkit.cli.options`).
"""

from __future__ import annotations

import argparse
import json
import re
from typing import Any

from embedkit.cli.options import (
    EXIT_OK,
    cache_arg,
    cache_options,
    positive_int,
    progress_options,
)
from embedkit.errors import UsageError

__all__ = ["add_parser", "cmd_compare", "parse_model"]

TASKS = ("retrieval", "sentiment")
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``compare`` command to ``subparsers`` (from ``add_subparsers()``)."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "compare", help="score several models on the review tasks: quality, speed, size"
    )
    p.add_argument("models", nargs="+", metavar="MODEL", help="a model spec, or NAME=SPEC")
    p.add_argument(
        "--task",
        action="append",
        choices=TASKS,
        help="retrieval (title -> review) or sentiment; repeat for both (default: both, "
        "or none when --word-pairs is given)",
    )
    p.add_argument("--data", help="the reviews CSV (default: $EMBEDKIT_REVIEWS_CSV)")
    p.add_argument("--limit", type=positive_int, help="use only the first N reviews")
    p.add_argument("--word-pairs", metavar="FILE", help="a word1<TAB>word2<TAB>score file")
    p.add_argument("--batch-size", type=positive_int, default=256)
    p.add_argument("--json", action="store_true", help="JSON output instead of tables")
    cache_options(p)
    progress_options(p)
    p.set_defaults(handler=cmd_compare)
    return p


def parse_model(text: str) -> tuple[str, str]:
    """``"minilm=st:all-MiniLM-L6-v2"`` -> ``("minilm", "st:all-MiniLM-L6-v2")``;
    a plain spec (``"hashing?dim=64"``) is its own name."""
    name, sep, spec = text.partition("=")
    if sep and _NAME.match(name) and spec:
        return name, spec
    return text, text


def cmd_compare(args: argparse.Namespace) -> int:
    from embedkit.evaluate import (
        Task,
        compare,
        read_word_pairs,
        reviews_retrieval,
        reviews_sentiment,
    )

    models = dict(parse_model(m) for m in args.models)
    if len(models) != len(args.models):
        raise UsageError("two models have the same name; label them NAME=SPEC")
    wanted = args.task or ([] if args.word_pairs else list(TASKS))
    tasks: list[Task] = []
    if "retrieval" in wanted:
        tasks.append(reviews_retrieval(args.data, limit=args.limit))
    if "sentiment" in wanted:
        tasks.append(reviews_sentiment(args.data, limit=args.limit))
    if args.word_pairs:
        tasks.append(read_word_pairs(args.word_pairs))
    results = [
        compare(
            models,
            task,
            cache=cache_arg(args),
            batch_size=args.batch_size,
            progress=args.progress,
        )
        for task in tasks
    ]
    if args.json:
        payload = [
            {
                "task": c.task,
                "metric": c.metric,
                "rows": [
                    {
                        "model": r.model,
                        "spec": r.spec,
                        "quality": round(r.quality, 6),
                        "texts_per_s": round(r.texts_per_s, 1),
                        "dim": r.dim,
                        "bytes_per_vector": r.bytes_per_vector,
                        "cache_hits": r.cache_hits,
                        "texts": r.texts,
                        "seconds": round(r.seconds, 3),
                    }
                    for r in c.rows
                ],
            }
            for c in results
        ]
        print(json.dumps(payload, indent=2))
        return EXIT_OK
    print("\n\n".join(str(c) for c in results))
    return EXIT_OK
