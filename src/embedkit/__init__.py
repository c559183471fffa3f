"""embedkit: pluggable text embeddings and one fast cosine-similarity search.

>>> import embedkit
>>> model = embedkit.load("hashing?dim=64")
>>> model.embed(["pet food", "dog food"]).shape
(2, 64)
"""

from __future__ import annotations

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
from embedkit.index import Hit, VectorIndex
from embedkit.protocol import BaseEmbedder, Embedder, embed_queries
from embedkit.registry import DEFAULT_MODEL, available_backends, load, register
from embedkit.similarity import TopK, cosine_similarity, normalize, top_k

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MODEL",
    "BackendError",
    "BadResponseError",
    "BaseEmbedder",
    "ConfigError",
    "CorruptFileError",
    "DimensionMismatchError",
    "Embedder",
    "EmbedkitError",
    "EmbedkitWarning",
    "Hit",
    "InvalidInputError",
    "MissingDependencyError",
    "ModelMismatchError",
    "QuotaExceededError",
    "TextTooLongError",
    "TopK",
    "UnknownBackendError",
    "VectorIndex",
    "__version__",
    "available_backends",
    "cosine_similarity",
    "embed_queries",
    "load",
    "normalize",
    "register",
    "top_k",
]
