"""normalize, cosine_similarity, top_k and the blocked exact search.

References are computed in float64 (or with integer-valued vectors, whose float32
products are exact, so that ties are real and tie-breaking can be checked).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

import embedkit
from embedkit import ConfigError, DimensionMismatchError, TopK, cosine_similarity, normalize, top_k
from embedkit.search import kernels as sim
from embedkit.search import topk
from embedkit.search.kernels import search

RNG = np.random.default_rng(20261129)


def reference_top_k(
    scores: NDArray[np.float64], k: int
) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """Full sort in float64: best first, ties to the lower column (stable sort)."""
    k = min(k, scores.shape[1])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(scores, order, axis=1)


def int_vectors(n: int, d: int, low: int = -3, high: int = 4) -> NDArray[np.float32]:
    """Small integers as float32: exact products, many genuine ties."""
    return RNG.integers(low, high, size=(n, d)).astype(np.float32)


# -- normalize ------------------------------------------------------------------------------


def test_normalize_gives_unit_rows_and_keeps_zero_rows_zero() -> None:
    x = np.array(
        [[3.0, 4.0], [0.0, 0.0], [-1e-30, 0.0], [1e30, 1e30], [3e38, -3e38]], dtype=np.float32
    )
    for rows in (x, x[[4]], x[[3]]):  # several rows, and the one-row path
        with np.errstate(all="raise"):
            out = normalize(rows)
        assert out.dtype == np.float32 and out.shape == rows.shape and np.isfinite(out).all()
        nonzero = (rows != 0).any(axis=1)
        np.testing.assert_allclose(np.linalg.norm(out[nonzero], axis=1), 1.0, rtol=1e-6)
    out = normalize(x)
    np.testing.assert_allclose(out[0], [0.6, 0.8], rtol=1e-6)
    assert (out[1] == 0).all()
    np.testing.assert_allclose(out[4], [0.70710677, -0.70710677], rtol=1e-6)  # norm > float32


def test_one_query_takes_a_short_path_with_the_same_result_and_checks() -> None:
    from embedkit.errors import InvalidInputError
    from embedkit.search.rows import query_rows, unit_rows

    cases = [RNG.standard_normal(6).astype(np.float32), np.zeros(6, np.float32),
             np.full(6, 3e38, np.float32), np.full(6, 1e-30, np.float32),
             np.full(6, 1e19, np.float32)]  # fmt: skip
    for vector in cases:
        for shaped in (vector, vector[None, :]):
            got, want = query_rows(shaped, 6), unit_rows(vector[None, :], 6, "queries")
            assert got.shape == (1, 6) and got.dtype == np.float32
            assert got.tobytes() == want.tobytes()  # bit for bit
            assert abs(float(np.linalg.norm(got)) - (1.0 if vector.any() else 0.0)) < 1e-6
    bad = np.array([1, np.nan, 2, 3, 4, 5], np.float32)
    with pytest.raises(InvalidInputError, match="NaN or infinity"):
        query_rows(bad, 6)
    with pytest.raises(DimensionMismatchError):
        query_rows(np.ones((6, 1), np.float32), 6)  # as many values, not one query
    with pytest.raises(DimensionMismatchError):
        query_rows(np.ones(5, np.float32), 6)


def test_normalize_accepts_a_vector_and_lists() -> None:
    assert normalize([0.0, 2.0]).tolist() == [[0.0, 1.0]]
    assert normalize(np.zeros((0, 5))).shape == (0, 5)


def test_normalize_rejects_3d() -> None:
    with pytest.raises(DimensionMismatchError, match="1-D or 2-D"):
        normalize(np.zeros((2, 2, 2)))


# -- cosine_similarity ------------------------------------------------------------------------


def test_cosine_similarity_contract_against_float64() -> None:
    a = RNG.standard_normal((7, 33)).astype(np.float32)
    b = RNG.standard_normal((5, 33)).astype(np.float32)
    res = cosine_similarity(a, b)
    assert res.shape == (7, 5) and res.dtype == np.float32
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    for i in range(7):
        for j in range(5):
            expected = a64[i] @ b64[j] / (np.linalg.norm(a64[i]) * np.linalg.norm(b64[j]))
            assert res[i, j] == pytest.approx(expected, abs=1e-6)


def test_cosine_similarity_of_1d_inputs_is_1_by_1() -> None:
    res = cosine_similarity([1.0, 0.0], [1.0, 1.0])
    assert res.shape == (1, 1)
    assert res[0, 0] == pytest.approx(np.sqrt(0.5))


def test_cosine_similarity_with_zero_vectors_is_zero_not_nan() -> None:
    a = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]], dtype=np.float32)
    with np.errstate(all="raise"):
        res = cosine_similarity(a, a)
    assert res.tolist()[0] == [0.0, 0.0]
    assert res[1, 1] == pytest.approx(1.0)


def test_cosine_similarity_dimension_mismatch() -> None:
    with pytest.raises(DimensionMismatchError, match="3 vs 4"):
        cosine_similarity(np.ones((2, 3)), np.ones((2, 4)))
    assert issubclass(DimensionMismatchError, ValueError)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 6),
    st.integers(1, 6),
    st.integers(1, 8),
    st.integers(0, 2**32 - 1),
)
def test_cosine_similarity_is_bounded_and_symmetric(n: int, m: int, d: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, d)).astype(np.float32) * rng.choice([1e-3, 1.0, 1e3])
    b = rng.standard_normal((m, d)).astype(np.float32)
    res = cosine_similarity(a, b)
    assert np.all(np.abs(res) <= 1.0 + 1e-6)
    np.testing.assert_allclose(res, cosine_similarity(b, a).T, atol=1e-6)


# -- top_k ------------------------------------------------------------------------------------


def test_top_k_best_first_with_scores() -> None:
    s = np.array([[0.1, 0.9, 0.5, 0.7], [4.0, 3.0, 2.0, 1.0]], dtype=np.float32)
    found = top_k(s, 2)
    assert isinstance(found, TopK)
    assert found.indices.tolist() == [[1, 3], [0, 1]]
    np.testing.assert_allclose(found.scores, [[0.9, 0.7], [4.0, 3.0]])
    assert found.indices.dtype == np.int64 and found.scores.dtype == np.float32


def test_top_k_with_k_larger_than_n_returns_everything_sorted() -> None:
    found = top_k([0.2, 0.8, 0.5], 10)
    assert found.indices.tolist() == [[1, 2, 0]]


def test_top_k_with_k_zero_or_negative_is_empty() -> None:
    for k in (0, -3):
        found = top_k(np.ones((3, 5)), k)
        assert found.indices.shape == (3, 0) and found.scores.shape == (3, 0)


def test_top_k_ties_go_to_the_lower_index() -> None:
    s = np.array([[1.0, 5.0, 5.0, 1.0, 5.0, 5.0, 0.0]], dtype=np.float32)
    assert top_k(s, 3).indices.tolist() == [[1, 2, 4]]
    assert top_k(np.zeros((2, 100)), 4).indices.tolist() == [[0, 1, 2, 3]] * 2


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 5), st.integers(1, 300), st.integers(0, 40), st.integers(0, 2**32 - 1))
def test_top_k_equals_a_stable_full_sort(q: int, n: int, k: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    s = rng.integers(-4, 5, size=(q, n)).astype(np.float32)  # many ties
    found = top_k(s, k)
    idx, vals = reference_top_k(s.astype(np.float64), k)
    assert found.indices.tolist() == idx.tolist()
    assert found.scores.tolist() == vals.tolist()


# -- search -----------------------------------------------------------------------------------


def assert_search_matches_full_product(
    queries: NDArray[np.float32], matrix: NDArray[np.float32], k: int, block_bytes: int
) -> None:
    got = search(queries, matrix, k, block_bytes=block_bytes)
    idx, vals = reference_top_k(queries.astype(np.float64) @ matrix.T.astype(np.float64), k)
    assert got.indices.tolist() == idx.tolist()
    assert got.scores.tolist() == vals.tolist()


@pytest.mark.parametrize("block_bytes", [4, 256, 40_000, 2**20, sim.DEFAULT_BLOCK_BYTES])
@pytest.mark.parametrize(
    ("q", "n", "d", "k"),
    [(1, 1, 1, 1), (1, 50, 3, 10), (3, 2000, 8, 10), (17, 600, 16, 7), (2, 700, 5, 700)],
)
def test_search_equals_top_k_of_the_full_product_with_ties(
    q: int, n: int, d: int, k: int, block_bytes: int
) -> None:
    """Integer vectors make exact float32 products and many tied scores."""
    assert_search_matches_full_product(int_vectors(q, d), int_vectors(n, d), k, block_bytes)


def test_search_ties_across_blocks_go_to_the_lower_row() -> None:
    matrix = np.ones((10_000, 4), dtype=np.float32)  # every score ties
    found = search(np.ones(4, dtype=np.float32), matrix, 5, block_bytes=64)
    assert found.indices.tolist() == [[0, 1, 2, 3, 4]]
    matrix[[9_999, 7_000, 3]] = 2.0
    found = search(np.ones((2, 4), dtype=np.float32), matrix, 5, block_bytes=4096)
    assert found.indices.tolist() == [[3, 7_000, 9_999, 0, 1]] * 2


@pytest.mark.parametrize(
    ("q", "n", "k", "block_bytes"),
    [
        (1, 50, 10, 2**20),
        (5, 3000, 7, 4_000),
        (40, 30_000, 10, 40 * 4 * 3000),
        (40, 30_000, 1, 40 * 4 * 3000),
        (64, 9_000, 3, 2**26),
    ],
)
def test_search_leaves_out_the_excluded_rows(q: int, n: int, k: int, block_bytes: int) -> None:
    """``exclude`` equals scoring those rows ``-inf``: for one query, small blocks, the
    group shortcut and the parallel workers; ``-1`` padding and rows past ``n`` ignored."""
    queries, matrix = int_vectors(q, 6, -1, 2), int_vectors(n, 6, -1, 2)
    exclude = RNG.integers(-1, n + 5, size=(q, 4)).astype(np.int64)
    exclude[:, 0] = np.argmax(queries @ matrix.T, axis=1)  # the best row goes for sure
    full = queries.astype(np.float64) @ matrix.T.astype(np.float64)
    for row, items in enumerate(exclude):
        full[row, items[(items >= 0) & (items < n)]] = -np.inf
    idx, vals = reference_top_k(full, k)
    got = search(queries, matrix, k, block_bytes=block_bytes, exclude=exclude)
    assert got.indices.tolist() == idx.tolist()
    assert got.scores.tolist() == vals.tolist()


def test_search_refuses_an_exclude_of_the_wrong_type_or_length() -> None:
    queries, matrix = int_vectors(3, 4), int_vectors(100, 4)
    bad_ones = (np.zeros((3, 2), np.int32), np.zeros((2, 2), np.int64), np.zeros(3, np.int64))
    for bad in (*bad_ones, [[1], [2], [3]]):
        with pytest.raises(ConfigError, match="exclude must be a 2-D int64 array of 3"):
            search(queries, matrix, 5, exclude=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("k", [1, 2, 3, 10])
def test_search_with_grouped_ranking_on_many_ties(k: int) -> None:
    """Blocks large enough for the group shortcut (both group sizes), tied group maxima
    included."""
    queries, matrix = int_vectors(40, 6, -1, 2), int_vectors(30_000, 6, -1, 2)
    for block_bytes in (40 * 4 * 3000, sim.DEFAULT_BLOCK_BYTES):
        assert_search_matches_full_product(queries, matrix, k, block_bytes)


@settings(max_examples=50, deadline=None)
@given(
    q=st.integers(1, 12),
    n=st.integers(1, 3000),
    d=st.integers(1, 12),
    k=st.integers(0, 60),
    block_bytes=st.sampled_from([1, 64, 5_000, 100_000, 2**22]),
    seed=st.integers(0, 2**32 - 1),
)
def test_search_property_equals_full_sort(
    q: int, n: int, d: int, k: int, block_bytes: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    queries = rng.integers(-3, 4, size=(q, d)).astype(np.float32)
    matrix = rng.integers(-3, 4, size=(n, d)).astype(np.float32)
    assert_search_matches_full_product(queries, matrix, k, block_bytes)


@pytest.mark.parametrize("d", [384, 1536])
def test_search_float_vectors_give_the_float64_top_10_sets(d: int) -> None:
    """Real-valued unit vectors: same top-10 sets as float64 brute force."""
    matrix = normalize(RNG.standard_normal((8_000, d), dtype=np.float32))
    queries = normalize(RNG.standard_normal((12, d), dtype=np.float32))
    got = search(queries, matrix, 10, block_bytes=12 * 4 * 3_000)
    exact = queries.astype(np.float64) @ matrix.T.astype(np.float64)
    idx, vals = reference_top_k(exact, 10)
    for row in range(12):
        assert set(got.indices[row].tolist()) == set(idx[row].tolist())
    np.testing.assert_allclose(got.scores, vals, atol=1e-5)
    assert (np.diff(got.scores, axis=1) <= 0).all()


def test_search_does_not_build_the_full_score_matrix(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every matrix product made by search stays within block_bytes of scores."""
    largest = 0
    real = topk.block_top_k

    def spy(
        scores: NDArray[np.float32], k: int, above: NDArray[np.float32] | None = None
    ) -> tuple[NDArray[np.int64], TopK]:
        nonlocal largest
        largest = max(largest, scores.nbytes)
        return real(scores, k, above)

    monkeypatch.setattr(topk, "block_top_k", spy)
    queries, matrix = int_vectors(64, 8), int_vectors(50_000, 8)
    got = search(queries, matrix, 5, block_bytes=2**20)
    assert 0 < largest <= 2**20 < queries.shape[0] * matrix.shape[0] * 4
    monkeypatch.undo()
    assert got.indices.tolist() == search(queries, matrix, 5).indices.tolist()


def test_search_on_a_memmap(tmp_path: Path) -> None:
    matrix = int_vectors(9_000, 12)
    path = tmp_path / "vectors.npy"
    np.save(path, matrix, allow_pickle=False)
    mapped = np.load(path, mmap_mode="r", allow_pickle=False)
    assert isinstance(mapped, np.memmap)
    queries = int_vectors(5, 12)
    for block_bytes in (1_000, 2**20):
        assert_search_matches_full_product(queries, mapped, 10, block_bytes)


def test_search_accepts_one_vector_and_other_dtypes() -> None:
    matrix = int_vectors(300, 5)
    one = search(matrix[7].astype(np.float64), matrix.astype(np.float64), 3)
    assert one.indices.shape == (1, 3)
    assert one.scores.dtype == np.float32 and one.indices.dtype == np.int64
    assert one.indices.tolist() == search(matrix[7:8], matrix, 3).indices.tolist()


def test_search_empty_cases() -> None:
    matrix = int_vectors(10, 3)
    assert search(np.empty((0, 3), np.float32), matrix, 5).indices.shape == (0, 5)
    assert search(matrix[:2], matrix, 0).indices.shape == (2, 0)
    assert search(matrix[:2], np.empty((0, 3), np.float32), 5).scores.shape == (2, 0)
    assert search(matrix[:2], matrix, 50).indices.shape == (2, 10)


def test_search_dimension_mismatch_names_both_dimensions() -> None:
    with pytest.raises(DimensionMismatchError, match="query dimension 4 != index dimension 3"):
        search(np.ones((1, 4), np.float32), np.ones((5, 3), np.float32), 2)
    with pytest.raises(DimensionMismatchError):
        search(np.ones(3, np.float32), np.ones(3, np.float32), 2)


def test_vector_index_search_uses_the_blocked_search(tmp_path: Path) -> None:
    """VectorIndex with a tiny block budget, in RAM and memory-mapped, agrees with top_k."""
    vectors = normalize(RNG.standard_normal((3_000, 16)).astype(np.float32))
    index = embedkit.VectorIndex.from_vectors(vectors, spec="test:random")
    index.block_bytes = 512
    queries = RNG.standard_normal((4, 16)).astype(np.float32)
    expected = top_k(normalize(queries) @ index.vectors.T, 5).indices
    got = index.search_batch(queries, k=5)
    assert [[h.id for h in hits] for hits in got] == expected.tolist()
    loaded = embedkit.VectorIndex.load(index.save(tmp_path / "ix"), mmap=True)
    loaded.block_bytes = 512
    assert [[h.id for h in hits] for hits in loaded.search_batch(queries, k=5)] == expected.tolist()
