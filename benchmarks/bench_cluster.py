"""Ray Data: 2 actors vs 1 process on this machine, hashing and MiniLM, side by side.

Real texts (the tutorial's fine-food reviews; for the hashing model repeated with a
copy number so that every text is distinct). Every Ray run happens in a child
process inside a loopback-only network namespace (``tests/netns.py``: Ray would
otherwise try cloud-metadata servers), ``ray.init(num_cpus=2, ...)`` at 127.0.0.1.

Competitors, per model, in that one child:

* ``1 process``      ``embedkit.embed(texts, model, cache=False)`` in the driver (the
                     model loaded and warmed up before the clock starts; torch uses its
                     default threads, i.e. both cores; the actors get ``num_cpus=1``, so
                     torch runs on 1 thread in each);
* ``ray, 1 actor`` / ``ray, 2 actors``  ``embed_dataset(ds, spec, concurrency=k,
                     cache=False).materialize()``, the clock started after ``ray.init``.

Where the time goes: each Ray configuration runs at two sizes, ``small`` and ``n``;
``steady`` = ``(n - small) / (t_n - t_small)`` texts/s, and ``startup`` = ``t_n -
n / steady`` seconds (actor start, model load in every actor, scheduling). ``vs 1
proc`` compares steady rates; ``of 2x`` = steady / (2 x the 1-process rate).

The competitors alternate, ``--repeats`` times (figures are medians), so that
load from other processes hits them alike.

    python benchmarks/bench_cluster.py            # modest sizes (a few minutes)
    python benchmarks/bench_cluster.py --quick    # tiny sizes, one size per run
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REVIEWS = ROOT.parent / "shared" / "data" / "fine_food_reviews_1k.csv"
MODELS = {"hashing": "hashing?dim=384", "minilm": "sbert:all-MiniLM-L6-v2"}


def texts(n: int, distinct: bool) -> list[str]:
    with open(REVIEWS, encoding="utf-8") as fh:
        rows = [f"{r['Summary']}. {r['Text']}" for r in csv.DictReader(fh)]
    out = [rows[i % len(rows)] for i in range(n)]
    return [f"{t} (copy {i})" for i, t in enumerate(out)] if distinct else out


def child(args: argparse.Namespace) -> None:
    """Inside the namespace: every measurement, printed as one JSON line."""
    import pandas as pd
    import ray

    import embedkit
    from embedkit.ray import embed_dataset
    from netns import check_offline

    check_offline()
    sizes = {"hashing": args.n_hashing, "minilm": args.n_minilm}
    t0 = time.perf_counter()
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        logging_level="WARNING",
        log_to_driver=False,
    )
    ray.data.DataContext.get_current().enable_progress_bars = False
    results: dict[str, Any] = {"init_s": time.perf_counter() - t0, "rows": []}
    actors = (2,) if args.quick else (1, 2)

    def on_ray(spec: str, data: list[str], k: int, n: int) -> float:
        frame = pd.DataFrame({"id": range(n), "text": data[:n]})
        ds = ray.data.from_pandas(frame).repartition(max(n // args.batch_size, 1))
        ds = ds.materialize()  # the input ready in the object store, off the clock
        t0 = time.perf_counter()
        out = embed_dataset(ds, spec, concurrency=k, batch_size=args.batch_size, cache=False)
        out = out.materialize()
        seconds = time.perf_counter() - t0
        assert out.count() == n
        return seconds

    for name, spec in MODELS.items():
        data = texts(sizes[name], distinct=name == "hashing")
        small = max(len(data) // 5, args.batch_size)
        t0 = time.perf_counter()
        model = embedkit.load(spec)
        model.embed(data[: args.batch_size])  # warm-up, as the actors get theirs
        load_s = time.perf_counter() - t0
        runs: dict[str, list[Any]] = {"1 process": []}
        for _ in range(args.repeats):  # the competitors alternate: noise hits them alike
            t0 = time.perf_counter()
            embedkit.embed(data, model, cache=False, batch_size=args.batch_size, progress=False)
            runs["1 process"].append(time.perf_counter() - t0)
            for k in actors:
                sizes_k = (len(data),) if args.quick else (small, len(data))
                timing = [(n, on_ray(spec, data, k, n)) for n in sizes_k]
                runs.setdefault(f"ray, {k} actor{'s' * (k > 1)}", []).append(timing)
        for run, got in runs.items():
            if run == "1 process":
                results["rows"].append([name, run, len(data), statistics.median(got), load_s, None])
                continue
            # the median of each size's times
            timing = [
                (n, statistics.median(t[i][1] for t in got)) for i, (n, _) in enumerate(got[0])
            ]
            results["rows"].append([name, run, *timing[-1], None, timing])
    ray.shutdown()
    print(json.dumps(results))


def report(results: dict[str, Any]) -> None:
    print(f"ray.init: {results['init_s']:.1f} s (once, not in the figures below)")
    head = f"{'model':<9}{'run':<15}{'texts':>7}{'wall s':>8}{'texts/s':>9}"
    print(head + f"{'steady/s':>10}{'startup s':>11}{'vs 1 proc':>11}{'of 2x':>7}")
    base: dict[str, float] = {}
    for name, run, n, seconds, load_s, timings in results["rows"]:
        rate = n / seconds
        if timings is None:
            base[name] = rate
            steady, startup = rate, load_s
        elif len(timings) == 2:
            (n1, t1), (n2, t2) = timings
            steady = (n2 - n1) / (t2 - t1) if t2 > t1 else float("nan")
            startup = t2 - n2 / steady
        else:
            steady, startup = float("nan"), float("nan")
        ratio = steady / base[name] if steady == steady else rate / base[name]
        print(
            f"{name:<9}{run:<15}{n:>7}{seconds:>8.2f}{rate:>9.0f}{steady:>10.0f}{startup:>11.2f}"
            f"{ratio:>10.2f}x{ratio / 2:>7.2f}"
        )
    print("1 process 'startup' = model load + one warm-up batch; ray: actors + loads + scheduling")
    print("(--quick: one size per run, so steady/startup are not split; 'vs 1 proc' is end to end)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a few seconds")
    parser.add_argument("--n-hashing", type=int, default=10000)
    parser.add_argument("--n-minilm", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3, help="runs per competitor (medians)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.n_hashing, args.n_minilm, args.batch_size, args.repeats = 400, 20, 10, 1
    if args.child:
        child(args)
        return
    sys.path.insert(0, str(ROOT / "tests"))
    from netns import isolated_env, run_isolated

    forwarded = ["--child", "--n-hashing", str(args.n_hashing), "--n-minilm", str(args.n_minilm)]
    forwarded += ["--batch-size", str(args.batch_size), "--repeats", str(args.repeats)]
    forwarded += ["--quick"] if args.quick else []
    done = run_isolated(Path(__file__), forwarded, env=isolated_env(), timeout=1800)
    line = [x for x in done.stdout.splitlines() if x.startswith("{")][-1]
    report(json.loads(line))


if __name__ == "__main__":
    main()
