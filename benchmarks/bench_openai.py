"""OpenAI backend vs the tutorial's one-request-per-row loop, against a local server.

The server (tests/openai_server.py) runs in its own process on 127.0.0.1 and
sleeps ``--latency`` seconds (default 50 ms) before each answer. Texts are the
1,000 real fine-food reviews, repeated with a row number to reach ``--n``
(default 10,000). Compared in one run, medians of ``--repeats`` runs:

* the tutorial: ``client.embeddings.create(input=[text])`` once per row. It is
  timed on ``--loop-sample`` rows and scaled to ``--n`` (its time is linear in
  the rows: one request each); ``--full-loop`` times all of them;
* embedkit with ``max_concurrency=1``, with the defaults, and with ``max_concurrency=8``
  (interleaved runs, so that other load on the machine hits all of them alike).

Requests are counted by the server. ``--quick`` runs tiny sizes in a few seconds.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SERVER = REPO / "tests" / "openai_server.py"
REVIEWS = REPO.parent / "shared" / "data" / "fine_food_reviews_1k.csv"
MODEL = "text-embedding-3-small"
API_KEY = "sk-bench-local"


def load_texts(n: int) -> list[str]:
    with REVIEWS.open(newline="", encoding="utf-8") as f:
        reviews = [row["Text"] for row in csv.DictReader(f)]
    return [f"{reviews[i % len(reviews)]} (review {i})" for i in range(n)]


def start_server(latency: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, str(SERVER), "--latency", str(latency), "--api-key", API_KEY],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert proc.stdout is not None
    base_url = proc.stdout.readline().strip()
    if not base_url.startswith("http"):
        proc.kill()
        raise RuntimeError("the benchmark server did not start")
    return proc, base_url


def server_requests(base_url: str) -> int:
    with urllib.request.urlopen(base_url + "/_stats", timeout=10) as reply:
        return int(json.load(reply)["requests"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a few seconds")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--dimensions", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--loop-sample", type=int, default=200)
    parser.add_argument("--full-loop", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.n, args.repeats, args.loop_sample = 400, 1, 20

    import openai

    from embedkit.backends.openai import MODELS, OpenAIEmbedder

    texts = load_texts(args.n)
    sample = texts if args.full_loop else texts[: args.loop_sample]
    dims: dict[str, Any] = {} if args.dimensions is None else {"dimensions": args.dimensions}
    proc, base_url = start_server(args.latency)
    try:
        client = openai.OpenAI(api_key=API_KEY, base_url=base_url, max_retries=0)

        def tutorial() -> list[list[float]]:
            return [
                client.embeddings.create(input=[text], model=MODEL, **dims).data[0].embedding
                for text in sample
            ]

        variants: dict[str, Callable[[], object]] = {}
        settings: list[tuple[str, dict[str, Any]]] = [
            ("embedkit, max_concurrency=1", {"max_concurrency": 1}),
            ("embedkit, defaults (max_concurrency=4)", {}),
            ("embedkit, max_concurrency=8", {"max_concurrency": 8}),
        ]
        for label, options in settings:
            model = OpenAIEmbedder(MODEL, api_key=API_KEY, base_url=base_url, **options, **dims)
            variants[label] = functools.partial(model.embed, texts)
        for run in variants.values():
            run()  # warm-up: imports, tokenizer tables, connections, the server's caches
        loop_time, _ = timed(tutorial, base_url)
        times: dict[str, list[float]] = {label: [] for label in variants}
        requests: dict[str, int] = {}
        for _ in range(args.repeats):  # interleaved, so that load on the machine hits all alike
            for label, run in variants.items():
                wall, requests[label] = timed(run, base_url)
                times[label].append(wall)
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    rows = [("tutorial loop, 1 request per row", loop_time * args.n / len(sample), args.n)]
    rows += [(label, statistics.median(times[label]), requests[label]) for label in variants]
    scaled = "" if args.full_loop else f" (timed on {len(sample)} rows, scaled)"
    width = args.dimensions or MODELS[MODEL].dim
    print(
        f"{args.n} review texts, {width} dims, {args.latency * 1000:.0f} ms latency per request, "
        f"median of {args.repeats}; tutorial loop{scaled}"
    )
    print(f"{'variant':<42}{'requests':>9}{'wall s':>9}{'fewer req':>11}{'faster':>9}{'vs c=1':>8}")
    loop_wall, loop_requests = rows[0][1], rows[0][2]
    one_wall = rows[1][1]
    for label, wall, count in rows:
        print(
            f"{label:<42}{count:>9}{wall:>9.2f}{loop_requests / count:>10.0f}x"
            f"{loop_wall / wall:>8.0f}x{one_wall / wall:>7.2f}x"
        )


def timed(run: Callable[[], object], base_url: str) -> tuple[float, int]:
    """Wall time of one ``run`` and the requests it made."""
    before = server_requests(base_url)
    started = time.perf_counter()
    run()
    wall = time.perf_counter() - started
    return wall, server_requests(base_url) - before


if __name__ == "__main__":
    main()
