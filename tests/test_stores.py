"""The stores behind VectorIndex: exact, f16, int8 (exact rescoring) and hnsw (usearch).

Each store equals exact brute force where it is exact, keeps recall floors (fixed
seeds) where it is approximate, saves and loads through the one folder format,
detects corruption, keeps the spec/dimension checks, ids, metadata and ``add``.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pytest
from numpy.typing import NDArray

import embedkit
from embedkit import VectorIndex
from embedkit._folder import data_path
from embedkit.errors import (
    ConfigError,
    CorruptFileError,
    DimensionMismatchError,
    MissingDependencyError,
    ModelMismatchError,
)
from embedkit.search import quantized
from embedkit.search.ann import HnswStore
from embedkit.search.faiss_index import FaissStore
from embedkit.search.kernels import normalize, search
from embedkit.search.quantized import F16Store, Int8Store, _widen
from embedkit.search.store import STORES, VectorStore, make_store

KINDS = ["exact", "f16", "int8", "hnsw", "faiss"]
APPROX = {"hnsw", "faiss"}  # graphs and lists: approximate even with a long shortlist
FILES = {
    "exact": {"vectors.npy"},
    "f16": {"vectors.npy", "codes.npy"},
    "int8": {"vectors.npy", "codes.npy", "scales.npy"},
    "hnsw": {"vectors.npy", "hnsw.usearch"},
    "faiss": {"vectors.npy", "index.faiss"},
}
Matrix = NDArray[np.float32]


def clustered(n: int, d: int, seed: int, centres: int = 50, spread: float = 0.8) -> Matrix:
    """Unit rows around ``centres`` random unit centres (what embeddings look like)."""
    rng = np.random.default_rng(seed)
    c = normalize(rng.standard_normal((centres, d)))
    noise = rng.standard_normal((n, d)).astype(np.float32) * spread / np.sqrt(d)
    return normalize(c[rng.integers(0, centres, n)] + noise)


def full(kind: str, dim: int, shortlist: int = 10**6) -> VectorStore:
    """A store of ``kind`` whose f16/int8 shortlist is ``shortlist`` rows for k = 1.

    A shortlist of every row is exact by construction (the exact kernel); one row
    short of that still goes through the scan and the exact rescoring.
    """
    quantized: dict[str, Any] = {"f16": F16Store, "int8": Int8Store}
    if kind in quantized:
        return quantized[kind](dim, rescore=shortlist)  # type: ignore[no-any-return]
    return make_store(kind, dim)


def ids_of(hits: list[list[embedkit.Hit]]) -> list[list[Any]]:
    return [[h.id for h in row] for row in hits]


def recall(got: NDArray[np.int64], truth: NDArray[np.int64]) -> float:
    return float(
        np.mean([len(set(a) & set(b)) / truth.shape[1] for a, b in zip(got, truth, strict=True)])
    )


@pytest.fixture(scope="module")
def data() -> tuple[Matrix, Matrix]:
    x = clustered(2100, 48, seed=1)
    return x[:2000], x[2000:]


# -- kinds and options ------------------------------------------------------------------


def test_kinds_by_name_and_objects() -> None:
    assert set(STORES) == set(KINDS)
    for kind in KINDS:
        index = VectorIndex(8, store=kind)
        assert index.store.kind == kind and isinstance(index.store, VectorStore)
    store = HnswStore(8, ef_search=7, connectivity=8)
    assert VectorIndex(8, store=store).store is store
    with pytest.raises(ConfigError, match="unknown store"):
        VectorIndex(8, store="ivf")
    with pytest.raises(ConfigError, match="dimension 9"):
        VectorIndex(9, store=Int8Store(8))


def test_the_default_graph_is_i8_rescored_to_exact_scores() -> None:
    """hnsw's default: an i8 graph, 4 k candidates, scores the exact float32 cosines."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((600, 24)).astype(np.float32)
    index = VectorIndex.from_vectors(x, store="hnsw")
    store = index.store
    assert isinstance(store, HnswStore) and (store.dtype, store.rescore) == ("i8", 4)
    assert HnswStore(24, dtype="f32").rescore == 1
    unit = index.vectors
    for q in rng.standard_normal((5, 24)).astype(np.float32):
        hits = index.search(q, 5)
        scores = unit[[h.id for h in hits]] @ (q / np.linalg.norm(q))
        np.testing.assert_allclose([h.score for h in hits], scores, atol=1e-6)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Int8Store(8, rescore=0),
        lambda: F16Store(8, rescore=True),
        lambda: HnswStore(8, dtype="f64"),
        lambda: HnswStore(8, connectivity=0),
        lambda: HnswStore(8, ef_search=-1),
        lambda: HnswStore(8, threads=-1),
    ],
)
def test_bad_options_are_config_errors(make: Any) -> None:
    with pytest.raises(ConfigError):
        make()


def test_usearch_is_imported_only_for_hnsw() -> None:
    code = (
        "import sys, numpy as np, embedkit\n"
        "from embedkit.search import ann, quantized, store\n"
        "embedkit.VectorIndex.from_vectors(np.eye(3), store='int8').search(np.ones(3))\n"
        "assert 'usearch' not in sys.modules, 'usearch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_usearch_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "usearch.index", None)  # import fails: not installed
    with pytest.raises(MissingDependencyError, match=r"embedkit\[ann\]"):
        VectorIndex(8, store="hnsw")


# -- exact where exact ------------------------------------------------------------------


@pytest.mark.parametrize("shortlist", [10**6, 199])  # k = 10: every row, or 1990 of 2000
@pytest.mark.parametrize("kind", KINDS)
def test_equals_exact_brute_force_where_exact(
    kind: str, shortlist: int, data: tuple[Matrix, Matrix]
) -> None:
    x, q = data
    index = VectorIndex.from_vectors(x, store=full(kind, x.shape[1], shortlist))
    exact = kind in APPROX  # a graph is approximate: its exact=True path is what is exact
    scores = q.astype(np.float64) @ x.astype(np.float64).T
    truth = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    hits = index.search_batch(q, k=10, exact=exact)
    assert ids_of(hits) == truth.tolist()
    got = np.array([[h.score for h in row] for row in hits])
    np.testing.assert_allclose(got, np.take_along_axis(scores, truth, 1), atol=2e-6)
    single = [index.search(v, k=10, exact=exact) for v in q[:5]]
    assert [[h.id for h in row] for row in single] == truth[:5].tolist()


@pytest.mark.parametrize("kind", KINDS)
def test_ties_go_to_the_lower_row(kind: str) -> None:
    """Equal rows tie exactly (one scoring loop for every candidate): lower row first.

    The approximate graph may miss a row at the k-th place (it is approximate), so
    its default search is checked for the order of what it returns only.
    """
    base = clustered(40, 16, seed=2)
    x = np.concatenate([base, base, base[:10]])  # rows i, i + 40 (and i + 80) are equal
    q = base[:6] + 0.01
    for store in (full(kind, 16), full(kind, 16, 7), make_store(kind, 16)):  # 84 of 90 rows
        index = VectorIndex.from_vectors(x, store=store)
        for exact in (False, True):
            found = index.search_batch(q, k=12, exact=exact)
            want = VectorIndex.from_vectors(x).search_batch(q, k=12)
            if exact or kind not in APPROX:
                assert ids_of(found) == ids_of(want)
            for row in found:
                pairs = [(-h.score, h.id) for h in row]
                assert pairs == sorted(pairs)


@pytest.mark.parametrize("kind", KINDS)
def test_k_beyond_n_and_k_zero(kind: str) -> None:
    x = clustered(7, 8, seed=3)
    index = VectorIndex.from_vectors(x, store=kind)
    assert len(index.search(x[0], k=50)) == 7
    assert index.search(x[0], k=0) == []
    assert VectorIndex(8, store=kind).search(x[0], k=3) == []
    assert ids_of(index.search_batch(x, k=7)) == ids_of(
        VectorIndex.from_vectors(x).search_batch(x, k=7)
    )


def test_hnsw_short_results_never_padded() -> None:
    """Among 300 equal rows the graph finds fewer than k: those queries are answered exactly."""
    x = np.tile(normalize(np.arange(1.0, 9.0))[0], (300, 1))
    store = HnswStore(8, connectivity=2, ef_search=1)
    index = VectorIndex.from_vectors(x, store=store)
    assert store.graph.search(x[:1], 250).keys.size < 250  # usearch alone falls short here
    hits = index.search(x[0], k=250)
    assert [h.id for h in hits] == list(range(250))


def test_f16_widening_is_exact_for_every_finite_half() -> None:
    bits = np.arange(2**16, dtype=np.uint32).astype(np.uint16)
    every = bits.view(np.float16)
    half = every[np.isfinite(every)].reshape(1, -1)
    got = _widen(half, np.empty(half.shape, np.int32)).astype(np.float64) * 2.0**112
    np.testing.assert_array_equal(got, half.astype(np.float64))


def test_int8_scales_are_per_row() -> None:
    x = np.array([[3.0, 4.0, 0.0], [0.0, 0.0, 0.0], [0.0, -1.0, 0.0]], np.float32)
    store = Int8Store(3)
    VectorIndex(3, store=store).add_vectors(x)
    np.testing.assert_allclose(store.scales, [0.8 / 127, 1.0, 1 / 127], rtol=1e-6)
    assert store.codes.tolist() == [[95, 127, 0], [0, 0, 0], [0, -127, 0]]


@pytest.mark.parametrize("dim", [384, 1536])  # exact in float32 up to d = 1040, float64 beyond
def test_int8_dots_are_exact_integers_with_numkong_and_with_numpy(
    dim: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(dim)
    codes = rng.integers(-127, 128, (300, dim)).astype(np.int8)
    codes[0] = 127  # the largest dot products there are
    weights = rng.integers(-127, 128, dim).astype(np.float32)
    weights[:] = 127
    truth = (codes.astype(np.int64) @ weights.astype(np.int64)).astype(np.float32)
    assert quantized._numkong() is not None  # the ann extra brings usearch's numkong
    got = quantized._int_dots(codes, weights, np.empty((300, dim), np.float32))
    monkeypatch.setattr(quantized, "_NUMKONG", None)
    slow = quantized._int_dots(codes, weights, np.empty((300, dim), np.float32))
    np.testing.assert_array_equal(got, truth)
    np.testing.assert_array_equal(slow, truth)


def test_int8_answers_do_not_depend_on_numkong(monkeypatch: pytest.MonkeyPatch) -> None:
    """The int8 scan runs on numkong when installed, else numpy: the same rows, bit for bit."""
    x = clustered(2030, 384, seed=2)
    base, queries = np.concatenate([x[:2000]] * 4), x[2000:]  # repeated rows: ties everywhere
    store = Int8Store(base.shape[1], rescore=3)
    store.add(base)
    assert quantized._numkong() is not None
    fast = [store.search(q[None, :], 10) for q in queries]
    short = [store._shortlist_one(q, 30) for q in queries]
    monkeypatch.setattr(quantized, "_NUMKONG", None)
    assert [store._shortlist_one(q, 30).tolist() for q in queries] == [s.tolist() for s in short]
    for q, want in zip(queries, fast, strict=True):
        got = store.search(q[None, :], 10)
        assert got.indices.tolist() == want.indices.tolist()
        np.testing.assert_array_equal(got.scores, want.scores)


# -- recall floors ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def big() -> tuple[Matrix, Matrix, NDArray[np.int64]]:
    x = clustered(20_200, 64, seed=4, centres=200, spread=1.0)
    base, queries = x[:20_000], x[20_000:]
    return base, queries, search(queries, base, 10).indices


@pytest.mark.parametrize(
    ("store", "floor"),
    [
        (lambda d: Int8Store(d), 0.99),
        (lambda d: F16Store(d), 0.99),
        (lambda d: HnswStore(d), 0.95),
        (lambda d: HnswStore(d, dtype="i8"), 0.95),
        (lambda d: HnswStore(d, dtype="f16"), 0.95),
        (lambda d: FaissStore(d), 0.95),
        (lambda d: FaissStore(d, factory="IVF100,Flat", params={"nprobe": 10}), 0.95),
        (lambda d: FaissStore(d, factory="IVF100,PQ16", params={"nprobe": 10}), 0.9),
    ],
    ids=["int8", "f16", "hnsw", "hnsw-i8", "hnsw-f16", "faiss-hnsw", "faiss-ivf", "faiss-ivfpq"],
)
def test_recall_floors_on_clustered_data(
    big: tuple[Matrix, Matrix, NDArray[np.int64]], store: Any, floor: float
) -> None:
    base, queries, truth = big
    index = VectorIndex.from_vectors(base, store=store(base.shape[1]))
    got = np.array(ids_of(index.search_batch(queries, k=10)))
    assert recall(got, truth) >= floor
    singles = np.array([[h.id for h in index.search(v, k=10)] for v in queries[:20]])
    assert singles.tolist() == got[:20].tolist()  # one query or a batch: the same answer


@pytest.fixture(scope="session")
def minilm_vectors(minilm: embedkit.Embedder, lee_corpus: Path) -> Matrix:
    """Real all-MiniLM-L6-v2 embeddings of 500 Lee-corpus sentences, computed once."""
    import re

    lines = lee_corpus.read_text("utf-8").splitlines()
    sentences = [s for line in lines for s in re.split(r"(?<=[.!?])\s+", line)]
    texts = [s for s in sentences if len(s.split()) >= 4][:500]
    return normalize(minilm.embed(texts))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "floor"), [("int8", 0.99), ("f16", 0.99), ("hnsw", 0.95), ("faiss", 0.95)]
)
def test_recall_floors_on_real_minilm_embeddings(
    minilm_vectors: Matrix, kind: str, floor: float
) -> None:
    base, queries = minilm_vectors[50:], minilm_vectors[:50]
    truth = search(queries, base, 10).indices
    index = VectorIndex.from_vectors(base, store=kind)
    assert recall(np.array(ids_of(index.search_batch(queries, k=10))), truth) >= floor


# -- persistence ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trip(kind: str, data: tuple[Matrix, Matrix], tmp_path: Path) -> None:
    x, q = data
    ids = [f"doc-{i}" for i in range(len(x))]
    meta = [{"n": i} if i % 3 else None for i in range(len(x))]
    index = VectorIndex.from_vectors(x, ids=ids, metadata=meta, spec="hashing?dim=48", store=kind)
    before = index.search_batch(q, k=5)
    folder = index.save(tmp_path / kind)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert set(manifest["files"]) == FILES[kind] | {"ids.json", "metadata.jsonl"}
    assert manifest["meta"]["store"]["kind"] == kind
    assert "rescore" not in str(manifest["meta"]["spec"])  # options never enter the spec
    for mmap in (False, True):
        loaded = VectorIndex.load(folder, mmap=mmap)
        assert type(loaded.store) is type(index.store) and loaded.spec == index.spec
        assert loaded.ids == ids and loaded.metadata == index.metadata
        assert loaded.search_batch(q, k=5) == before
        np.testing.assert_array_equal(loaded.vectors, index.vectors)
        if kind != "exact":  # the float32 copy is memory-mapped after any load
            assert isinstance(loaded.store.vectors.base, np.memmap)


def test_hnsw_options_are_recorded_in_the_folder(tmp_path: Path) -> None:
    x = clustered(500, 16, seed=5)
    store = HnswStore(16, connectivity=8, ef_construction=40, ef_search=20, dtype="f16")
    folder = VectorIndex.from_vectors(x, store=store).save(tmp_path / "h")
    saved = json.loads((folder / "manifest.json").read_text())["meta"]["store"]
    assert saved | {"usearch": None} == {
        "kind": "hnsw", "connectivity": 8, "ef_construction": 40, "ef_search": 20,
        "dtype": "f16", "rescore": 1, "file": "hnsw.usearch", "usearch": None,
    }  # fmt: skip
    loaded = VectorIndex.load(folder).store
    assert isinstance(loaded, HnswStore) and loaded.options() == store.options()
    assert loaded.graph.connectivity == 8 and loaded.graph.expansion_search == 20
    loaded.ef_search = 64
    assert loaded.graph.expansion_search == 64


def test_faiss_options_are_recorded_in_the_folder(tmp_path: Path) -> None:
    x = clustered(2000, 16, seed=5, centres=20)
    store = FaissStore(16, factory="IVF20,Flat", params={"nprobe": 3})
    index = VectorIndex.from_vectors(x, store=store)
    store.set(nprobe=20)  # every list: IVF-Flat is then exact brute force
    assert ids_of(index.search_batch(x[:30], k=5)) == ids_of(
        VectorIndex.from_vectors(x).search_batch(x[:30], k=5)
    )
    folder = index.save(tmp_path / "f")
    saved = json.loads((folder / "manifest.json").read_text())["meta"]["store"]
    assert saved | {"faiss": None} == {
        "kind": "faiss", "factory": "IVF20,Flat", "build": {}, "params": {"nprobe": 20},
        "rescore": 1, "file": "index.faiss", "faiss": None,
    }  # fmt: skip
    loaded = VectorIndex.load(folder).store
    assert isinstance(loaded, FaissStore) and loaded.options() == store.options()
    assert faiss.extract_index_ivf(loaded.index).nprobe == 20
    hnsw = FaissStore(16)
    assert hnsw.options() == {"factory": "HNSW16,Flat", "build": {"efConstruction": 128},
                              "params": {"efSearch": 64}, "rescore": 1}  # fmt: skip
    assert FaissStore(16, factory="IVF8,PQ4").rescore == 4  # compressed codes: rescored


@pytest.mark.parametrize("rescore", [1, 3])
def test_faiss_flat_scores_equal_exact_ones_ranked_or_rescored(rescore: int) -> None:
    """``...Flat`` codes at ``rescore=1``: faiss's own float32 products, only ranked;
    else rescored by embedkit. With every list probed, both equal exact search."""
    x, q = clustered(2000, 16, seed=6, centres=20), clustered(20, 16, seed=7, centres=20)
    store = FaissStore(16, factory="IVF20,Flat", params={"nprobe": 20}, rescore=rescore)
    VectorIndex.from_vectors(x, store=store)
    found, exact = store.search(q, 10), VectorIndex.from_vectors(x).store.search(q, 10)
    assert found.indices.tolist() == exact.indices.tolist()
    np.testing.assert_allclose(found.scores, exact.scores, atol=2e-6)


@pytest.mark.parametrize(
    "make",
    [
        lambda: FaissStore(8, factory="NoSuchIndex"),
        lambda: FaissStore(8, factory=""),
        lambda: FaissStore(8, params={"nprobe": 4}),  # HNSW has no nprobe
        lambda: FaissStore(8, params={"efSearch": True}),
        lambda: FaissStore(8, rescore=0),
        lambda: FaissStore(8).set(nprobe=2),
    ],
)
def test_bad_faiss_options_are_config_errors(make: Any) -> None:
    with pytest.raises(ConfigError):
        make()


def test_faiss_training_needs_enough_rows() -> None:
    with pytest.raises(ConfigError, match="as many rows as lists"):
        VectorIndex.from_vectors(
            clustered(10, 8, seed=1), store=FaissStore(8, factory="IVF64,Flat")
        )


def test_faiss_is_imported_only_for_its_store(monkeypatch: pytest.MonkeyPatch) -> None:
    code = (
        "import sys, numpy as np, embedkit\n"
        "from embedkit.search import faiss_index\n"
        "embedkit.VectorIndex.from_vectors(np.eye(3), store='hnsw').search(np.ones(3))\n"
        "assert 'faiss' not in sys.modules, 'faiss imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    monkeypatch.setitem(sys.modules, "faiss", None)  # import fails: not installed
    with pytest.raises(MissingDependencyError, match=r"embedkit\[faiss\]"):
        VectorIndex(8, store="faiss")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mmap", [False, True])
def test_add_after_load(kind: str, mmap: bool, tmp_path: Path) -> None:
    x = clustered(600, 16, seed=6)
    folder = VectorIndex.from_vectors(x[:400], store=kind).save(tmp_path / kind)
    index = VectorIndex.load(folder, mmap=mmap)
    index.add_vectors(x[400:], ids=list(range(1000, 1200)))
    assert len(index) == len(index.store) == 600
    for v, want in zip(x[400:420], range(1000, 1020), strict=True):
        assert index.search(v, k=1)[0].id == want
    reloaded = VectorIndex.load(index.save(tmp_path / "again"), mmap=mmap)
    assert reloaded.search_batch(x[:50], k=5) == index.search_batch(x[:50], k=5)
    exact = VectorIndex.from_vectors(x, ids=[*range(400), *range(1000, 1200)])
    assert reloaded.search_batch(x[:50], k=5, exact=True) == exact.search_batch(x[:50], k=5)


def _rewrite(folder: Path, name: str, data: bytes) -> None:
    """Replace a file and fix its manifest entry: only the store's own checks can tell."""
    (data_path(folder) / name).write_bytes(data)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"][name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _store_meta(folder: Path, **changes: Any) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["meta"]["store"].update(changes)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _npy(array: NDArray[Any]) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


@pytest.mark.parametrize("kind", KINDS)
def test_corruption_is_detected(kind: str, tmp_path: Path) -> None:
    x = clustered(300, 16, seed=7)
    index = VectorIndex.from_vectors(x, store=kind)
    for name in sorted(FILES[kind]):
        for damage, message in (("flip", "sha256"), ("cut", "bytes")):
            folder = index.save(tmp_path / f"{name}-{damage}")
            path = data_path(folder) / name
            raw = bytearray(path.read_bytes())
            if damage == "flip":
                raw[len(raw) // 2] ^= 0xFF
            path.write_bytes(bytes(raw if damage == "flip" else raw[:-7]))
            with pytest.raises(CorruptFileError, match=message):
                VectorIndex.load(folder)
    if kind == "exact":
        return
    other = {"f16": ("codes.npy", _npy(np.zeros((300, 8), np.float16))),
             "int8": ("codes.npy", _npy(np.zeros((300, 16), np.float16))),
             "hnsw": ("hnsw.usearch", b"not a graph" * 10),
             "faiss": ("index.faiss", b"not an index" * 10)}[kind]  # fmt: skip
    folder = index.save(tmp_path / "swapped")
    _rewrite(folder, *other)
    with pytest.raises(CorruptFileError):
        VectorIndex.load(folder, mmap=True)
    folder = index.save(tmp_path / "options")
    _store_meta(folder, rescore=0)
    with pytest.raises(CorruptFileError, match="options"):
        VectorIndex.load(folder)


def test_int8_bad_scales_and_another_graph_are_refused(tmp_path: Path) -> None:
    x = clustered(200, 16, seed=8)
    folder = VectorIndex.from_vectors(x, store="int8").save(tmp_path / "i")
    _rewrite(folder, "scales.npy", _npy(np.zeros(200, np.float32)))
    with pytest.raises(CorruptFileError, match="scales"):
        VectorIndex.load(folder)
    small = VectorIndex.from_vectors(x[:50], store="hnsw").save(tmp_path / "small")
    folder = VectorIndex.from_vectors(x, store="hnsw").save(tmp_path / "h")
    _rewrite(folder, "hnsw.usearch", (data_path(small) / "hnsw.usearch").read_bytes())
    with pytest.raises(CorruptFileError, match="the manifest says"):
        VectorIndex.load(folder)


@pytest.mark.parametrize("kind", ["f16", "int8", "hnsw", "faiss"])
def test_truncated_underneath_a_memory_map(kind: str, tmp_path: Path) -> None:
    x = clustered(300, 16, seed=9)
    folder = VectorIndex.from_vectors(x, store=kind).save(tmp_path / kind)
    index = VectorIndex.load(folder, mmap=True)
    target = "codes.npy" if kind not in APPROX else "vectors.npy"
    path = data_path(folder) / target
    path.write_bytes(path.read_bytes()[:-64])
    with pytest.raises(CorruptFileError, match="changed size"):
        index.search(x[0], k=3)


# -- the model and dimension checks -----------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_model_and_dimension_checks(kind: str, hashing: embedkit.Embedder, tmp_path: Path) -> None:
    texts = ["a dog runs in the park", "stock markets fell", "a puppy is running", "rain"]
    index = VectorIndex.from_texts(texts, hashing, store=make_store(kind, hashing.dim), cache=False)
    assert index.store.kind == kind
    assert index.search("dog running", k=1)[0].id in (0, 2)
    with pytest.raises(DimensionMismatchError):
        index.search(np.ones(hashing.dim + 1, np.float32))
    with pytest.raises(DimensionMismatchError):
        index.add_vectors(np.ones((1, 3), np.float32))
    index.add(["the dog sleeps"], ids=["late"], cache=False)
    assert len(index.store) == 5
    folder = index.save(tmp_path / kind)
    with pytest.raises(ModelMismatchError):
        VectorIndex.load(folder, embedder="hashing?dim=128")
    loaded = VectorIndex.load(folder, embedder=hashing)
    assert loaded.search("the dog sleeps", k=1)[0].id == "late"
