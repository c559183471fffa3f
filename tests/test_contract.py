"""The Embedder contract and the shared on_long policy, on the hashing backend and a fake."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from numpy.typing import NDArray

import embedkit
from embedkit.backends.hashing import HashingEmbedder
from embedkit.protocol import BaseEmbedder


def test_hashing_satisfies_the_contract(hashing: embedkit.Embedder) -> None:
    assert isinstance(hashing, embedkit.Embedder)
    out = hashing.embed(["pet food", "dog food", "stock market crash"])
    assert out.shape == (3, hashing.dim) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-6)
    assert hashing.embed([]).shape == (0, hashing.dim)
    assert hashing.embed(["one text"]).shape == (1, hashing.dim)
    np.testing.assert_array_equal(hashing.embed("one text"), hashing.embed(["one text"]))


def test_hashing_is_deterministic_across_processes() -> None:
    import subprocess
    import sys

    code = "import embedkit; print(embedkit.load('hashing?dim=32').embed(['pet food'])[0].tolist())"
    runs = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
        for _ in range(2)
    }
    assert len(runs) == 1
    assert eval(runs.pop()) == embedkit.load("hashing?dim=32").embed(["pet food"])[0].tolist()


def test_hashing_is_a_real_lexical_baseline(hashing: embedkit.Embedder) -> None:
    sims = embedkit.cosine_similarity(
        hashing.embed(["dog food for pets"]), hashing.embed(["pet food", "stock market crash"])
    )
    assert sims[0, 0] > 0.2 and abs(sims[0, 1]) < 0.1  # one shared word of 4 vs none
    # punctuation-only text has no tokens: the zero vector, never NaN
    zero = hashing.embed(["?!"])
    assert not zero.any() and embedkit.cosine_similarity(zero, zero)[0, 0] == 0.0


class WordLimited(BaseEmbedder):
    """A fake with a 5-word limit: vectors count letters a..d, so chunk means are checkable."""

    backend = "word-limited"

    def __init__(self, on_long: str = "error") -> None:
        self.on_long = on_long  # type: ignore[assignment]
        self.seen: list[str] = []

    @property
    def dim(self) -> int:
        return 4

    @property
    def max_tokens(self) -> int:
        return 5

    def _spec_parts(self) -> tuple[str, dict[str, object]]:  # type: ignore[override]
        return "", {"on_long": self.on_long}

    def count_tokens(self, texts: Sequence[str]) -> NDArray[np.int64]:
        return np.asarray([len(t.split()) for t in texts], np.int64)

    def _truncate(self, text: str) -> str:
        return " ".join(text.split()[:5])

    def _chunk(self, text: str) -> list[tuple[str, int]]:
        words = text.split()
        return [
            (" ".join(words[i : i + 5]), len(words[i : i + 5])) for i in range(0, len(words), 5)
        ]

    def _embed(self, texts: list[str]) -> NDArray[np.float32]:
        self.seen += texts
        counts = np.asarray([[t.count(c) for c in "abcd"] for t in texts], np.float32)
        return counts / np.linalg.norm(counts, axis=1, keepdims=True)


LONG = "a a a a a b b b"  # 8 words: pieces "a a a a a" (5) and "b b b" (3)


def test_on_long_error_names_rows_before_any_work() -> None:
    model = WordLimited("error")
    with pytest.raises(embedkit.errors.TextTooLongError) as info:
        model.embed(["c d", LONG, "d", LONG])
    assert info.value.positions == [1, 3] and "8 tokens" in str(info.value)
    assert model.seen == []


def test_on_long_truncate_warns_with_count() -> None:
    model = WordLimited("truncate")
    with pytest.warns(embedkit.errors.EmbedkitWarning, match="1 of 2 texts exceed 5 tokens"):
        out = model.embed(["c", LONG])
    assert model.seen == ["c", "a a a a a"]
    np.testing.assert_allclose(out[1], [1, 0, 0, 0])


def test_on_long_chunk_is_token_weighted_mean_renormalised() -> None:
    model = WordLimited("chunk")
    out = model.embed(["c", LONG])
    assert model.seen == ["c", "a a a a a", "b b b"]
    expected = np.array([5.0, 3.0, 0, 0]) / np.hypot(5.0, 3.0)  # 5*[1,0,0,0] + 3*[0,1,0,0]
    np.testing.assert_allclose(out[1], expected, rtol=1e-6)
    np.testing.assert_allclose(out[0], [0, 0, 1, 0])


def test_invalid_on_long_is_rejected() -> None:
    from embedkit.protocol import check_on_long

    with pytest.raises(embedkit.ConfigError):
        check_on_long("shorten")


def test_backend_returning_wrong_shape_is_caught() -> None:
    class Broken(HashingEmbedder):
        def _embed(self, texts: list[str]) -> NDArray[np.float32]:
            return np.zeros((len(texts) + 1, self.dim), np.float32)

    with pytest.raises(embedkit.errors.BadResponseError, match="expected"):
        Broken().embed(["x"])


def test_embed_queries_prefers_embed_query(hashing: embedkit.Embedder) -> None:
    class Asymmetric(HashingEmbedder):
        def embed_query(self, texts: Sequence[str]) -> NDArray[np.float32]:
            return self.embed(["query: " + t for t in texts])

    model = Asymmetric()
    assert not np.allclose(embedkit.protocol.embed_queries(model, ["x y"]), model.embed(["x y"]))
    np.testing.assert_array_equal(
        embedkit.protocol.embed_queries(hashing, ["x y"]), hashing.embed(["x y"])
    )
