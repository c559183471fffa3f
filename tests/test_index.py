"""VectorIndex: building, searching, the model-mismatch guard, persistence and corruption."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import embedkit
import embedkit.errors
from embedkit import VectorIndex
from embedkit._folder import data_path

DOCS = [
    "Dog food with real chicken for adult dogs",
    "Cat treats made from salmon",
    "Dark roast coffee beans",
    "Green tea with jasmine",
    "Puppy food, small kibble for pets",
]


@pytest.fixture
def index(hashing: embedkit.Embedder) -> VectorIndex:
    meta = [{"row": i, "text": t} for i, t in enumerate(DOCS)]
    return VectorIndex.from_texts(DOCS, hashing, ids=[f"d{i}" for i in range(5)], metadata=meta)


def test_search_returns_typed_hits_best_first(index: VectorIndex) -> None:
    hits = index.search("pet food for dogs", k=3)
    assert [h.id for h in hits][:1] in (["d0"], ["d4"])
    assert all(isinstance(h, embedkit.Hit) for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert hits[0].metadata is not None and hits[0].metadata["text"] in DOCS
    assert len(index.search("coffee", k=50)) == 5


def test_search_by_vector_equals_search_by_text(
    index: VectorIndex, hashing: embedkit.Embedder
) -> None:
    by_text = index.search("green tea", k=2)
    by_vec = index.search(hashing.embed(["green tea"])[0], k=2)
    assert by_text == by_vec and by_text[0].id == "d3"


def test_a_float32_vector_query_gets_the_same_answer_as_any_other_form(tmp_path: Path) -> None:
    """search() takes a short path for a float32 (dim,) vector: same hits, same checks."""
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((500, 16)).astype(np.float32)
    meta = [{"row": i} if i % 3 else None for i in range(500)]
    built = VectorIndex.from_vectors(vectors, ids=[f"r{i}" for i in range(500)], metadata=meta)
    built.save(tmp_path / "i")
    for index in (
        built,
        VectorIndex.load(tmp_path / "i"),
        VectorIndex.load(tmp_path / "i", mmap=True),
    ):
        for q in rng.standard_normal((5, 16)).astype(np.float32):
            fast = index.search(q, 4)
            assert (
                fast == index.search(q.astype(np.float64), 4) == index.search_batch(q[None], 4)[0]
            )
            assert [h.metadata for h in fast] == [meta[int(h.id[1:])] for h in fast]
        for bad in (True, -1, 2.0):
            with pytest.raises(embedkit.errors.ConfigError, match="k must be"):
                index.search(vectors[0], bad)  # type: ignore[arg-type]
        with pytest.raises(embedkit.errors.InvalidInputError):
            index.search(np.full(16, np.nan, np.float32))
        with pytest.raises(embedkit.errors.DimensionMismatchError):
            index.search(vectors[0, :8])


def test_search_batch_matches_single_searches_and_brute_force(hashing: embedkit.Embedder) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((3000, 32)).astype(np.float32)
    small_blocks = VectorIndex.from_vectors(vectors)
    small_blocks.block_bytes = 4096  # forces many blocks
    queries = rng.standard_normal((20, 32)).astype(np.float32)
    batch = small_blocks.search_batch(queries, k=7)
    expected = embedkit.cosine_similarity(queries.astype(np.float64), vectors.astype(np.float64))
    for q, hits in enumerate(batch):
        assert [h.id for h in hits] == list(np.argsort(-expected[q], kind="stable")[:7])
        single = small_blocks.search(queries[q], k=7)
        assert [h.id for h in hits] == [h.id for h in single]
        np.testing.assert_allclose([h.score for h in hits], [h.score for h in single], rtol=1e-5)


def test_documents_and_query_from_different_models_are_refused(index: VectorIndex) -> None:
    other = embedkit.load("hashing?dim=256&ngrams=1")  # same width, another model
    with pytest.raises(embedkit.ModelMismatchError, match="same model"):
        index.use_embedder(other)
    with pytest.raises(embedkit.ModelMismatchError):
        VectorIndex(256, spec=index.spec, embedder=other)
    with pytest.raises(embedkit.DimensionMismatchError, match="dimension 3"):
        index.search(np.ones(3, np.float32))


def test_add_texts_and_vectors(index: VectorIndex, hashing: embedkit.Embedder) -> None:
    index.add(["Oolong tea leaves"], ids=["d5"])
    assert len(index) == 6 and index.search("oolong tea", k=1)[0].id == "d5"
    index.add_vectors(
        hashing.embed(["espresso machine"]), ids=["v0"], metadata=[{"kind": "vector"}]
    )
    assert index.search("espresso machine", k=1)[0].metadata == {"kind": "vector"}
    with pytest.raises(embedkit.ConfigError, match="duplicate id"):
        index.add(["again"], ids=["d0"])
    with pytest.raises(embedkit.ConfigError, match="ids"):
        index.add_vectors(hashing.embed(["x", "y"]), ids=["only-one"])
    with pytest.raises(embedkit.InvalidInputError, match="not finite"):
        index.add_vectors(np.full((1, 256), np.nan, np.float32))
    assert len(index) == 7  # failed adds change nothing


def test_zero_vectors_score_zero_not_nan() -> None:
    idx = VectorIndex.from_vectors(np.array([[0.0, 0.0], [1.0, 0.0]], np.float32))
    hits = idx.search(np.array([1.0, 0.0], np.float32), k=2)
    assert [(h.id, h.score) for h in hits] == [(1, 1.0), (0, 0.0)]


def test_save_and_load_round_trip(index: VectorIndex, tmp_path: Path) -> None:
    folder = index.save(tmp_path / "idx")
    data = data_path(folder)
    assert sorted(p.name for p in folder.iterdir()) == [".lock", data.name, "manifest.json"]
    assert sorted(p.name for p in data.iterdir()) == [
        "ids.json",
        "metadata.jsonl",
        "vectors.npy",
    ]
    for mmap in (False, True):
        loaded = VectorIndex.load(folder, mmap=mmap)
        assert loaded.spec == index.spec and loaded.ids == index.ids
        assert loaded.metadata == index.metadata
        # the model is rebuilt from the saved spec: text queries just work
        assert loaded.search("puppy kibble", k=2) == index.search("puppy kibble", k=2)
    assert isinstance(VectorIndex.load(folder, mmap=True).vectors.base, np.memmap)


def test_load_with_a_different_model_is_refused(index: VectorIndex, tmp_path: Path) -> None:
    folder = index.save(tmp_path / "idx")
    with pytest.raises(embedkit.ModelMismatchError):
        VectorIndex.load(folder, embedder="hashing?dim=256&ngrams=3")


def test_metadata_with_numpy_scalars_is_saved_as_json(tmp_path: Path) -> None:
    idx = VectorIndex.from_vectors(
        np.eye(2, dtype=np.float32), metadata=[{"score": np.int64(5)}, None]
    )
    loaded = VectorIndex.load(idx.save(tmp_path / "i"))
    assert loaded.metadata == [{"score": 5}, None]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: _truncate(data_path(f) / "vectors.npy", 8), "bytes"),
        (lambda f: _flip_byte(data_path(f) / "vectors.npy", -5), "sha256"),
        (lambda f: _flip_byte(data_path(f) / "ids.json", 3), "sha256"),
        (lambda f: (f / "manifest.json").unlink(), "no manifest"),
        (lambda f: (f / "manifest.json").write_text("{not json"), "not valid JSON"),
        (lambda f: (data_path(f) / "metadata.jsonl").unlink(), "missing"),
    ],
)
def test_corruption_is_detected(
    index: VectorIndex, tmp_path: Path, damage: object, message: str
) -> None:
    folder = index.save(tmp_path / "idx")
    damage(folder)  # type: ignore[operator]
    with pytest.raises(embedkit.errors.CorruptFileError, match=message):
        VectorIndex.load(folder)


def test_pickled_arrays_are_never_loaded(tmp_path: Path) -> None:
    """A vectors.npy replaced by an object array (a pickle inside) is refused, even with matching manifest."""
    idx = VectorIndex.from_vectors(np.eye(2, dtype=np.float32))
    folder = idx.save(tmp_path / "idx")
    target = data_path(folder) / "vectors.npy"
    np.save(target, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    manifest = json.loads((folder / "manifest.json").read_text())
    data = target.read_bytes()
    import hashlib

    manifest["files"]["vectors.npy"] = {
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(embedkit.errors.CorruptFileError, match="object arrays are refused"):
        VectorIndex.load(folder)


def test_index_without_spec_needs_vectors_or_an_embedder() -> None:
    idx = VectorIndex.from_vectors(np.eye(3, dtype=np.float32))
    with pytest.raises(embedkit.ConfigError, match="no model spec"):
        idx.search("text query")


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path: Path, n: int) -> None:
    path.write_bytes(path.read_bytes()[:-n])
