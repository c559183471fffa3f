"""GloVe: co-occurrence counts, the AdaGrad fit against a per-entry reference, and Lee training."""

from __future__ import annotations

import itertools
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

import embedkit
from embedkit import train_glove
from embedkit.backends.gensim import GloVeEmbedder
from embedkit.backends.gensim_train import TrainedGloVe
from embedkit.errors import ConfigError
from embedkit.words.glove import build_vocab, cooccurrence, fit_glove, glove_weights


def _brute_cooccurrence(
    texts: list[list[str]], vocab: dict[str, int], window: int, symmetric: bool
) -> dict[tuple[int, int], float]:
    counts: dict[tuple[int, int], float] = defaultdict(float)
    for tokens in texts:
        ids = [vocab[t] for t in tokens if t in vocab]
        for q, right in enumerate(ids):
            for p in range(max(0, q - window), q):
                counts[ids[p], right] += 1.0 / (q - p)
                if symmetric:
                    counts[right, ids[p]] += 1.0 / (q - p)
    return counts


@pytest.mark.parametrize("symmetric", [True, False])
def test_cooccurrence_equals_the_definition(symmetric: bool) -> None:
    rng = np.random.default_rng(0)
    alphabet = [f"w{i}" for i in range(12)] + ["oov"]
    texts = [list(rng.choice(alphabet, size=rng.integers(0, 15))) for _ in range(40)]
    vocab = {f"w{i}": i for i in range(12)}
    got = cooccurrence(texts, vocab, window=3, symmetric=symmetric, batch_tokens=50)
    want = _brute_cooccurrence(texts, vocab, 3, symmetric)
    dense = np.zeros((12, 12))
    for (i, j), v in want.items():
        dense[i, j] = v
    np.testing.assert_allclose(got.toarray(), dense, rtol=1e-12)


def test_window_never_crosses_texts_and_oov_tokens_are_dropped_first() -> None:
    vocab = {"a": 0, "b": 1}
    x = cooccurrence([["a"], ["b"]], vocab, window=5).toarray()
    assert not x.any()
    x = cooccurrence([["a", "zzz", "b"]], vocab, window=1).toarray()
    assert x[0, 1] == x[1, 0] == 1.0  # distance 1 once "zzz" is gone, as in cooccur.c


def test_build_vocab_orders_by_count_then_word() -> None:
    words, counts = build_vocab([["b", "a", "c", "a"], ["c", "d"]], min_count=2)
    assert words == ["a", "c"] and counts.tolist() == [2, 2]
    assert build_vocab([["b", "a", "c", "a"], ["c", "d"]], min_count=1, limit=3)[0] == [
        "a",
        "c",
        "b",
    ]
    with pytest.raises(ConfigError, match="limit"):
        build_vocab([["a"]], min_count=1, limit=0)


def test_weighting_function() -> None:
    x = np.array([1.0, 50.0, 100.0, 400.0])
    np.testing.assert_allclose(glove_weights(x, 100.0, 0.75), [0.01**0.75, 0.5**0.75, 1, 1])


def _reference_fit(
    matrix: sp.coo_matrix, dim: int, epochs: int, lr: float, seed: int
) -> list[np.ndarray]:
    """The paper's update, one non-zero at a time, same initialisation and order as fit_glove."""
    rng = np.random.default_rng(seed)
    n = matrix.shape[0]
    w = ((rng.random((n, dim)) - 0.5) / dim).astype(np.float64)
    c = ((rng.random((n, dim)) - 0.5) / dim).astype(np.float64)
    bw = ((rng.random(n) - 0.5) / dim).astype(np.float64)
    bc = ((rng.random(n) - 0.5) / dim).astype(np.float64)
    gw, gc, gbw, gbc = np.ones((n, dim)), np.ones((n, dim)), np.ones(n), np.ones(n)
    rows, cols, data = matrix.row, matrix.col, matrix.data
    for _ in range(epochs):
        for e in rng.permutation(data.size):
            i, j, x = rows[e], cols[e], data[e]
            f = min(1.0, (x / 100.0) ** 0.75)
            fdiff = f * (w[i] @ c[j] + bw[i] + bc[j] - np.log(x))
            g_w, g_c = fdiff * c[j], fdiff * w[i]
            gw[i] += g_w**2
            gc[j] += g_c**2
            gbw[i] += fdiff**2
            gbc[j] += fdiff**2
            w[i] -= lr * g_w / np.sqrt(gw[i])
            c[j] -= lr * g_c / np.sqrt(gc[j])
            bw[i] -= lr * fdiff / np.sqrt(gbw[i])
            bc[j] -= lr * fdiff / np.sqrt(gbc[j])
    return [w, c, bw, bc]


def test_vectorised_fit_equals_the_per_entry_update_with_batch_size_one() -> None:
    rng = np.random.default_rng(1)
    dense = np.where(rng.random((6, 6)) < 0.6, rng.integers(1, 200, (6, 6)), 0).astype(float)
    matrix = sp.coo_matrix(dense)
    fit = fit_glove(matrix, dim=4, epochs=3, batch_size=1, learning_rate=0.1, seed=5)
    want = _reference_fit(matrix, 4, 3, 0.1, 5)
    got = [fit.word_vectors, fit.context_vectors, fit.word_bias, fit.context_bias]
    for g, r in zip(got, want, strict=True):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-6)


def test_minibatches_sum_the_gradients_of_repeated_rows() -> None:
    # one batch holding every entry: each row's step uses the sum of its gradients
    matrix = sp.coo_matrix(np.array([[0.0, 3.0, 5.0], [3.0, 0.0, 1.0], [5.0, 1.0, 0.0]]))
    one = fit_glove(matrix, dim=3, epochs=1, batch_size=1_000, seed=2, learning_rate=0.05)
    rng = np.random.default_rng(2)
    w = ((rng.random((3, 3)) - 0.5) / 3).astype(np.float32)
    c = ((rng.random((3, 3)) - 0.5) / 3).astype(np.float32)
    bw = ((rng.random(3) - 0.5) / 3).astype(np.float32)
    bc = ((rng.random(3) - 0.5) / 3).astype(np.float32)
    i, j, x = matrix.row, matrix.col, matrix.data
    fdiff = glove_weights(x, 100, 0.75) * (np.sum(w[i] * c[j], 1) + bw[i] + bc[j] - np.log(x))
    grad = np.zeros((3, 3))
    np.add.at(grad, i, fdiff[:, None] * c[j])
    np.testing.assert_allclose(one.word_vectors, w - 0.05 * grad / np.sqrt(1 + grad**2), rtol=1e-4)


def test_fit_is_deterministic_and_rejects_bad_options() -> None:
    matrix = sp.coo_matrix(np.array([[0.0, 2.0], [2.0, 1.0]]))
    a = fit_glove(matrix, dim=3, epochs=4, seed=9)
    b = fit_glove(matrix, dim=3, epochs=4, seed=9)
    np.testing.assert_array_equal(a.vectors, b.vectors)
    assert len(a.loss_history) == 4
    with pytest.raises(ConfigError, match="dim=0"):
        fit_glove(matrix, dim=0)
    with pytest.raises(ConfigError, match="square"):
        fit_glove(sp.coo_matrix(np.ones((2, 3))))
    with pytest.raises(ConfigError, match="no positive entries"):
        fit_glove(sp.coo_matrix((3, 3)))
    with pytest.raises(ConfigError, match="diverged"):
        fit_glove(matrix, dim=3, epochs=2, learning_rate=1e30)


# -- the real thing -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def lee_glove(lee_corpus: Path) -> TrainedGloVe:
    return train_glove(lee_corpus, dim=50, min_count=5, epochs=25, x_max=10.0, seed=0)


def test_glove_on_lee_loss_falls_and_neighbours_make_sense(lee_glove: TrainedGloVe) -> None:
    history = lee_glove.loss_history
    assert len(history) == 25
    assert history[-1] < 0.5 * history[0]
    assert all(b < a for a, b in itertools.pairwise(history))
    assert lee_glove.fit.loss(_lee_matrix(lee_glove), x_max=10.0) < history[0]
    words = lee_glove.words
    near = {w: [n.word for n in words.most_similar(w, 10)] for w in ("police", "israeli")}
    assert {"officers", "officials"} & set(near["police"]), near
    assert {"palestinian", "army", "security"} & set(near["israeli"]), near


def _lee_matrix(model: TrainedGloVe) -> object:
    from gensim.test.utils import datapath

    from embedkit.words.corpus import TokenizedCorpus

    vocab = {w: i for i, w in enumerate(model.words.words)}
    return cooccurrence(TokenizedCorpus(datapath("lee_background.cor")), vocab, window=10)


def test_trained_glove_is_a_glove_embedder_that_saves_and_loads(
    lee_glove: TrainedGloVe, tmp_path: Path
) -> None:
    assert isinstance(lee_glove, GloVeEmbedder)
    assert lee_glove.spec.startswith("glove:sha256:")
    folder = lee_glove.save(tmp_path / "lee-glove")
    again = embedkit.load(f"glove:{folder}")
    assert type(again) is GloVeEmbedder
    texts = ["Israeli police", "the fire spread"]
    np.testing.assert_array_equal(again.embed(texts), lee_glove.embed(texts))


def test_train_glove_streams_a_list_too() -> None:
    texts = ["the cat sat on the mat", "the dog sat on the log"] * 5
    model = train_glove(texts, dim=8, min_count=2, epochs=3, window=2)
    assert set(model.words.words) == {"the", "cat", "sat", "on", "mat", "dog", "log"}
    small = train_glove(texts, dim=8, min_count=2, epochs=1, window=2, limit=3, on_oov="zero")
    assert small.words.words == ["the", "on", "sat"] and "on_oov=zero" in small.spec
    with pytest.raises(ConfigError, match="min_count"):
        train_glove(texts, min_count=100)
