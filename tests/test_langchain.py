"""``EmbedkitEmbeddings``: LangChain's standard tests (unit and integration) and a real flow.

langchain-tests' suites run twice, with the hashing backend and with MiniLM
(the session's model, loaded once), offline. Then ``InMemoryVectorStore`` from
langchain-core holds the reviews and answers "pet food".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests

import embedkit
from embedkit.errors import ConfigError, UnknownBackendError
from embedkit.evaluate import read_reviews
from embedkit.integrations import EmbedkitEmbeddings as Lazy
from embedkit.integrations.langchain import EmbedkitEmbeddings
from embedkit.jobs.cache import EmbeddingCache

HASHING = "hashing?dim=64"
_SESSION: dict[str, embedkit.Embedder] = {}


@pytest.fixture(autouse=True)
def _session_minilm(request: pytest.FixtureRequest) -> None:
    """Hand the session's MiniLM to the MiniLM test classes (their params are properties)."""
    if "MiniLM" in request.node.nodeid:
        _SESSION["minilm"] = request.getfixturevalue("minilm")


class TestHashingUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[Embeddings]:
        return EmbedkitEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model": HASHING, "cache": False}

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return (
            {"EMBEDKIT_MODEL": "hashing?dim=32"},
            {"cache": False},
            {"spec": embedkit.load("hashing?dim=32").spec, "dim": 32},
        )


class TestHashingIntegration(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[Embeddings]:
        return EmbedkitEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model": HASHING}


@pytest.mark.slow
class TestMiniLMUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[Embeddings]:
        return EmbedkitEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model": _SESSION["minilm"], "cache": False}


@pytest.mark.slow
class TestMiniLMIntegration(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[Embeddings]:
        return EmbedkitEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model": _SESSION["minilm"]}


# -- the adapter's own behaviour -----------------------------------------------------------------
def test_plain_floats_equal_to_embedkit_vectors() -> None:
    lc = EmbedkitEmbeddings(model=HASHING, cache=False)
    docs = lc.embed_documents(["pet food", "hot sauce"])
    assert all(type(x) is float for row in docs for x in row)
    expected = embedkit.load(HASHING).embed(["pet food", "hot sauce"])
    np.testing.assert_allclose(np.asarray(docs), expected, rtol=0, atol=0)
    assert lc.embed_query("pet food") == docs[0]
    assert lc.embed_documents([]) == []
    assert repr(lc).startswith("EmbedkitEmbeddings(model='hashing?dim=64")
    assert Lazy is EmbedkitEmbeddings


def test_documents_go_through_the_cache(tmp_path: Path) -> None:
    with EmbeddingCache(tmp_path / "c.sqlite3") as cache:
        lc = EmbedkitEmbeddings(model=HASHING, cache=cache)
        lc.embed_documents(["a dog", "a cat", "a dog"])
        assert cache.count(lc.spec) == 2  # distinct texts, keyed by the model's spec
        lc.embed_query("a bird")  # queries are embedded directly
        assert cache.count(lc.spec) == 2


def test_refusals_and_a_bad_spec_fails_at_once() -> None:
    with pytest.raises(UnknownBackendError):
        EmbedkitEmbeddings(model="no-such-backend:x")
    lc = EmbedkitEmbeddings(model=HASHING, cache=False)
    with pytest.raises(ConfigError):
        lc.embed_documents("one string")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        lc.embed_query(["a", "list"])  # type: ignore[arg-type]
    with pytest.raises(embedkit.InvalidInputError):
        lc.embed_documents(["fine", None])  # type: ignore[list-item]


async def test_async_matches_sync() -> None:
    lc = EmbedkitEmbeddings(model=HASHING, cache=False)
    assert await lc.aembed_documents(["x y", "z"]) == lc.embed_documents(["x y", "z"])
    assert await lc.aembed_query("x y") == lc.embed_query("x y")


@pytest.fixture(scope="session")
def review_cache(tmp_path_factory: pytest.TempPathFactory) -> EmbeddingCache:
    """One cache file per test session, shared by the files that embed the reviews."""
    return EmbeddingCache(tmp_path_factory.getbasetemp() / "review-vectors.sqlite3")


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*truncated:embedkit.errors.EmbedkitWarning")
def test_in_memory_vector_store_finds_pet_food(
    reviews_csv: Path, minilm: embedkit.Embedder, review_cache: EmbeddingCache
) -> None:
    reviews = read_reviews(reviews_csv, limit=200)
    texts = list(dict.fromkeys(text for _, _, text in reviews))  # as the evaluation tasks do
    store = InMemoryVectorStore(EmbedkitEmbeddings(model=minilm, cache=review_cache))
    store.add_texts(texts, metadatas=[{"row": i} for i in range(len(texts))])
    hits = store.similarity_search("pet food", k=3)
    print("\n" + "\n".join(h.page_content[:100] for h in hits))
    assert len(hits) == 3
    animals = ("dog", "cat", "pet", "puppy", "kitten", "canine", "feline")
    assert all(any(a in h.page_content.lower() for a in animals) for h in hits)
    assert all(isinstance(h.metadata["row"], int) for h in hits)
