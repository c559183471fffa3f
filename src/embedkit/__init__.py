"""embedkit: pluggable text embeddings and one fast cosine-similarity search.

>>> import embedkit
>>> model = embedkit.load("hashing?dim=64")
>>> model.embed(["pet food", "dog food"]).shape
(2, 64)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from embedkit.errors import (
    BackendError,
    BadResponseError,
    ConfigError,
    CorruptFileError,
    DimensionMismatchError,
    EmbedkitError,
    EmbedkitWarning,
    InvalidInputError,
    MissingDependencyError,
    ModelMismatchError,
    QuotaExceededError,
    TextTooLongError,
    UnknownBackendError,
)
from embedkit.frame import EmbeddedFrame, embed_frame, read_tutorial_csv
from embedkit.jobs.embed import embed
from embedkit.protocol import BaseEmbedder, Embedder, embed_queries
from embedkit.registry import DEFAULT_MODEL, available_backends, load, register
from embedkit.search.index import Hit, VectorIndex
from embedkit.search.kernels import TopK, cosine_similarity, normalize, top_k
from embedkit.words.evaluate import evaluate_analogies, evaluate_word_pairs
from embedkit.words.vectors import Neighbor, OutOfVocabularyError, WordVectors

if TYPE_CHECKING:
    from embedkit.backends.fasttext_train import train_fasttext
    from embedkit.backends.gensim_train import train_glove, train_word2vec

__version__ = "0.1.0"

# Training builds backends, so it is imported on first use: `import embedkit` loads no backend.
_LAZY = {
    "train_fasttext": "embedkit.backends.fasttext_train",
    "train_glove": "embedkit.backends.gensim_train",
    "train_word2vec": "embedkit.backends.gensim_train",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'embedkit' has no attribute {name!r}")


__all__ = [
    "DEFAULT_MODEL",
    "BackendError",
    "BadResponseError",
    "BaseEmbedder",
    "ConfigError",
    "CorruptFileError",
    "DimensionMismatchError",
    "EmbeddedFrame",
    "Embedder",
    "EmbedkitError",
    "EmbedkitWarning",
    "Hit",
    "InvalidInputError",
    "MissingDependencyError",
    "ModelMismatchError",
    "Neighbor",
    "OutOfVocabularyError",
    "QuotaExceededError",
    "TextTooLongError",
    "TopK",
    "UnknownBackendError",
    "VectorIndex",
    "WordVectors",
    "__version__",
    "available_backends",
    "cosine_similarity",
    "embed",
    "embed_frame",
    "embed_queries",
    "evaluate_analogies",
    "evaluate_word_pairs",
    "load",
    "normalize",
    "read_tutorial_csv",
    "register",
    "top_k",
    "train_fasttext",
    "train_glove",
    "train_word2vec",
]
