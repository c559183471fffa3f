"""embedkit's stores (exact, int8, f16, hnsw) against faiss and usearch, side by side in one run.

For N x 384 unit rows it builds every method, then measures, the methods taking
turns repeat after repeat (a shared machine's load falls on all alike), medians:

* recall@10 against exact float32 brute force (``embedkit.search.kernels.search``);
* queries/s for one query at a time and for batches of 256;
* build time (for embedkit: ``VectorIndex.from_vectors`` + ``save``; the stores are
  then loaded back and searched as a loaded index is: float32 copy memory-mapped);
* bytes per vector held in RAM (anonymous memory) and on disk or mapped;
* embedkit's wrapper overhead over calling usearch directly on the same graph,
  for one query and a batch of 256 (the store, and ``VectorIndex.search`` on top).

Methods: embedkit ``exact``, ``int8`` (also with its numpy scan), ``f16``, ``hnsw``
(usearch f32 graph, at several ``ef_search``; also an ``i8`` graph) and ``faiss``
(``HNSW16,Flat`` and ``IVF{4 sqrt N},Flat``), faiss ``IndexFlatIP``,
``IndexScalarQuantizer(QT_8bit)``, and faiss ``IndexHNSWFlat`` / ``IndexIVFFlat``
(``nlist = 4 sqrt(N)``, several ``nprobe``) and usearch ``Index`` used directly
on embedkit's own ``faiss`` / ``hnsw`` stores' indexes (M=16, efConstruction=128
for every graph): the same objects, searched with and without embedkit.

**Data: clustered synthetic by default** (2,000 random centres, rows at cosine about
0.6-0.8 to their centre, queries drawn the same way, not in the index): on
unclustered random vectors every HNSW collapses, which says nothing about real
embeddings. ``--data real`` uses real all-MiniLM-L6-v2 embeddings of the Lee corpus
and the 1,000 fine-food reviews (about 6,400 sentences, embedded once and cached),
repeated with noise ("paraphrases") up to N.

    python benchmarks/bench_stores.py                # N = 200,000 (1M: --n 1000000)
    python benchmarks/bench_stores.py --data real    # MiniLM sentences + paraphrase noise
    python benchmarks/bench_stores.py --quick        # tiny sizes, well under a minute
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from embedkit import VectorIndex
from embedkit.search import quantized
from embedkit.search.ann import HnswStore
from embedkit.search.faiss_index import FaissStore
from embedkit.search.kernels import normalize, search

K, BATCH, M, EF_CONSTRUCTION = 10, 256, 16, 128
Matrix = NDArray[np.float32]


@dataclass
class Row:
    """One line of the table."""

    name: str
    one: Callable[[Matrix], object]  # one query (1, d)
    batch: Callable[[Matrix], NDArray[np.int64]]  # (q, d) -> ids (q, K)
    build_s: float
    ram: float  # bytes per vector in anonymous memory
    disk: float = 0.0  # bytes per vector mapped from disk (read by the page cache)
    scan: bool = False  # brute-force-like: fewer single queries are timed
    recall: float = float("nan")
    times: dict[str, list[float]] = field(default_factory=lambda: {"one": [], "batch": []})


# -- data -------------------------------------------------------------------------------


def clustered(n: int, d: int, seed: int, centres: int = 2000) -> tuple[Matrix, Matrix]:
    """``(rows, centres)``: unit rows around random unit centres (made in chunks)."""
    rng = np.random.default_rng(seed)
    c = normalize(rng.standard_normal((centres, d), np.float32))
    return _around(c, n, rng, 1.0), c


def _around(c: Matrix, n: int, rng: np.random.Generator, sigma: float) -> Matrix:
    out = np.empty((n, c.shape[1]), np.float32)
    step = max(1, 2**22 // c.shape[1])
    for r0 in range(0, n, step):
        m = min(step, n - r0)
        noise = rng.standard_normal((m, c.shape[1]), np.float32) / np.sqrt(c.shape[1])
        spread = rng.uniform(0.7, 1.2, (m, 1)).astype(np.float32) * sigma
        out[r0 : r0 + m] = normalize(c[rng.integers(0, len(c), m)] + spread * noise)
    return out


def real(n: int, seed: int, cache: Path) -> tuple[Matrix, Matrix]:
    """MiniLM embeddings of real sentences; rows beyond them are noisy copies of them."""
    if not cache.exists():
        import csv
        import re

        from gensim.test.utils import datapath

        from embedkit import load

        def sentences(text: str) -> list[str]:
            return [s for s in re.split(r"(?<=[.!?])\s+", text) if len(s.split()) >= 4]

        lee = Path(datapath("lee_background.cor")).read_text("utf-8").splitlines()
        texts = [s for line in lee for s in sentences(line)]
        reviews = Path(__file__).resolve().parents[2] / "shared/data/fine_food_reviews_1k.csv"
        with open(reviews, newline="") as fh:
            for row in csv.DictReader(fh):
                texts += [row["Summary"], *sentences(row["Text"])]
        texts = list(dict.fromkeys(t for t in texts if t.strip()))
        print(f"embedding {len(texts)} real sentences with all-MiniLM-L6-v2 (cached in {cache})")
        np.save(cache, load("sentence-transformers:all-MiniLM-L6-v2").embed(texts))
    base = normalize(np.load(cache))
    rng = np.random.default_rng(seed)
    queries = rng.permutation(len(base))[:1000]
    held = np.setdiff1d(np.arange(len(base)), queries)
    rows = np.concatenate([base[held], _around(base[held], max(0, n - held.size), rng, 0.35)])
    return rows[:n], _around(base[queries], len(queries), rng, 0.1)


# -- methods ----------------------------------------------------------------------------


def timed(make: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    made = make()
    return made, time.perf_counter() - t0


def nlist_for(n: int) -> int:
    """IVF lists: the usual ``4 sqrt(n)``."""
    return max(16, int(4 * n**0.5))


def embedkit_rows(
    x: Matrix, folder: Path, efs: list[int], probes: list[int]
) -> tuple[list[Row], dict[str, VectorIndex]]:
    rows: list[Row] = []
    keep: dict[str, VectorIndex] = {}
    n, d = x.shape
    graph = {"connectivity": M, "ef_construction": EF_CONSTRUCTION}
    ivf = f"IVF{nlist_for(n)},Flat"
    makers: dict[str, Callable[[], object]] = {  # made when built: one store in RAM at a time
        "exact": lambda: "exact",
        "int8": lambda: "int8",
        "f16": lambda: "f16",
        "hnsw": lambda: HnswStore(d, **graph, dtype="f32"),  # usearch's own scores
        "hnsw-i8": lambda: HnswStore(d, **graph, dtype="i8"),
        "faiss-hnsw": lambda: FaissStore(d, factory=f"HNSW{M},Flat",
                                         build={"efConstruction": EF_CONSTRUCTION}),
        "faiss-ivf": lambda: FaissStore(d, factory=ivf),
    }  # fmt: skip
    for kind, make in makers.items():
        path = folder / kind

        def build(make: Callable[[], object] = make, path: Path = path) -> None:
            VectorIndex.from_vectors(x, store=make()).save(path)  # type: ignore[arg-type]

        _, seconds = timed(build)
        index = VectorIndex.load(path, verify=False)
        s = index.store
        keep[kind] = index
        ram = {"exact": 4 * d, "int8": d + 4, "f16": 2 * d}.get(kind)
        if ram is None:
            ram = getattr(s, "graph_bytes", 0) / n or _faiss_bytes(s.index) / n  # type: ignore[attr-defined]
        disk = 0 if kind == "exact" else 4 * d
        knobs = {"hnsw": efs, "hnsw-i8": efs, "faiss-hnsw": efs, "faiss-ivf": probes}.get(kind, [0])
        for knob in knobs:
            rows.append(_store_row(f"embedkit {kind}", s, knob, seconds, ram, disk))
            seconds = float("nan")  # built once, searched at several ef
        if kind == "int8":  # the same store, its scan in numpy (no numkong installed)
            rows.append(_without_numkong(_store_row("embedkit int8 (numpy scan)", s, 0,
                                                    seconds, ram, disk)))  # fmt: skip
    return rows, keep


def _faiss_bytes(index: Any) -> float:
    import faiss

    return float(faiss.serialize_index(index).nbytes)


def tune(s: object, knob: int) -> str:
    """Set a store's search knob; returns its name for the row label."""
    if isinstance(s, HnswStore):
        s.ef_search = knob
        return "ef"
    assert isinstance(s, FaissStore)
    name = "nprobe" if s.factory.startswith("IVF") else "efSearch"
    s.set(**{name: knob})
    return "nprobe" if name == "nprobe" else "ef"


def _without_numkong(row: Row) -> Row:
    """``row`` with numkong hidden from the int8 store while it runs (its numpy path)."""
    one, batch = row.one, row.batch

    def hidden(run: Callable[[Matrix], Any]) -> Callable[[Matrix], Any]:
        def call(q: Matrix) -> Any:
            saved, quantized._NUMKONG = quantized._NUMKONG, None
            try:
                return run(q)
            finally:
                quantized._NUMKONG = saved

        return call

    row.one, row.batch = hidden(one), hidden(batch)
    return row


def _store_row(name: str, s: object, knob: int, build: float, ram: float, disk: float) -> Row:
    def one(q: Matrix) -> object:
        if knob:
            tune(s, knob)
        return s.search(q, K)  # type: ignore[attr-defined]

    def batch(q: Matrix) -> NDArray[np.int64]:
        if knob:
            tune(s, knob)
        return s.search(q, K).indices  # type: ignore[attr-defined, no-any-return]

    label = f"{name} {tune(s, knob)}={knob}" if knob else name
    return Row(label, one, batch, build, ram, disk, scan=not knob)


def usearch_rows(graph: Any, n: int, efs: list[int]) -> list[Row]:
    """usearch used directly on the graph that embedkit's ``hnsw`` store built.

    The same ``usearch.index.Index`` object (embedkit's build *is* usearch's
    ``add`` plus saving the float32 rows), so the rows compare search on equal
    graphs; building a second identical graph would double the longest step.
    """
    out = []
    for ef in efs:

        def batch(q: Matrix, ef: int = ef) -> NDArray[np.int64]:
            graph.expansion_search = ef
            return np.asarray(graph.search(q, K).keys, dtype=np.int64).reshape(len(q), -1)

        out.append(Row(f"usearch f32 ef={ef} (same graph)", batch, batch, float("nan"),
                       graph.memory_usage / n))  # fmt: skip
    return out


def faiss_rows(x: Matrix, indexes: dict[str, VectorIndex], efs: list[int],
               probes: list[int]) -> list[Row]:  # fmt: skip
    """faiss used directly: Flat and SQ8 built here; HNSW and IVF are embedkit's own
    ``faiss`` stores' indexes (the same objects), searched without embedkit."""
    import faiss

    d = x.shape[1]

    def run(index: Any) -> Callable[[Matrix], NDArray[np.int64]]:
        return lambda q: index.search(q, K)[1]

    flat, t_flat = timed(lambda: _faiss_add(faiss.IndexFlatIP(d), x))
    out = [Row("faiss IndexFlatIP", run(flat), run(flat), t_flat, _faiss_bytes(flat) / len(x),
               scan=True)]  # fmt: skip

    def sq8() -> object:
        index = faiss.IndexScalarQuantizer(
            d, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
        index.train(x)
        return _faiss_add(index, x)

    sq, t_sq = timed(sq8)
    out.append(Row("faiss SQ8 (no rescoring)", run(sq), run(sq), t_sq,
                   _faiss_bytes(sq) / len(x), scan=True))  # fmt: skip
    space = faiss.ParameterSpace()
    for kind, name, knobs in (("faiss-hnsw", "efSearch", efs), ("faiss-ivf", "nprobe", probes)):
        store = indexes[kind].store
        assert isinstance(store, FaissStore)
        index, label = store.index, type(faiss.downcast_index(store.index)).__name__
        for knob in knobs:

            def batch(q: Matrix, knob: int = knob, name: str = name, index: Any = index) -> Any:
                space.set_index_parameter(index, name, knob)
                return index.search(q, K)[1]

            out.append(Row(f"faiss {label} {name}={knob} (same index)", batch, batch,
                           float("nan"), _faiss_bytes(index) / len(x)))  # fmt: skip
    return out


def _faiss_add(index: object, x: Matrix) -> object:
    index.add(x)  # type: ignore[attr-defined]
    return index


# -- measuring --------------------------------------------------------------------------


def measure(
    rows: list[Row], x: Matrix, queries: Matrix, repeats: int, singles: tuple[int, int]
) -> None:
    """Recall on all queries, then timings, the rows taking turns (shuffled, seeded)."""
    truth = search(queries, x, K).indices
    for row in rows:
        got = row.batch(queries)
        row.recall = float(
            np.mean([len(set(a) & set(b)) / K for a, b in zip(got, truth, strict=True)])
        )
    order = np.random.default_rng(7)
    batch = queries[:BATCH]
    for _ in range(repeats):
        for i in order.permutation(len(rows)).tolist():
            row = rows[i]
            count = singles[1] if row.scan else singles[0]
            t0 = time.perf_counter()
            for j in range(count):
                row.one(queries[j : j + 1])
            row.times["one"].append((time.perf_counter() - t0) / count)
            t0 = time.perf_counter()
            row.batch(batch)
            row.times["batch"].append((time.perf_counter() - t0) / len(batch))


def overheads(indexes: dict[str, VectorIndex], queries: Matrix,
              repeats: int) -> list[tuple[str, float]]:  # fmt: skip
    """Time ratios of embedkit's graph stores (and VectorIndex) to the library on the same graph.

    usearch for ``hnsw`` (ef_search=64), faiss for ``faiss-hnsw`` (efSearch=64).
    Each pair runs the same query (or batch) through both, in alternating order
    (the second call of a pair finds the graph's nodes in cache), a different
    query each pair; the ratio is of the two medians.
    """
    hnsw, flat = indexes["hnsw"], indexes["faiss-hnsw"]
    ours_u, ours_f = hnsw.store, flat.store
    assert isinstance(ours_u, HnswStore) and isinstance(ours_f, FaissStore)
    ours_u.ef_search = 64
    ours_f.set(efSearch=64)
    graph, index = ours_u.graph, ours_f.index
    batches = [queries[i : i + BATCH] for i in range(0, max(1, len(queries) - BATCH + 1), 97)]
    pairs: dict[str, tuple[Callable[[int], object], Callable[[int], object], int]] = {}
    for lib, vi, store, direct in (
        ("usearch", hnsw, ours_u, lambda q: graph.search(q, K)),
        ("faiss", flat, ours_f, lambda q: index.search(q, K)),
    ):
        pairs |= {
            f"1 query: store.search / {lib}": (
                lambda i, s=store: s.search(queries[i : i + 1], K),
                lambda i, f=direct: f(queries[i : i + 1]),
                len(queries),
            ),
            f"1 query: VectorIndex.search / {lib}": (
                lambda i, v=vi: v.search(queries[i], K),
                lambda i, f=direct: f(queries[i : i + 1]),
                len(queries),
            ),
            f"batch {BATCH}: store.search / {lib}": (
                lambda i, s=store: s.search(batches[i % len(batches)], K),
                lambda i, f=direct: f(batches[i % len(batches)]),
                4 * repeats,
            ),
        }
    out = []
    for name, (ours, theirs, count) in pairs.items():
        times: tuple[list[float], list[float]] = ([], [])
        for i in range(count):
            order = (0, 1) if i % 2 else (1, 0)
            for who in order:
                t0 = time.perf_counter()
                (ours, theirs)[who](i % len(queries))
                times[who].append(time.perf_counter() - t0)
        out.append((name, statistics.median(times[0]) / statistics.median(times[1])))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data", choices=("clustered", "real"), default="clustered")
    parser.add_argument("--cache", type=Path, default=Path("minilm_sentences.npy"))
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for the test suite")
    args = parser.parse_args()
    if args.quick:
        args.n, args.dim, args.queries, args.repeats = 4000, 64, 300, 2
    efs = [16, 64] if args.quick else [16, 32, 64, 128]
    probes = [4, 16] if args.quick else [4, 8, 32]
    singles = (50, 5) if args.quick else (200, 10)
    t0 = time.perf_counter()
    if args.data == "real":
        x, queries = real(args.n, 0, args.cache)
        args.dim = x.shape[1]
    else:
        x, _ = clustered(args.n + args.queries, args.dim, 0)
        x, queries = x[: args.n], x[args.n :]
    print(f"data: {args.data}, N={len(x):,} x {args.dim}, {len(queries)} queries, k={K}, "
          f"made in {time.perf_counter() - t0:.1f} s")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        ours, indexes = embedkit_rows(x, Path(tmp), efs, probes)
        graph = indexes["hnsw"].store.graph  # type: ignore[attr-defined]
        rows = ours + faiss_rows(x, indexes, efs, probes) + usearch_rows(graph, len(x), efs)
        measure(rows, x, queries, args.repeats, singles)
        exact_one = statistics.median(rows[0].times["one"])
        exact_batch = statistics.median(rows[0].times["batch"])
        head = (f"{'method':44s} {'recall@10':>9s} {'1-query QPS':>11s} {'x exact':>8s} "
                f"{'batch QPS':>10s} {'x exact':>8s} {'build s':>8s} {'RAM B/vec':>9s} "
                f"{'disk B/vec':>10s}")  # fmt: skip
        print(head)
        print("-" * len(head))
        for row in rows:
            one = statistics.median(row.times["one"])
            bat = statistics.median(row.times["batch"])
            print(f"{row.name:44s} {row.recall:9.4f} {1 / one:11.0f} {exact_one / one:8.2f} "
                  f"{1 / bat:10.0f} {exact_batch / bat:8.2f} {row.build_s:8.2f} "
                  f"{row.ram:9.0f} {row.disk:10.0f}")  # fmt: skip
        print("\nwrapper overhead (ratio of median times, ef_search=64, the same graph):")
        for name, ratio in overheads(indexes, queries, args.repeats):
            print(f"  {name:42s} {ratio:6.3f}  ({100 * (ratio - 1):+.1f}%)")
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
