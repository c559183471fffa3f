"""The embedding pipeline and the review workflow, measured side by side.

1. Streaming: N texts (default 1,000,000) through the hashing backend into a
   ``.npy`` file, each competitor in a fresh process so that its peak RSS is its own:

   * ``direct``        a hand-written loop: ``model.embed(batch)`` on the same
                        batches, bytes appended to a file (the floor);
   * ``embedkit``      ``embed_to_npy(texts, path, model, cache=False)``;
   * ``embedkit+cache (cold)`` / ``(warm)``: the same with the SQLite cache, first
                        empty, then full (one run each: the cold run fills it);
   * ``cli -> index``  ``embedkit embed corpus.txt --out <index folder>``: the job
                        path streamed into an index folder (ids + text metadata
                        kept) by ``IndexWriter``, then swapped in atomically.

   Targets: peak RSS < 500 MB and embedkit's throughput within 10% of ``direct``.

2. The review-search workflow on the tutorial's 1,000 fine-food reviews, with the
   hashing backend as the model (offline): the tutorial's way (one embedding call
   per row through ``DataFrame.apply``, vectors saved as stringified lists in a
   CSV, reloaded with ``literal_eval``, searched with ``apply`` + ``sort_values``)
   vs :func:`embedkit.frame.embed_frame` -> Parquet -> :meth:`EmbeddedFrame.search_rows`.
   Both must find the same top-10 rows.

    python benchmarks/bench_pipeline.py            # full sizes (a few minutes)
    python benchmarks/bench_pipeline.py --quick    # tiny sizes, a few seconds

Figures are medians of ``--repeats`` runs (cold/warm cache runs once each).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

SPEC = "hashing?dim=384"
BATCH = 1024
REVIEWS = Path(__file__).resolve().parents[2] / "shared" / "data" / "fine_food_reviews_1k.csv"
TEMPLATE = "Title: {Summary}; Content: {Text}"


def corpus(n: int) -> Iterator[str]:
    """``n`` distinct review-like texts, generated lazily (a few hundred bytes each)."""
    import csv

    with open(REVIEWS, encoding="utf-8") as fh:
        rows = [(r["Summary"], r["Text"][:200]) for r in csv.DictReader(fh)]
    for i in range(n):
        summary, text = rows[i % len(rows)]
        yield f"Title: {summary}; Content: {text} (copy {i})"


def batches(n: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for text in corpus(n):
        batch.append(text)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


# -- part 1: one competitor per process --------------------------------------------------
def child(mode: str, n: int, out: str, cache: str) -> None:
    import embedkit
    from embedkit.jobs.embed import embed_to_npy

    model = embedkit.load(SPEC)
    start = time.perf_counter()
    if mode == "index":
        from embedkit.cli import main as cli

        args = ["embed", cache + ".txt", "--out", out, "-m", SPEC, "--no-cache", "--no-progress"]
        if cli([*args, "--batch-size", str(BATCH)]) != 0:
            raise SystemExit("embedkit embed failed")
    elif mode == "direct":
        with open(out, "wb") as fh:
            for batch in batches(n):
                fh.write(model.embed(batch).tobytes())
    else:
        use_cache: str | bool = cache if mode.startswith("cache") else False
        embed_to_npy(corpus(n), out, model, cache=use_cache, batch_size=BATCH, progress=False)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds}))


def run_child(mode: str, n: int, folder: Path) -> tuple[float, float]:
    """``(seconds, peak RSS in MB)`` of one run in a fresh process."""
    cmd = [sys.executable, __file__, "--child", mode, "--n", str(n)]
    out = folder / (mode if mode == "index" else f"{mode}.npy")
    cmd += ["--out", str(out), "--cache", str(folder / "cache.sqlite3")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    out, err = proc.communicate()
    if status != 0:
        raise SystemExit(f"{mode} failed:\n{err}")
    rss_mb = usage.ru_maxrss / 1024 if sys.platform != "darwin" else usage.ru_maxrss / 2**20
    return float(json.loads(out)["seconds"]), rss_mb


def bench_streaming(n: int, repeats: int) -> None:
    print(f"\n1. streaming {n:,} texts through {SPEC} into .npy (batch {BATCH})")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        results: dict[str, tuple[float, float]] = {}
        runs: dict[str, list[tuple[float, float]]] = {"direct": [], "embedkit": []}
        for _ in range(repeats):  # interleaved, so that load from elsewhere hits both alike
            for mode, done in runs.items():
                done.append(run_child(mode, n, folder))
                (folder / f"{mode}.npy").unlink()
        for mode, done in runs.items():
            results[mode] = (statistics.median(r[0] for r in done), max(r[1] for r in done))
        for mode in ("cache-cold", "cache-warm"):
            results[mode] = run_child(mode, n, folder)
        with open(folder / "cache.sqlite3.txt", "w", encoding="utf-8") as fh:
            fh.writelines(text.replace("\n", " ") + "\n" for text in corpus(n))
        results["index"] = run_child("index", n, folder)
        import embedkit

        index = embedkit.VectorIndex.load(folder / "index", mmap=True)
        assert len(index) == n and index.metadata[-1] is not None
        cache_mb = (folder / "cache.sqlite3").stat().st_size / 2**20
        expected = np.load(folder / "cache-warm.npy", mmap_mode="r")
        assert expected.shape == (n, 384)
    base = results["direct"][0]
    print(f"{'competitor':<26}{'seconds':>9}{'texts/s':>11}{'vs direct':>11}{'peak RSS MB':>13}")
    names = {
        "direct": "direct (model.embed loop)",
        "embedkit": "embedkit, no cache",
        "cache-cold": "embedkit, cache cold",
        "cache-warm": "embedkit, cache warm",
        "index": "cli -> index folder",
    }
    for mode, (seconds, rss) in results.items():
        print(
            f"{names[mode]:<26}{seconds:>9.2f}{n / seconds:>11,.0f}{seconds / base:>10.2f}x{rss:>13.0f}"
        )
    overhead = results["embedkit"][0] / base - 1
    print(
        f"pipeline overhead vs direct: {overhead:+.1%} (target within 10%); "
        f"peak RSS {results['embedkit'][1]:.0f} MB (target < 500); cache file {cache_mb:.0f} MB"
    )
    print(f"streamed index build: peak RSS {results['index'][1]:.0f} MB (target < 500)")


# -- part 2: the review workflow -----------------------------------------------------------
def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def bench_workflow(rows: int, repeats: int) -> None:
    from ast import literal_eval

    import pandas as pd

    import embedkit
    from embedkit.frame import EmbeddedFrame, embed_frame, read_tutorial_csv

    model = embedkit.load(SPEC)
    df = pd.read_csv(REVIEWS, index_col=0).iloc[:rows]
    df["Summary"], df["Text"] = df.Summary.str.strip(), df.Text.str.strip()  # as the tutorial
    query, k = "pet food", 10
    print(f"\n2. review workflow on {len(df)} reviews, model {SPEC}, query {query!r}, k={k}")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        csv_path, pq_path = folder / "tutorial.csv", folder / "embedkit.parquet"
        cache_path = folder / "cache.sqlite3"

        def tutorial_embed() -> pd.DataFrame:
            out = df.copy()
            out["combined"] = (
                "Title: " + out.Summary.str.strip() + "; Content: " + out.Text.str.strip()
            )
            out["embedding"] = out.combined.apply(lambda x: model.embed([x])[0].tolist())
            return out

        def tutorial_search(frame: pd.DataFrame) -> list[Any]:
            q = model.embed([query])[0]
            sims = frame.embedding.apply(
                lambda x: float(np.dot(x, q) / (np.linalg.norm(x) * np.linalg.norm(q)))
            )
            return list(sims.sort_values(ascending=False).head(k).index)

        def tutorial_reload() -> pd.DataFrame:
            frame = pd.read_csv(csv_path, index_col=0)
            frame["embedding"] = frame.embedding.apply(literal_eval).apply(np.array)
            return frame

        rows_out: list[tuple[str, float, float]] = []
        t_embed, tut = timed(tutorial_embed, repeats)
        e_embed, ef = timed(lambda: embed_frame(df, model, template=TEMPLATE, cache=False), repeats)
        embed_frame(df, model, template=TEMPLATE, cache=cache_path)  # fill the cache
        w_embed, _ = timed(
            lambda: embed_frame(df, model, template=TEMPLATE, cache=cache_path), repeats
        )
        rows_out.append(("embed (no cache)", t_embed, e_embed))
        rows_out.append(("embed (warm cache)", t_embed, w_embed))
        t_save, _ = timed(lambda: tut.to_csv(csv_path), repeats)
        e_save, _ = timed(lambda: ef.save(pq_path), repeats)
        rows_out.append(("save", t_save, e_save))
        t_load, tut_back = timed(tutorial_reload, repeats)
        e_load, ef_back = timed(lambda: EmbeddedFrame.load(pq_path), repeats)
        rows_out.append(("reload", t_load, e_load))
        i_load, imported = timed(lambda: read_tutorial_csv(csv_path, spec=model.spec), repeats)
        rows_out.append(("import tutorial CSV", t_load, i_load))
        t_search, t_top = timed(lambda: tutorial_search(tut_back), repeats)
        e_search, e_hits = timed(lambda: ef_back.search_rows(query, k, model=model), repeats)
        rows_out.append(("search one query", t_search, e_search))
        total_t = t_embed + t_save + t_load + t_search
        total_e = e_embed + e_save + e_load + e_search
        rows_out.append(("whole workflow", total_t, total_e))
        csv_mb, pq_mb = csv_path.stat().st_size / 2**20, pq_path.stat().st_size / 2**20
        imported_top = list(imported.search_rows(query, k, model=model).index)
        same = set(t_top) == set(e_hits.index) == set(imported_top)  # tied rows may swap places

    print(f"{'step':<22}{'tutorial s':>12}{'embedkit s':>12}{'speed-up':>10}")
    for name, t, e in rows_out:
        print(f"{name:<22}{t:>12.4f}{e:>12.4f}{t / e:>9.1f}x")
    print(f"{'file size MB':<22}{csv_mb:>12.2f}{pq_mb:>12.2f}{csv_mb / pq_mb:>9.1f}x")
    print(f"same top-{k} row sets (tutorial, embedkit, imported CSV): {'yes' if same else 'NO'}")
    if not same:
        raise SystemExit("the two workflows disagree")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a few seconds")
    parser.add_argument("--n", type=int, default=1_000_000, help="texts for the streaming part")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.n, args.out, args.cache)
        return
    n, repeats, rows = (20_000, 1, 200) if args.quick else (args.n, args.repeats, 1000)
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, {os.cpu_count()} CPUs")
    bench_streaming(n, repeats)
    bench_workflow(rows, repeats)


if __name__ == "__main__":
    main()
