"""Search: the one exact kernel, the store seam, the index and its streaming writer.

``kernels`` (normalize, cosine_similarity, top_k, blocked exact search), ``rows``
(checks shared by every writer), ``store`` (the VectorStore protocol, ExactStore),
``index`` (VectorIndex, Hit), ``writer`` (IndexWriter: build on disk in bounded memory).
"""
