"""WordVectors: lookups, OOV errors, search/analogy equal to gensim, batching, save/load."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from embedkit import _folder
from embedkit.errors import (
    ConfigError,
    CorruptFileError,
    DimensionMismatchError,
    InvalidInputError,
    OutOfVocabularyError,
)
from embedkit.search.kernels import normalize, search
from embedkit.words.ranking import cosmul, search_excluding
from embedkit.words.vectors import Neighbor, WordVectors


@functools.cache
def lee_word2vec() -> Any:
    """A real gensim Word2Vec trained on the Lee corpus (seeded, one worker, ~1-2 s)."""
    from gensim.models import Word2Vec
    from gensim.test.utils import datapath

    from embedkit.words.tokenize import simple_tokenize

    with open(datapath("lee_background.cor"), encoding="utf-8") as fh:
        sentences = [simple_tokenize(line) for line in fh]
    return Word2Vec(sentences, vector_size=50, window=5, min_count=2, seed=7, workers=1, epochs=15)


@functools.cache
def lee_words() -> WordVectors:
    from embedkit.words.files import from_keyed_vectors

    return from_keyed_vectors(lee_word2vec().wv)


@pytest.fixture(scope="session")
def kv() -> Any:
    return lee_word2vec().wv


@pytest.fixture(scope="session")
def wv() -> WordVectors:
    return lee_words()


def toy() -> WordVectors:
    """Hand-made vectors where king - man + woman = queen exactly (dims: royal, male, female)."""
    words = ["man", "woman", "king", "queen", "apple", "pear"]
    vectors: list[list[float]] = [
        [0, 1, 0, 0],
        [0, 0, 1, 0],
        [1, 1, 0, 0],
        [1, 0, 1, 0],
        [0, 0, 0, 1],
        [0, 0.1, 0, 1],
    ]
    return WordVectors(words, vectors, counts=[6, 5, 4, 3, 2, 1])


# -- construction and lookups ----------------------------------------------------------
def test_construction_checks() -> None:
    with pytest.raises(InvalidInputError) as err:
        WordVectors(["a", "b", "a"], np.zeros((3, 2)))
    assert err.value.positions == [2]
    with pytest.raises(DimensionMismatchError):
        WordVectors(["a", "b"], np.zeros((3, 2)))
    with pytest.raises(DimensionMismatchError):
        WordVectors(["a"], np.zeros(3))
    with pytest.raises(DimensionMismatchError):
        WordVectors(["a"], np.zeros((1, 2)), counts=[1, 2])


def test_basic_access() -> None:
    w = toy()
    assert len(w) == 6 and w.dim == 4 and "king" in w and "prince" not in w
    assert w.index("queen") == 3 and w.get_index("prince") == -1
    assert w.vectors.dtype == np.float32 and w.counts is not None and w.counts.dtype == np.int64
    np.testing.assert_array_equal(w.vector("king"), [1, 1, 0, 0])
    assert w.oov(["king", "prince", "x", "king"]) == ["prince", "x"]
    assert w.content_id().startswith("sha256:") and w.content_id() == toy().content_id()


def test_oov_errors_are_typed_and_name_the_words() -> None:
    w = toy()
    with pytest.raises(OutOfVocabularyError, match="prince") as err:
        w.vector("prince")
    assert isinstance(err.value, KeyError) and isinstance(err.value, InvalidInputError)
    assert "'prince' is not in the vocabulary" in str(err.value)
    with pytest.raises(OutOfVocabularyError) as err2:
        w.lookup(["king", "prince", "duke"])
    assert err2.value.rows == [(1, "prince"), (2, "duke")]
    zero = w.lookup(["king", "prince"], on_oov="zero")
    np.testing.assert_array_equal(zero[1], np.zeros(4))
    with pytest.raises(ConfigError, match="on_oov"):
        w.lookup(["prince"], on_oov="skip")  # type: ignore[arg-type]
    with pytest.raises(OutOfVocabularyError):
        w.similarity("king", "prince")


def test_subword_function_gives_oov_vectors() -> None:
    calls: list[list[str]] = []

    def subword(words: Any) -> np.ndarray:
        calls.append(list(words))
        return np.full((len(words), 4), 0.5, dtype=np.float32)

    base = toy()
    w = WordVectors(base.words, base.vectors, subword=subword)
    np.testing.assert_array_equal(w.vector("kingg"), np.full(4, 0.5))
    out = w.lookup(["king", "kingg", "qeen"])
    np.testing.assert_array_equal(out[0], [1, 1, 0, 0])
    assert calls[-1] == ["kingg", "qeen"]
    assert w.similarity("kingg", "qeen") == pytest.approx(1.0)


# -- search and analogies ---------------------------------------------------------------
def test_toy_analogy_add_and_mul() -> None:
    w = toy()
    assert w.analogy("man", "king", "woman", k=1)[0].word == "queen"
    assert w.analogy("man", "king", "woman", k=1, method="mul")[0].word == "queen"
    top = w.analogy("man", "king", "woman", k=3)
    assert all(n.word not in ("man", "king", "woman") for n in top)
    assert w.doesnt_match(["man", "king", "queen", "apple"]) == "apple"
    with pytest.raises(ConfigError):
        w.analogy("man", "king", "woman", method="sub")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        w.doesnt_match(["man"])


@pytest.mark.parametrize("method", ["add", "mul"])
def test_analogy_never_answers_the_query_words_even_with_a_large_k(method: str) -> None:
    w = toy()  # 6 words: at most 3 answers once man, king, woman are excluded
    found = w.analogy("man", "king", "woman", k=10, method=method)  # type: ignore[arg-type]
    assert [n.word for n in found][:1] == ["queen"] and len(found) == 3
    assert {n.word for n in found} == {"queen", "apple", "pear"}
    assert all(np.isfinite(n.score) for n in found)
    batch = w.analogy_batch(
        [("man", "king", "woman"), ("apple", "pear", "man")],
        k=5,
        method=method,  # type: ignore[arg-type]
    )
    assert [len(b) for b in batch] == [3, 3]
    assert not {"apple", "pear", "man"} & {n.word for n in batch[1]}


def test_most_similar_equals_gensim(wv: WordVectors, kv: Any) -> None:
    for word in ["government", "police", "australia", "fire", "said"]:
        ours = wv.most_similar(word, k=10)
        theirs = kv.most_similar(word, topn=10)
        assert [n.word for n in ours] == [w for w, _ in theirs]
        np.testing.assert_allclose([n.score for n in ours], [s for _, s in theirs], atol=1e-5)
    vector = kv["fire"] + kv["water"]
    ours = wv.most_similar(vector, k=5)
    assert [n.word for n in ours] == [w for w, _ in kv.similar_by_vector(vector, topn=5)]
    assert isinstance(ours[0], Neighbor)


def test_similarity_and_doesnt_match_equal_gensim(wv: WordVectors, kv: Any) -> None:
    for a, b in [("police", "government"), ("fire", "water"), ("man", "woman")]:
        assert wv.similarity(a, b) == pytest.approx(float(kv.similarity(a, b)), abs=1e-6)
    words = ["australia", "government", "police", "minister", "fire"]
    assert wv.doesnt_match(words) == kv.doesnt_match(words)


@pytest.mark.filterwarnings("ignore:Call to deprecated `init_sims`:DeprecationWarning")
def test_analogies_equal_gensim(wv: WordVectors, kv: Any) -> None:
    questions = [("man", "king", "woman"), ("police", "officers", "fire"), ("he", "his", "she")]
    batch = wv.analogy_batch(questions, k=5)
    for (a, b, c), found in zip(questions, batch, strict=True):
        theirs = kv.most_similar(positive=[b, c], negative=[a], topn=5)
        assert [n.word for n in found] == [w for w, _ in theirs]
        np.testing.assert_allclose([n.score for n in found], [s for _, s in theirs], atol=1e-5)
        single = wv.analogy(a, b, c, k=5)
        assert [n.word for n in single] == [n.word for n in found]
        np.testing.assert_allclose([n.score for n in single], [n.score for n in found], atol=1e-6)
        mul = wv.analogy(a, b, c, k=5, method="mul")
        theirs_mul = kv.most_similar_cosmul(positive=[b, c], negative=[a], topn=5)
        assert [n.word for n in mul] == [w for w, _ in theirs_mul]
        np.testing.assert_allclose([n.score for n in mul], [s for _, s in theirs_mul], atol=1e-5)


def test_most_similar_batch_equals_single(wv: WordVectors) -> None:
    words = ["government", "police", "fire", "australia"]
    batch = wv.most_similar_batch(words, k=7)
    for word, hits in zip(words, batch, strict=True):
        single = wv.most_similar(word, k=7)
        assert [n.word for n in hits] == [n.word for n in single]
        np.testing.assert_allclose([n.score for n in hits], [n.score for n in single], atol=1e-6)
    vectors = wv.lookup(words)
    by_vector = wv.most_similar_batch(vectors, k=8)
    assert [hits[0].word for hits in by_vector] == words  # nothing excluded for raw vectors
    with pytest.raises(DimensionMismatchError):
        wv.most_similar_batch(np.zeros((2, 3)), k=3)


@pytest.mark.parametrize(("n", "q", "k"), [(1000, 40, 8), (6401, 30, 5), (257, 3, 3), (70, 5, 4)])
def test_search_excluding_equals_search_without_the_excluded_rows(n: int, q: int, k: int) -> None:
    rng = np.random.default_rng(n)
    matrix = normalize(rng.standard_normal((n, 16)))
    matrix[7] = matrix[3]  # a tie: the lower row comes first
    queries = normalize(rng.standard_normal((q, 16)))
    queries[0] = matrix[3]
    exclude = [
        rng.choice(n, size=int(rng.integers(0, 4)), replace=False).tolist() for _ in range(q)
    ]
    ranked = search_excluding(queries, matrix, k, exclude)
    assert ranked.counts.tolist() == [k] * q
    full = search(queries, matrix, n)  # every row, best first, ties to the lower row
    for row in range(q):
        kept = [i for i in full.indices[row].tolist() if i not in exclude[row]][:k]
        assert ranked.found.indices[row, :k].tolist() == kept
    assert 3 in ranked.found.indices[0] and ranked.found.indices[0, 0] in (3, 7)
    if 3 not in exclude[0] and 7 not in exclude[0]:
        assert ranked.found.indices[0, :2].tolist() == [3, 7]


@pytest.mark.parametrize("method", ["add", "mul"])
def test_results_never_hold_padding_rows(method: str) -> None:
    w = toy()  # 6 rows; each question leaves out its own (distinct) words
    questions = [("man", "king", "woman"), ("man", "king", "man"), ("apple", "apple", "apple")]
    found = w.analogy_batch(questions, k=10, method=method)  # type: ignore[arg-type]
    assert [len(f) for f in found] == [3, 4, 5]  # fewer than k: fewer results, none padded
    for (a, b, c), hits in zip(questions, found, strict=True):
        assert not {a, b, c} & {n.word for n in hits}
    units = normalize(w.lookup(["man", "king", "woman"])).reshape(1, 3, 4)
    for ranked in (
        search_excluding(
            normalize(units[:, 1] - units[:, 0] + units[:, 2]), w.normed, 10, [[0, 2, 1]]
        ),
        cosmul(w.normed, units, 10, [[0, 2, 1]]),
    ):
        assert ranked.counts.tolist() == [3] and (ranked.top().indices >= 0).all()
    ids = w.analogy_ids([0, 0], [2, 2], [1, 0], 10)  # a TopK: as wide as the fewest answers
    assert ids.indices.shape == (2, 3) and (ids.indices >= 0).all()
    assert not {0, 1, 2} & set(ids.indices[0].tolist())
    assert len(w.most_similar("king", k=50)) == 5 and len(w.most_similar_batch(["x"] * 0)) == 0


def test_limit_keeps_the_first_rows(wv: WordVectors) -> None:
    small = wv.limit(100)
    assert small.words == wv.words[:100] and len(small) == 100
    assert all(n.word in small for n in small.most_similar("said", k=5))


# -- persistence --------------------------------------------------------------------------
def data_file(folder: Path, name: str) -> Path:
    """Where the manifest of ``folder`` keeps the file ``name``."""
    manifest = json.loads((folder / "manifest.json").read_text("utf-8"))
    return folder / manifest["data"] / name


def test_save_load_roundtrip_and_mmap(tmp_path: Path) -> None:
    w = toy()
    folder = w.save(tmp_path / "toy")
    with _folder.read(folder, "words") as snapshot:  # every file listed with size and sha256
        assert sorted(snapshot.sizes) == ["counts.npy", "vectors.npy", "vocab.json"]
        assert snapshot.meta == {"count": 6, "dim": 4}
    assert sorted(p.name for p in data_file(folder, "vectors.npy").parent.iterdir()) == [
        "counts.npy",
        "vectors.npy",
        "vocab.json",
    ]
    back = WordVectors.load(folder, verify=True)
    assert back.words == w.words
    np.testing.assert_array_equal(back.vectors, w.vectors)
    np.testing.assert_array_equal(back.counts, w.counts)  # type: ignore[arg-type]
    mapped = WordVectors.load(folder, mmap=True)
    assert isinstance(mapped.vectors, np.memmap)
    assert mapped.analogy("man", "king", "woman", k=1)[0].word == "queen"


def test_load_rejects_damaged_folders(tmp_path: Path) -> None:
    folder = toy().save(tmp_path / "toy")
    with pytest.raises(CorruptFileError, match="manifest"):
        WordVectors.load(tmp_path)
    vectors = data_file(folder, "vectors.npy")
    raw = bytearray(vectors.read_bytes())
    raw[-1] ^= 0xFF
    vectors.write_bytes(bytes(raw))
    WordVectors.load(folder, verify=False)  # same size: only the sha256 check can notice
    with pytest.raises(CorruptFileError, match="sha256"):
        WordVectors.load(folder)  # verify=True is the default
    with pytest.raises(CorruptFileError, match="sha256"):
        WordVectors.load(folder, verify=True)
    data_file(folder, "vocab.json").write_text(json.dumps(["a"]))
    with pytest.raises(CorruptFileError, match="bytes"):
        WordVectors.load(folder, verify=False)
    (folder / "manifest.json").write_text("{not json")
    with pytest.raises(CorruptFileError, match="JSON"):
        WordVectors.load(folder)


def test_a_save_replaces_the_folder_whole_and_keeps_nothing_outside_the_manifest(
    tmp_path: Path,
) -> None:
    folder = toy().save(tmp_path / "toy")
    WordVectors(["a", "b"], np.eye(2, dtype=np.float32)).save(folder)  # no counts this time
    back = WordVectors.load(folder)
    assert back.words == ["a", "b"] and back.counts is None
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == sorted(
        ["manifest.json", data_file(folder, "vectors.npy").parent.name]
    )
    with _folder.FolderWriter(tmp_path / "other", "index") as writer:
        writer.write_npy("x.npy", np.zeros(2))
        writer.commit()
    with pytest.raises(CorruptFileError, match="holds 'index', not 'words'"):
        WordVectors.load(tmp_path / "other")
