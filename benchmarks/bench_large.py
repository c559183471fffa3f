"""An index larger than RAM: built block by block on disk, searched memory-mapped.

Builds an N x d float32 index folder (default 10M x 384: 15 GB) with
``IndexWriter`` (the job path's writer: ``embedkit embed --out`` streams through
it), from synthetic clustered unit rows generated block by block, then searches
it memory-mapped through the exact store (``ExactStore.load(mmap=True)``: what
``VectorIndex.search`` runs), and finally as a user would (``VectorIndex.load(...,
mmap=True)``, which also reads ids and metadata). Each phase runs in a fresh
process, so its peak memory is its own; peak *anonymous* RSS (``RssAnon`` of
/proc/self/status, sampled every 5 ms: mapped file pages are page cache, not
anonymous) is reported per phase, with ``VmHWM`` (which counts mapped pages too).

Figures: build throughput (rows/s, MB/s; the time to generate the synthetic rows
is shown apart), one query and a batch of 256 (top-10), each beside its bound
measured in the same process, in turns: for a page-cache-resident matrix, one
query against a plain 2-thread sum over the same mapped matrix (read bandwidth)
and the batch against the fastest plain blocked product ``block @ queries.T``
over it; for a cold read (the file's pages dropped with
``posix_fadvise(DONTNEED)``) one query against a cold sequential read of the
first GiB(s) of the same file.

    python benchmarks/bench_large.py                 # 10M x 384 under /tmp/large (15 GB)
    python benchmarks/bench_large.py --n 200000      # smaller
    python benchmarks/bench_large.py --quick         # tiny, for the test suite
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

K, BATCH, CENTRES = 10, 256, 2000
Matrix = NDArray[np.float32]


# -- memory -------------------------------------------------------------------------------


def status_kib(field: str) -> int:
    """A ``kB`` field of /proc/self/status (0 where there is none)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class PeakAnon:
    """Samples ``RssAnon`` every 5 ms in a thread; ``peak`` is the largest seen (bytes)."""

    def __init__(self) -> None:
        self.peak = status_kib("RssAnon") * 1024
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, status_kib("RssAnon") * 1024)

    def __enter__(self) -> PeakAnon:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, status_kib("RssAnon") * 1024)


# -- data ---------------------------------------------------------------------------------


def clustered_blocks(n: int, d: int, block: int, seed: int) -> Iterator[Matrix]:
    """Unit rows around ``CENTRES`` random unit centres, ``block`` rows at a time."""
    from embedkit.search.kernels import normalize

    rng = np.random.default_rng(seed)
    centres = normalize(rng.standard_normal((CENTRES, d), np.float32))
    for r0 in range(0, n, block):
        m = min(block, n - r0)
        noise = rng.standard_normal((m, d), np.float32)
        noise *= rng.uniform(0.7, 1.2, (m, 1)).astype(np.float32) / np.float32(np.sqrt(d))
        noise += centres[rng.integers(0, CENTRES, m)]
        yield noise


def queries(d: int, count: int) -> Matrix:
    """Queries drawn like the rows (another seed): not in the index."""
    return np.concatenate(list(clustered_blocks(count, d, count, seed=99)))


def drop_cache(path: Path) -> None:
    """Evict ``path``'s pages from the page cache (clean, unmapped pages only)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


# -- phases (each in its own process) -----------------------------------------------------


def phase_build(folder: Path, n: int, d: int, block: int) -> dict[str, Any]:
    from embedkit.search.writer import IndexWriter

    gen = add = 0.0
    with PeakAnon() as mem:
        t_all = time.perf_counter()
        with IndexWriter(folder, dim=d, spec=None) as out:
            blocks = clustered_blocks(n, d, block, seed=1)
            while True:
                t0 = time.perf_counter()
                rows = next(blocks, None)
                gen += time.perf_counter() - t0
                if rows is None:
                    break
                t0 = time.perf_counter()
                out.add(rows)
                add += time.perf_counter() - t0
            t0 = time.perf_counter()
            out.commit()
            commit = time.perf_counter() - t0
        total = time.perf_counter() - t_all
    return {
        "total_s": total,
        "generate_s": gen,
        "add_s": add,
        "commit_s": commit,
        "peak_anon": mem.peak,
        "vmhwm": status_kib("VmHWM") * 1024,
    }


def round_robin(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds of each function, the functions taking turns."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(v) for name, v in times.items()}


def plain_sum(matrix: Matrix, threads: int = 2) -> None:
    """Read every byte of ``matrix`` once: float32 sums of row blocks on ``threads`` threads."""
    step = max(1, 2**26 // (4 * matrix.shape[1]))
    starts = range(0, matrix.shape[0], step)
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda r0: float(matrix[r0 : r0 + step].sum()), starts))


def plain_products(matrix: Matrix, qs: Matrix, rows: int, reuse: bool) -> None:
    """``block @ qs.T`` over the row blocks (into one reused output when ``reuse``)."""
    out = np.empty((rows, qs.shape[0]), np.float32) if reuse else None
    for r0 in range(0, matrix.shape[0], rows):
        block = np.asarray(matrix[r0 : r0 + rows])
        if out is None:
            block @ qs.T
        else:
            np.matmul(block, qs.T, out=out[: block.shape[0]])


def phase_search(folder: Path, repeats: int, cold: bool) -> dict[str, Any]:
    from embedkit import _folder
    from embedkit.search.index import KIND
    from embedkit.search.store import ExactStore

    out: dict[str, Any] = {}
    with PeakAnon() as mem:
        snap = _folder.read(folder, KIND, verify=False)
        store = ExactStore.load(snap, snap.meta, mmap=True)
        matrix = store.vectors
        qs = queries(store.dim, BATCH)
        if cold:  # the first query reads the whole matrix from disk
            t0 = time.perf_counter()
            store.search(qs[:1], K)
            out["cold_one_s"] = time.perf_counter() - t0
            return {**out, "peak_anon": mem.peak, "vmhwm": status_kib("VmHWM") * 1024}
        one = store.search(qs[:1], K)  # warm-up: the pages come into the page cache
        plain_sum(matrix)
        reads: dict[str, Callable[[], object]] = {
            "2-thread sum": lambda: plain_sum(matrix),
            "matrix-vector product": lambda: plain_products(matrix, qs[:1], 2**22, True),
        }
        timed = round_robin({"one": lambda: store.search(qs[:1], K), **reads}, repeats)
        out["one_s"] = timed.pop("one")
        out["read_s"], out["read_how"] = min((v, k) for k, v in timed.items())
        shapes: dict[str, Callable[[], object]] = {}
        for r in (16384,):
            for reuse in (False, True):

                def product(r: int = r, reuse: bool = reuse) -> None:
                    plain_products(matrix, qs, r, reuse)

                shapes[f"{r} rows{', reused output' if reuse else ''}"] = product
        timed = round_robin({"batch": lambda: store.search(qs, K), **shapes}, max(1, repeats // 2))
        out["batch_s"] = timed.pop("batch")
        out["product_s"], out["product_shape"] = min((v, k) for k, v in timed.items())
        batch = store.search(qs, K)  # the batch path and the one-query path agree
        out["batch_matches_one"] = bool(np.array_equal(one.indices, batch.indices[:1]))
        snap.close()
    return {**out, "peak_anon": mem.peak, "vmhwm": status_kib("VmHWM") * 1024}


def phase_index(folder: Path) -> dict[str, Any]:
    from embedkit import VectorIndex

    with PeakAnon() as mem:
        t0 = time.perf_counter()
        index = VectorIndex.load(folder, mmap=True, verify=False)
        load_s = time.perf_counter() - t0
        qs = queries(index.dim, 1)
        t0 = time.perf_counter()
        hits = index.search(qs[0], K)
        one_s = time.perf_counter() - t0
    return {
        "load_s": load_s,
        "one_s": one_s,
        "hits": len(hits),
        "peak_anon": mem.peak,
        "vmhwm": status_kib("VmHWM") * 1024,
    }


def cold_read(path: Path, nbytes: int) -> float:
    """Bytes/s of a cold sequential read of the first ``nbytes`` of ``path`` (16 MiB reads)."""
    drop_cache(path)
    buf = bytearray(16 * 2**20)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        t0 = time.perf_counter()
        done = 0
        while done < nbytes:
            got = fh.readinto(view)
            if not got:
                break
            done += got
        seconds = time.perf_counter() - t0
    drop_cache(path)
    return done / seconds


# -- driver ---------------------------------------------------------------------------------


def run_phase(*args: str) -> dict[str, Any]:
    """Run this script's ``--phase`` in a fresh interpreter; its last line is JSON."""
    done = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"phase {args} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@contextmanager
def workdir(base: Path | None, keep: bool) -> Iterator[Path]:
    if base is None:
        with tempfile.TemporaryDirectory() as tmp:
            yield Path(tmp)
        return
    base.mkdir(parents=True, exist_ok=True)
    try:
        yield base
    finally:
        if not keep:
            shutil.rmtree(base / "index", ignore_errors=True)


def show_build(build: dict[str, Any], n: int, size: int) -> None:
    writer_s = build["add_s"] + build["commit_s"]
    print(
        f"build  {build['total_s']:.1f} s in all: generating the rows {build['generate_s']:.1f}"
        f" s, IndexWriter.add {build['add_s']:.1f} s, commit (fsync + sha256) "
        f"{build['commit_s']:.1f} s -> {n / writer_s:,.0f} rows/s, "
        f"{size / writer_s / 1e6:,.0f} MB/s through the writer; peak anonymous RSS "
        f"{mib(build['peak_anon'])} (VmHWM {mib(build['vmhwm'])})"
    )


def mib(nbytes: float) -> str:
    return f"{nbytes / 2**20:,.0f} MiB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--block", type=int, default=16384, help="rows per IndexWriter.add")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/large"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the index folder")
    parser.add_argument(
        "--skip-build", action="store_true", help="search the index already in DIR/index"
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a temp folder")
    parser.add_argument("--phase", choices=("build", "search", "cold", "index"))
    args = parser.parse_args()
    if args.phase:
        folder = args.dir / "index"
        if args.phase == "build":
            result = phase_build(folder, args.n, args.dim, args.block)
        elif args.phase == "index":
            result = phase_index(folder)
        else:
            result = phase_search(folder, args.repeats, cold=args.phase == "cold")
        print(json.dumps(result))
        return 0
    if args.quick:
        args.n, args.dim, args.repeats, args.block = 20_000, 64, 1, 4096
    base = None if args.quick else args.dir
    with workdir(base, args.keep or args.skip_build) as work:
        common = ["--dir", str(work), "--repeats", str(args.repeats)]
        size = args.n * args.dim * 4
        print(
            f"embedkit larger-than-RAM benchmark: {args.n:,} x {args.dim} float32 "
            f"({size / 1e9:.1f} GB) under {work}, {os.cpu_count()} CPUs; RAM "
            f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB"
        )
        if args.skip_build:
            meta = json.loads((work / "index" / "manifest.json").read_text())["meta"]
            args.n, args.dim = meta["count"], meta["dim"]
            size = args.n * args.dim * 4
            build = {"peak_anon": 0}
            print(f"(searching the {args.n:,} x {args.dim} index built before)")
        else:
            build = run_phase("--phase", "build", "--n", str(args.n), "--dim", str(args.dim),
                              "--block", str(args.block), *common)  # fmt: skip
            show_build(build, args.n, size)
        vectors = next((work / "index").glob("data-*/vectors.npy"))
        drop_cache(vectors)
        cold_bw = cold_read(vectors, min(size, 2 * 2**30))
        cold = run_phase("--phase", "cold", *common)
        cold_bound = size / cold_bw
        print(
            f"cold   1 query {cold['cold_one_s']:.1f} s; bound {cold_bound:.1f} s (file size / "
            f"cold sequential read {cold_bw / 1e6:,.0f} MB/s) -> {cold['cold_one_s'] / cold_bound:.2f}x;"
            f" peak anonymous RSS {mib(cold['peak_anon'])} (VmHWM {mib(cold['vmhwm'])})"
        )
        warm = run_phase("--phase", "search", *common)
        print(
            f"warm   1 query {warm['one_s'] * 1e3:,.0f} ms; bound: the fastest plain read of the "
            f"mapped matrix ({warm['read_how']}) {warm['read_s'] * 1e3:,.0f} ms "
            f"({size / warm['read_s'] / 1e9:.1f} GB/s) -> {warm['one_s'] / warm['read_s']:.2f}x"
        )
        print(
            f"warm   {BATCH} queries {warm['batch_s']:.2f} s; bound: fastest plain product "
            f"({warm['product_shape']}) {warm['product_s']:.2f} s -> "
            f"{warm['batch_s'] / warm['product_s']:.2f}x; peak anonymous RSS "
            f"{mib(warm['peak_anon'])} (VmHWM {mib(warm['vmhwm'])}, mapped pages included); "
            f"one-query and batch results agree: {warm['batch_matches_one']}"
        )
        index = run_phase("--phase", "index", *common)
        print(
            f"index  VectorIndex.load(mmap=True, verify=False) {index['load_s']:.2f} s + 1 query "
            f"{index['one_s'] * 1e3:,.0f} ms: peak anonymous RSS {mib(index['peak_anon'])} "
            "(default ids a range, metadata read from the mapped metadata.jsonl)"
        )
        worst = max(build["peak_anon"], cold["peak_anon"], warm["peak_anon"], index["peak_anon"])
        print(
            f"peak anonymous RSS of build, store searches and VectorIndex: {mib(worst)} "
            f"({'under' if worst < 2**30 else 'OVER'} 1 GiB)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
