"""Indexes larger than RAM, at a size the suite can afford: memory stays bounded.

An index of 200,000 x 384 float32 rows (300 MB) is built block by block with
``IndexWriter`` and searched memory-mapped, each in a fresh process that samples
its anonymous RSS (``RssAnon``: mapped file pages are page cache, not counted).
Neither may grow by half the matrix: a build that kept the rows, or a search
that copied the matrix into RAM, would. ``benchmarks/bench_large.py`` runs the
same at 10M x 384 (15 GB).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from embedkit import VectorIndex
from embedkit.search.kernels import normalize, search

N, DIM, BLOCK = 200_000, 384, 10_000
MATRIX_BYTES = N * DIM * 4

CHILD = r"""
import json, sys, threading
import numpy as np

def anon():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no RssAnon")

class Peak:
    def __enter__(self):
        self.base = self.peak = anon()
        self.stop = threading.Event()
        def run():
            while not self.stop.wait(0.002):
                self.peak = max(self.peak, anon())
        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        return self
    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.peak = max(self.peak, anon())

from embedkit import VectorIndex
from embedkit.search.kernels import normalize
from embedkit.search.writer import IndexWriter

phase, folder, n, dim, block = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])

def rows(r0, m):
    return np.random.default_rng(r0).standard_normal((m, dim), dtype=np.float32)

if phase == "build":
    with Peak() as mem:
        with IndexWriter(folder, dim=dim, spec=None) as out:
            for r0 in range(0, n, block):
                out.add(rows(r0, min(block, n - r0)))
            out.commit()
    print(json.dumps({"growth": mem.peak - mem.base}))
else:
    queries = normalize(rows(-1 % 2**32, 256))
    with Peak() as mem:
        index = VectorIndex.load(folder, mmap=True)
        one = index.store.search(queries[:1], 10)
        batch = index.store.search(queries, 10)
        hits = index.search_batch(queries[:3], 10)
    print(json.dumps({
        "growth": mem.peak - mem.base,
        "mapped": type(index.vectors.base).__name__ if index.vectors.base is not None else "",
        "one": one.indices.tolist(),
        "batch": batch.indices.tolist(),
        "hit_ids": [[h.id for h in row] for row in hits],
    }))
"""


def child(*args: object) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.slow
def test_build_and_search_memory_mapped_in_bounded_memory(tmp_path: Path) -> None:
    folder = tmp_path / "index"
    built = child("build", folder, N, DIM, BLOCK)
    assert isinstance(built["growth"], int)
    assert built["growth"] < MATRIX_BYTES / 2, f"the build grew by {built['growth']:,} bytes"

    found = child("search", folder, N, DIM, BLOCK)
    assert isinstance(found["growth"], int)
    assert found["growth"] < MATRIX_BYTES / 2, f"the search grew by {found['growth']:,} bytes"
    assert found["mapped"] == "memmap"

    # the same results as the kernel over the matrix in RAM (rows generated the same way)
    index = VectorIndex.load(folder)
    assert len(index) == N and index.ids[:3] == [0, 1, 2]
    queries = np.random.default_rng(-1 % 2**32).standard_normal((256, DIM), dtype=np.float32)
    expected = search(normalize(queries), index.vectors, 10)
    assert found["batch"] == expected.indices.tolist()
    assert found["one"] == expected.indices[:1].tolist()
    assert found["hit_ids"] == expected.indices[:3].tolist()  # default ids are the rows


# -- the batch kernel: several workers, each with its own blocks ------------------------------


def test_batch_search_with_workers_keeps_the_tie_rule() -> None:
    """Many queries over many blocks (several workers, sub-products): ties to the lower row."""
    rng = np.random.default_rng(7)
    matrix = rng.integers(-2, 3, size=(20_000, 6)).astype(np.float32)
    queries = rng.integers(-2, 3, size=(120, 6)).astype(np.float32)
    for block_bytes in (2**20, 8 * 2**20):
        got = search(queries, matrix, 12, block_bytes=block_bytes)
        full = queries @ matrix.T
        order = np.argsort(-full, axis=1, kind="stable")[:, :12]  # ties: the lower row first
        assert got.indices.tolist() == order.tolist()
        assert np.array_equal(got.scores, np.take_along_axis(full, order, axis=1))


def test_searches_from_many_threads_restore_the_blas_threads() -> None:
    """The BLAS runs on one thread per worker during a batch search, then as before."""
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_info

    def blas_threads() -> list[int]:
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    before = blas_threads()
    assert before
    rng = np.random.default_rng(8)
    matrix = normalize(rng.standard_normal((30_000, 32), dtype=np.float32))
    queries = normalize(rng.standard_normal((64, 32), dtype=np.float32))
    expected = search(queries, matrix, 5).indices
    with ThreadPoolExecutor(4) as pool:
        found = list(pool.map(lambda _: search(queries, matrix, 5, block_bytes=2**20), range(8)))
    assert all(np.array_equal(f.indices, expected) for f in found)
    assert blas_threads() == before
