"""The curated public surface is pinned: adding or removing a name is a deliberate act."""

from __future__ import annotations

import embedkit


def test_all_is_pinned() -> None:
    assert sorted(embedkit.__all__) == sorted(
        [
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
    )
    for name in embedkit.__all__:
        assert hasattr(embedkit, name), name


def test_error_tree_mixes_in_builtins() -> None:
    assert issubclass(embedkit.InvalidInputError, ValueError)
    assert issubclass(embedkit.errors.MissingDependencyError, ImportError)
    assert issubclass(embedkit.errors.BackendError, RuntimeError)
    for name in embedkit.__all__:
        obj = getattr(embedkit, name)
        if isinstance(obj, type) and issubclass(obj, Exception) and not issubclass(obj, Warning):
            assert issubclass(obj, embedkit.EmbedkitError), name
