"""embedkit: pluggable text embeddings and one fast cosine-similarity search.

>>> import embedkit
>>> model = embedkit.load("hashing?dim=64")
>>> model.embed(["pet food", "dog food"]).shape
(2, 64)

The curated names below cover the everyday work; everything else lives in its
subpackage: :mod:`embedkit.errors` (the whole exception tree), :mod:`embedkit.search`
(kernels, stores, index), :mod:`embedkit.jobs` (the job path, cache, readers,
writers), :mod:`embedkit.words` (word vectors, pooling, evaluation),
:mod:`embedkit.backends` (one module per backend).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from embedkit.errors import (
    ConfigError,
    DimensionMismatchError,
    EmbedkitError,
    InvalidInputError,
    ModelMismatchError,
)
from embedkit.jobs.embed import embed
from embedkit.protocol import BaseEmbedder, Embedder
from embedkit.registry import load, register
from embedkit.search.index import Hit, VectorIndex
from embedkit.search.kernels import TopK, cosine_similarity, normalize, top_k

if TYPE_CHECKING:
    from embedkit.backends.fasttext_train import train_fasttext
    from embedkit.backends.gensim_train import train_glove, train_word2vec
    from embedkit.frame import EmbeddedFrame, embed_frame, read_tutorial_csv
    from embedkit.words.vectors import WordVectors

__version__ = "0.2.0"

# Imported on first use: pandas-based workflow, word vectors and trainers (trainers build backends).
_LAZY = {
    "EmbeddedFrame": "embedkit.frame",
    "embed_frame": "embedkit.frame",
    "read_tutorial_csv": "embedkit.frame",
    "WordVectors": "embedkit.words.vectors",
    "train_fasttext": "embedkit.backends.fasttext_train",
    "train_glove": "embedkit.backends.gensim_train",
    "train_word2vec": "embedkit.backends.gensim_train",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'embedkit' has no attribute {name!r}")


__all__ = [
    "BaseEmbedder",
    "ConfigError",
    "DimensionMismatchError",
    "EmbeddedFrame",
    "Embedder",
    "EmbedkitError",
    "Hit",
    "InvalidInputError",
    "ModelMismatchError",
    "TopK",
    "VectorIndex",
    "WordVectors",
    "__version__",
    "cosine_similarity",
    "embed",
    "embed_frame",
    "load",
    "normalize",
    "read_tutorial_csv",
    "register",
    "top_k",
    "train_fasttext",
    "train_glove",
    "train_word2vec",
]
