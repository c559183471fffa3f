"""Pooling formulas (mean / idf / sif) against plain per-text loops, and the OOV policy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embedkit.errors import ConfigError, DimensionMismatchError, OutOfVocabularyError
from embedkit.words.pooling import SIF_A, Pooling, encode
from embedkit.words.vectors import WordVectors

VOCAB = ["the", "cat", "sat", "on", "mat", "dog", "ran"]


def words() -> WordVectors:
    rng = np.random.default_rng(3)
    return WordVectors(VOCAB, rng.standard_normal((len(VOCAB), 5)))


CORPUS = [
    ["the", "cat", "sat", "on", "the", "mat"],
    ["the", "dog", "ran"],
    ["the", "cat", "ran", "zzz"],
    ["a", "dog", "sat"],
]


def test_encode_maps_tokens_and_reports_oov() -> None:
    w = words()
    skip = encode([["the", "cat", "qq"], ["qq", "rr"], []], w, "skip")
    assert skip.ids.tolist() == [0, 1] and skip.offsets.tolist() == [0, 2, 2, 2]
    assert skip.oov == [["qq"], ["qq", "rr"], []] and skip.n_tokens.tolist() == [3, 2, 0]
    assert skip.oov_rate == pytest.approx(3 / 5)
    zero = encode([["the", "qq"]], w, "zero")
    assert zero.ids.tolist() == [0, -1] and zero.offsets.tolist() == [0, 2]
    with pytest.raises(OutOfVocabularyError) as err:
        encode([["the"], ["qq", "the", "rr"], ["xx"]], w, "error")
    assert err.value.rows == [(1, "out of vocabulary: qq, rr"), (2, "out of vocabulary: xx")]
    with pytest.raises(ConfigError, match="on_oov must be one of"):
        encode([["the"]], w, "drop")  # type: ignore[arg-type]
    assert encode([["the", "qq"]], w, on_oov="zero").ids.tolist() == [0, -1]


def mean_loop(w: WordVectors, tokens: list[str], zero_oov: bool) -> np.ndarray:
    rows = [w.vector(t) if t in w else np.zeros(w.dim, np.float32) for t in tokens]
    rows = [r for t, r in zip(tokens, rows, strict=True) if zero_oov or t in w]
    return np.mean(rows, axis=0) if rows else np.zeros(w.dim)


def test_mean_pooling_equals_a_plain_loop() -> None:
    w = words()
    for policy in ("skip", "zero"):
        tokens = encode(CORPUS, w, policy)  # type: ignore[arg-type]
        out = Pooling("mean").pool(tokens, w)
        expected = [mean_loop(w, t, policy == "zero") for t in CORPUS]
        np.testing.assert_allclose(out, expected, atol=1e-6)
        assert out.dtype == np.float32 and out.shape == (len(CORPUS), 5)


def test_idf_pooling_formula() -> None:
    w = words()
    pooling = Pooling.fit("idf", CORPUS, w)
    d = len(CORPUS)
    df = {word: sum(word in doc for doc in CORPUS) for word in VOCAB}
    idf = {word: math.log((1 + d) / (1 + df[word])) + 1 for word in VOCAB}
    assert pooling.weights is not None
    np.testing.assert_allclose(pooling.weights, [idf[v] for v in VOCAB], rtol=1e-6)
    assert pooling.unseen_weight == pytest.approx(math.log(1 + d) + 1)
    text = ["the", "dog", "dog", "mat"]
    expected = sum(idf[t] * w.vector(t) for t in text) / sum(idf[t] for t in text)
    np.testing.assert_allclose(pooling.pool(encode([text], w), w)[0], expected, atol=1e-6)


def test_sif_pooling_formula() -> None:
    w = words()
    pooling = Pooling.fit("sif", CORPUS, w)
    total = sum(len(doc) for doc in CORPUS)
    counts = {v: sum(doc.count(v) for doc in CORPUS) for v in VOCAB}
    weight = {v: SIF_A / (SIF_A + counts[v] / total) for v in VOCAB}
    assert pooling.weights is not None
    np.testing.assert_allclose(pooling.weights, [weight[v] for v in VOCAB], rtol=1e-5)

    def s(doc: list[str]) -> np.ndarray:
        kept = [t for t in doc if t in w]
        return sum(weight[t] * w.vector(t) for t in kept) / len(kept)

    matrix = np.stack([s(doc) for doc in CORPUS])
    u = np.linalg.svd(matrix)[2][0]
    assert pooling.component is not None
    assert abs(float(pooling.component @ u)) == pytest.approx(1.0, abs=1e-5)
    out = pooling.pool(encode(CORPUS, w), w)
    expected = matrix - np.outer(matrix @ u, u)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    np.testing.assert_allclose(out @ pooling.component, 0.0, atol=1e-5)


@pytest.mark.parametrize("method", ["mean", "idf", "sif"])
@pytest.mark.parametrize("policy", ["skip", "zero"])
def test_all_oov_texts_pool_to_zero_never_nan(method: str, policy: str) -> None:
    w = words()
    pooling = Pooling.fit(method, CORPUS, w)  # type: ignore[arg-type]
    out = pooling.pool(encode([["qq", "rr"], [], ["the", "cat"]], w, policy), w)  # type: ignore[arg-type]
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out[:2], 0.0)
    assert np.abs(out[2]).sum() > 0


def test_unfitted_and_mismatched_weights_are_errors() -> None:
    w = words()
    with pytest.raises(ConfigError, match="fit it on a corpus"):
        Pooling("sif").pool(encode([["the"]], w), w)
    with pytest.raises(ConfigError):
        Pooling("max")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="non-empty corpus"):
        Pooling.fit("idf", [], w)
    with pytest.raises(ConfigError, match="no token"):
        Pooling.fit("sif", [["qq", "rr"], []], w)
    other = WordVectors(["x", "y"], np.eye(2))
    fitted = Pooling.fit("idf", [["x"]], other)
    with pytest.raises(DimensionMismatchError):
        fitted.pool(encode([["the"]], w), w)


def test_subword_tokens_get_vectors_and_the_unseen_weight() -> None:
    base = words()

    def subword(items: object) -> np.ndarray:
        return np.ones((len(items), 5), dtype=np.float32)  # type: ignore[arg-type]

    w = WordVectors(base.words, base.vectors, subword=subword)
    tokens = encode([["the", "kat", "kat", "dgo"]], w, "skip")
    assert tokens.extra == ["kat", "dgo"] and tokens.ids.tolist() == [0, 7, 7, 8]
    assert tokens.oov == [["kat", "kat", "dgo"]]
    out = Pooling("mean").pool(tokens, w)[0]
    np.testing.assert_allclose(out, (base.vector("the") + 3 * np.ones(5)) / 4, atol=1e-6)
    plain_idf = Pooling.fit("idf", CORPUS, base)
    subword_idf = Pooling.fit("idf", [[*doc, "kat", "dgo"] for doc in CORPUS], w)
    assert subword_idf.weights is not None and plain_idf.weights is not None
    np.testing.assert_allclose(subword_idf.weights, plain_idf.weights)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.lists(st.sampled_from([*VOCAB, "oov1", "oov2"]), min_size=0, max_size=8),
        min_size=1,
        max_size=12,
    )
)
def test_vectorised_mean_equals_loop_for_any_texts(docs: list[list[str]]) -> None:
    w = words()
    out = Pooling("mean").pool(encode(docs, w, "skip"), w)
    expected = [mean_loop(w, doc, zero_oov=False) for doc in docs]
    np.testing.assert_allclose(out, expected, atol=1e-5)
