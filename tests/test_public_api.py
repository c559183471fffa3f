"""The curated public surface is pinned: adding or removing a name is a deliberate act."""

from __future__ import annotations

import embedkit


def test_all_is_pinned() -> None:
    assert sorted(embedkit.__all__) == sorted(
        [
            "DEFAULT_MODEL",
            "BackendError",
            "BadResponseError",
            "BaseEmbedder",
            "ConfigError",
            "CorruptFileError",
            "DimensionMismatchError",
            "Embedder",
            "EmbeddedFrame",
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
    )
    for name in embedkit.__all__:
        assert hasattr(embedkit, name), name


def test_error_tree_mixes_in_builtins() -> None:
    assert issubclass(embedkit.InvalidInputError, ValueError)
    assert issubclass(embedkit.MissingDependencyError, ImportError)
    assert issubclass(embedkit.BackendError, RuntimeError)
    for name in embedkit.__all__:
        obj = getattr(embedkit, name)
        if isinstance(obj, type) and issubclass(obj, Exception) and not issubclass(obj, Warning):
            assert issubclass(obj, embedkit.EmbedkitError), name
