"""Exact top-10 cosine search: embedkit vs the usual ways, side by side in one run.

For each N x d (float32, unit rows) and for one query and a batch of 256, it times

* ``embedkit``   ``embedkit.search.kernels.search`` (what ``VectorIndex`` runs);
* ``numpy``      plain ``queries @ matrix.T`` + ``argpartition`` + sort of the k winners;
* ``tutorial``   the popular tutorial: a pandas column of per-row arrays,
                 ``df.embedding.apply(lambda v: cosine_similarity(v, q))``, ``sort_values``
                 (timed on fewer rows/queries and extrapolated linearly when slow; said so);
* ``faiss``      ``faiss.IndexFlatIP.search``;
* ``st.util``    ``sentence_transformers.util.semantic_search`` (``dot_score``: rows are unit);
* ``hnswlib-bf`` ``hnswlib.BFIndex("ip")`` brute force,

checks that all return the same top-10 ids (and embedkit the float64 top-10 sets, up to
genuine float ties), and prints each method's ratio to this machine's lower bound,
measured in the same run: one query must read the whole matrix (N*d*4 bytes / read
bandwidth, from summing a large float32 array), a batch must compute every score: its
bound is the fastest plain product ``block @ queries.T`` over the same matrix, of a few
block shapes (the square-matmul flop peak is shown beside it). The methods and those kernels take
turns, repeat after repeat, so that the load of a shared machine falls on all alike;
times are medians of the repeats, with the process CPU time beside them. It also
times ``import embedkit`` in fresh interpreters.

    python benchmarks/bench_search.py            # N in {10k, 100k, 1M} x d in {384, 1536}
    python benchmarks/bench_search.py --quick    # tiny sizes, a few seconds
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from embedkit.search.kernels import normalize, search

K = 10
BATCH = 256
HNSWLIB_WORK = 2e10  # multiply-adds above which hnswlib-bf runs a subset of the queries
Ids = NDArray[np.int64]


@dataclass
class Method:
    """A prepared method: ``run()`` returns the top-K ids of the queries it ran.

    ``scale`` turns the time of a subset run into the estimate for the whole job
    (linear extrapolation); ``note`` says what was extrapolated.
    """

    run: Callable[[], Ids | None]
    scale: float = 1.0
    note: str = ""
    subset: tuple[int, int] | None = None  # (rows, queries) of a subset run


def round_robin(
    methods: dict[str, Callable[[], object]], repeats: int, max_seconds: float, gap: float = 0.0
) -> dict[str, tuple[float, float]]:
    """Median (wall s, process CPU s) of each method, the methods taking turns.

    Taking turns spreads the load of a shared machine evenly over the methods, and
    the order is shuffled (seeded) each repeat: whatever runs right after a heavy
    kernel (the big matmul) was seen to pay up to 2x, and a rotation keeps the same
    neighbours, so no method may always follow the same one. A method stops repeating
    once its runs have taken ``max_seconds`` in all. Each run starts ``gap`` seconds
    after the last one ended: OpenBLAS's threads spin for about 0.1 s after a
    multi-threaded product before they sleep, and until then they take a core from
    whatever runs next (measured: a batch search 146 ms right after ``a @ b``, 102 ms
    0.3 s later); the gap times each method on a quiet machine, not after its neighbour.
    The CPU time counts all threads: on a shared machine it moves less with the load.
    """
    walls: dict[str, list[float]] = {name: [] for name in methods}
    cpus: dict[str, list[float]] = {name: [] for name in methods}
    names = list(methods)
    order = np.random.default_rng(12345)
    for _ in range(repeats):
        for name in order.permutation(names).tolist():
            fn = methods[name]
            if walls[name] and sum(walls[name]) > max_seconds:
                continue
            if gap:
                time.sleep(gap)
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            walls[name].append(time.perf_counter() - t0)
            cpus[name].append(time.process_time() - c0)
    return {n: (statistics.median(walls[n]), statistics.median(cpus[n])) for n in methods}


# -- this machine's limits --------------------------------------------------------------


def limit_kernels(quick: bool) -> tuple[dict[str, Callable[[], object]], float, float]:
    """Kernels that measure the machine: reading a large array on one and two threads
    (read bandwidth: a float32 sum, and an int32 max, which stays memory-bound where
    numpy's pairwise float sum is not, e.g. 20 against 40 GB/s on one AMD Zen 5 thread),
    and a large square float32 numpy matmul (flop peak). Returns them with the bytes
    read and the flops of the matmul."""
    array = np.ones((2**27 if quick else 2**30) // 4, dtype=np.float32)
    parts = [array[: array.size // 2], array[array.size // 2 :]]
    ints = array.view(np.int32)
    int_parts = [part.view(np.int32) for part in parts]
    pool = ThreadPoolExecutor(2)
    size = 1024 if quick else 4096
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    kernels: dict[str, Callable[[], object]] = {
        "sum 1 thread": array.sum,
        "sum 2 threads": lambda: list(pool.map(np.sum, parts)),
        "max 1 thread": ints.max,
        "max 2 threads": lambda: list(pool.map(np.max, int_parts)),
        "matmul": lambda: a @ b,
    }
    return kernels, float(array.nbytes), 2.0 * size**3


def product_kernels(
    matrix: NDArray[np.float32], queries: NDArray[np.float32]
) -> dict[str, Callable[[], object]]:
    """Plain score products over the same matrix, no top-k, in a few block shapes: the
    fastest is the batch's bound (what any exact method must at least compute)."""

    def blocked(rows: int) -> Callable[[], object]:
        def go() -> None:
            for r0 in range(0, matrix.shape[0], rows):
                matrix[r0 : r0 + rows] @ queries.T

        return go

    shapes = sorted({min(r, matrix.shape[0]) for r in (4096, 16384, 65536)})
    return {f"product {r} rows": blocked(r) for r in shapes}


def import_time(repeats: int) -> tuple[float, list[str]]:
    """Median seconds of ``import embedkit`` in a fresh interpreter, and heavy modules seen."""
    code = (
        "import sys, time; t = time.perf_counter(); import embedkit; "
        "print(time.perf_counter() - t); "
        "print(','.join(m for m in ('torch', 'transformers', 'sentence_transformers', 'gensim', "
        "'fasttext', 'openai', 'tiktoken', 'pandas', 'sklearn', 'scipy') if m in sys.modules))"
    )
    seconds: list[float] = []
    heavy: list[str] = []
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.split("\n")
        seconds.append(float(out[0]))
        heavy = [m for m in out[1].split(",") if m]
    return statistics.median(seconds), heavy


# -- data -------------------------------------------------------------------------------


def unit_rows(n: int, d: int, seed: int) -> NDArray[np.float32]:
    """``(n, d)`` float32 unit rows, made in chunks (no float64 copy of the whole)."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, d), dtype=np.float32)
    step = max(1, 2**24 // d)
    for r0 in range(0, n, step):
        out[r0 : r0 + step] = normalize(rng.standard_normal((min(step, n - r0), d), np.float32))
    return out


def exact_top_k(matrix: NDArray[np.float32], queries: NDArray[np.float32]) -> NDArray[np.float64]:
    """Float64 scores of ``queries`` against every row (``(q, n)``), in row chunks."""
    q64 = queries.astype(np.float64)
    out = np.empty((queries.shape[0], matrix.shape[0]), dtype=np.float64)
    step = max(1, 2**22 // matrix.shape[1])
    for r0 in range(0, matrix.shape[0], step):
        out[:, r0 : r0 + step] = q64 @ matrix[r0 : r0 + step].astype(np.float64).T
    return out


def same_sets(ids: Ids, expected: Ids, exact: NDArray[np.float64] | None) -> bool:
    """Same top-K sets per query; with float64 scores, differences must be genuine ties."""
    for row, (got, want) in enumerate(zip(ids.tolist(), expected.tolist(), strict=True)):
        extra = set(got) ^ set(want)
        if not extra:
            continue
        if exact is None:
            return False
        kth = np.sort(exact[row])[-K]
        if any(abs(exact[row, i] - kth) > 1e-6 for i in extra):
            return False
    return True


# -- the methods ------------------------------------------------------------------------


def prepare_embedkit(matrix: NDArray[np.float32], queries: NDArray[np.float32]) -> Method:
    return Method(lambda: search(queries, matrix, K).indices)


def prepare_matmul(matrix: NDArray[np.float32], queries: NDArray[np.float32]) -> Method:
    """The score product alone, no top-k: what any exact method must at least do."""

    def go() -> None:
        queries @ matrix.T

    return Method(go)


def prepare_numpy(matrix: NDArray[np.float32], queries: NDArray[np.float32]) -> Method:
    def go() -> Ids:
        scores = queries @ matrix.T
        part = np.argpartition(-scores, K - 1, axis=1)[:, :K]
        order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
        return np.take_along_axis(part, order, axis=1)

    return Method(go)


def tutorial_cosine_similarity(a: NDArray[np.float32], b: NDArray[np.float32]) -> float:
    """The tutorial's helper (openai.embeddings_utils.cosine_similarity)."""
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def prepare_tutorial(
    matrix: NDArray[np.float32], queries: NDArray[np.float32], max_rows: int
) -> Method:
    import pandas as pd

    n, nq = matrix.shape[0], queries.shape[0]
    rows, run_q = min(n, max_rows), min(nq, 2)
    df = pd.DataFrame({"embedding": list(matrix[:rows])})

    def go() -> Ids:
        found = []
        for q in queries[:run_q]:
            df["similarity"] = df.embedding.apply(tutorial_cosine_similarity, args=(q,))
            found.append(df.sort_values("similarity", ascending=False).head(K).index.to_numpy())
        return np.asarray(found, dtype=np.int64)

    if rows == n and run_q == nq:
        return Method(go)
    return Method(
        go,
        (n / rows) * (nq / run_q),
        f"extrapolated linearly from {rows:,} rows x {run_q} queries",
        (rows, run_q),
    )


def prepare_faiss(matrix: NDArray[np.float32], queries: NDArray[np.float32]) -> Method:
    import faiss

    index = faiss.IndexFlatIP(matrix.shape[1])
    index.add(matrix)
    return Method(lambda: index.search(queries, K)[1].astype(np.int64))


def prepare_st_util(matrix: NDArray[np.float32], queries: NDArray[np.float32]) -> Method:
    import torch
    from sentence_transformers import util

    corpus, qt = torch.from_numpy(matrix), torch.from_numpy(queries)

    def go() -> Ids:
        found = util.semantic_search(qt, corpus, top_k=K, score_function=util.dot_score)
        return np.asarray([[int(h["corpus_id"]) for h in hits] for hits in found], np.int64)

    return Method(go)


def prepare_hnswlib(matrix: NDArray[np.float32], queries: NDArray[np.float32]) -> Method:
    import hnswlib

    n, d = matrix.shape
    index = hnswlib.BFIndex(space="ip", dim=d)
    index.init_index(max_elements=n)
    index.add_items(matrix)
    nq = queries.shape[0]
    run_q = max(1, min(nq, int(HNSWLIB_WORK // (n * d))))

    def go() -> Ids:
        return np.asarray(index.knn_query(queries[:run_q], k=K)[0], dtype=np.int64)

    if run_q == nq:
        return Method(go)
    note = f"extrapolated linearly from {run_q} queries (it scans per query)"
    return Method(go, nq / run_q, note, (n, run_q))


PREPARE: dict[str, Callable[[NDArray[np.float32], NDArray[np.float32], int], Method]] = {
    "matmul-only": lambda m, q, rows: prepare_matmul(m, q),
    "embedkit": lambda m, q, rows: prepare_embedkit(m, q),
    "numpy": lambda m, q, rows: prepare_numpy(m, q),
    "faiss": lambda m, q, rows: prepare_faiss(m, q),
    "st.util": lambda m, q, rows: prepare_st_util(m, q),
    "hnswlib-bf": lambda m, q, rows: prepare_hnswlib(m, q),
    "tutorial": lambda m, q, rows: prepare_tutorial(m, q, rows),
}
EXTRA_COPY = {"faiss", "hnswlib-bf"}  # keep their own copy of the matrix


# -- driver -----------------------------------------------------------------------------


def available_bytes() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 24 * 2**30


def bench_size(n: int, d: int, args: argparse.Namespace) -> None:
    rng = np.random.default_rng(1)
    matrix = unit_rows(n, d, seed=n + d)
    all_queries = normalize(matrix[rng.integers(0, n, BATCH)] + 0.5 * unit_rows(BATCH, d, 7))
    for label, queries in (("1 query", all_queries[:1]), (f"{BATCH} queries", all_queries)):
        nq = queries.shape[0]
        print(f"\nN={n:,} d={d} {label}:")
        checked = min(nq, 8)
        exact = exact_top_k(matrix, queries[:checked])
        exact_ids = np.argsort(-exact, axis=1, kind="stable")[:, :K]
        methods: dict[str, Method] = {}
        for name in args.methods:
            if name in EXTRA_COPY and n * d * 4 > available_bytes() * 0.6:
                print(f"  {name:<11} skipped: its copy of the matrix does not fit in free memory")
                continue
            try:
                methods[name] = PREPARE[name](matrix, queries, args.tutorial_rows)
            except ImportError as exc:
                print(f"  {name:<11} skipped: {exc}")
        ids = {name: method.run() for name, method in methods.items()}  # also a warm-up
        kernels, nbytes, flops = limit_kernels(args.quick)
        if nq > 1:
            kernels.update(product_kernels(matrix, queries))
        timed = round_robin(
            {**kernels, **{name: m.run for name, m in methods.items()}},
            args.repeats,
            args.max_seconds,
            args.gap,
        )
        reads = {t: min(timed[f"{op} {t}"][0] for op in ("sum", "max"))
                 for t in ("1 thread", "2 threads")}  # fmt: skip
        bw = nbytes / min(reads.values())
        peak = flops / timed["matmul"][0]
        print(
            f"  machine, measured in turn with the methods: read bandwidth (the faster of a "
            f"float32 sum and an int32 max) {nbytes / reads['1 thread'] / 1e9:.1f} GB/s on 1 "
            f"thread, {nbytes / reads['2 threads'] / 1e9:.1f} on 2; matmul peak "
            f"{peak / 1e9:.0f} GFLOP/s"
        )
        if nq > 1:
            products = {k: v[0] for k, v in timed.items() if k.startswith("product")}
            if "matmul-only" in timed:
                products["queries @ matrix.T"] = timed["matmul-only"][0]
            shape = min(products, key=products.__getitem__)
            bound = products[shape]
            print(
                f"  lower bound: the fastest plain product over the same matrix ({shape}) = "
                f"{bound * 1e3:.2f} ms, {2 * n * d * nq / bound / 1e9:.0f} GFLOP/s (square "
                f"matmul peak: {2 * n * d * nq / peak * 1e3:.2f} ms)"
            )
        else:
            bound = n * d * 4 / bw
            print(f"  lower bound: N*d*4 bytes / bandwidth = {bound * 1e3:.2f} ms")
        print(
            f"  {'method':<11} {'median ms':>11} {'x bound':>8} {'x embedkit':>10} "
            f"{'cpu ms':>9}  top-10 ids"
        )
        ours = ids.get("embedkit")
        base = timed["embedkit"][0] if "embedkit" in timed else float("nan")
        for name, method in methods.items():
            wall, cpu = timed[name][0] * method.scale, timed[name][1] * method.scale
            found = ids[name]
            if found is None:
                check = "(reference)"
            elif method.subset is not None:
                rows, run_q = method.subset
                same = np.array_equal(found, search(queries[:run_q], matrix[:rows], K).indices)
                check = f"{'same as' if same else 'DIFFERENT from'} embedkit on that subset"
            elif name == "embedkit":
                ok = same_sets(found[:checked], exact_ids, exact)
                check = "= float64 sets" if ok else "DIFFERS from float64"
            else:
                ok = (ours is not None and same_sets(found, ours, None)) or same_sets(
                    found[:checked], exact_ids, exact
                )
                check = "same as embedkit" if ok else "DIFFERENT"
            print(
                f"  {name:<11} {wall * 1e3:>11.2f} {wall / bound:>8.2f} {wall / base:>10.2f} "
                f"{cpu * 1e3:>9.1f}  {check}" + (f"  [{method.note}]" if method.note else "")
            )
        del methods, ids, kernels
        gc.collect()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a few seconds")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--n", type=int, nargs="*", default=None, help="rows (default 10k 100k 1M)")
    parser.add_argument("--d", type=int, nargs="*", default=None, help="dims (default 384 1536)")
    parser.add_argument(
        "--methods",
        nargs="*",
        default=list(PREPARE),
    )
    parser.add_argument("--tutorial-rows", type=int, default=20_000)
    parser.add_argument(
        "--max-seconds", type=float, default=30.0, help="stop repeating a method after this"
    )
    parser.add_argument(
        "--gap",
        type=float,
        default=0.3,
        help="idle seconds before each timed run (BLAS threads stop spinning); 0: none",
    )
    parser.add_argument(
        "--max-gib", type=float, default=24.0, help="skip sizes whose matrix and copies exceed this"
    )
    args = parser.parse_args(argv)
    sizes_n = args.n or ([3_000] if args.quick else [10_000, 100_000, 1_000_000])
    sizes_d = args.d or ([64] if args.quick else [384, 1536])
    if args.quick:
        args.repeats = min(args.repeats, 2)
        args.tutorial_rows = min(args.tutorial_rows, 500)

    print(f"embedkit search benchmark: exact top-{K}, float32 unit rows, {os.cpu_count()} CPUs")
    print("(numpy, faiss, torch and hnswlib use their own default thread counts)")
    seconds, heavy = import_time(1 if args.quick else 7)
    print(
        f"import embedkit: {seconds * 1e3:.0f} ms median in a fresh interpreter (target < 200 ms)"
    )
    print(f"  heavy modules imported by it: {', '.join(heavy) or 'none'}")
    print(
        "(methods and the machine's limits are timed in turns, so they share the load alike, "
        f"each after {args.gap:g} s idle)"
    )
    for n in sizes_n:
        for d in sizes_d:
            need = 2 * n * d * 4  # the matrix and one copy (faiss / hnswlib)
            if need > min(args.max_gib * 2**30, available_bytes() * 0.8):
                print(f"\nN={n:,} d={d}: skipped, needs ~{need / 2**30:.1f} GiB")
                continue
            bench_size(n, d, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
