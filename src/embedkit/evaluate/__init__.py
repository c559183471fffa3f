"""Evaluation and comparison of models on your data: retrieval, similarity, classification.

Every evaluation embeds through the one job path (validation, batches, the
cache, progress) and searches through the one search seam; each returns one
small frozen result with a ``.score`` (its headline ``metric``), the ``run``
(texts, seconds, cache hits) and a ``.to_frame()``::

    evaluate_retrieval(model, queries, corpus, relevant)   -> RetrievalResult  (recall/MRR/nDCG@k)
    evaluate_similarity(model, pairs, scores)              -> SimilarityResult (Spearman, Pearson)
    evaluate_classification(model, texts, labels)          -> ClassificationResult (accuracy, macro-F1)
    compare({"name": model, ...}, task)                    -> Comparison (quality, texts/s, width, ...)

Tasks bundle the data of one evaluation (:class:`RetrievalTask`,
:class:`SimilarityTask`, :class:`ClassificationTask`); real ones ship with the
package: :func:`reviews_retrieval` and :func:`reviews_sentiment` (the tutorial's
1,000 reviews), :func:`read_word_pairs` (WordSim-353 / SimLex-999 files).

Word-level evaluations of word vectors (analogies, word pairs with gensim's
rules) live in :mod:`embedkit.words.evaluate` and are re-exported here:
``evaluate_analogies(model.words, path)`` for a Word2Vec/GloVe/fastText model.
"""

from __future__ import annotations

from embedkit.evaluate._base import RunStats, Scored, Task
from embedkit.evaluate.classification import (
    ClassificationResult,
    ClassificationTask,
    evaluate_classification,
)
from embedkit.evaluate.compare import Comparison, ComparisonRow, compare
from embedkit.evaluate.retrieval import (
    RankingScores,
    RetrievalResult,
    RetrievalTask,
    evaluate_retrieval,
    ranking_scores,
)
from embedkit.evaluate.similarity import (
    SimilarityResult,
    SimilarityTask,
    evaluate_similarity,
    read_word_pairs,
)
from embedkit.evaluate.tasks import read_reviews, reviews_retrieval, reviews_sentiment
from embedkit.words.evaluate import (
    AnalogyResult,
    WordPairsResult,
    evaluate_analogies,
    evaluate_word_pairs,
)

__all__ = [
    "AnalogyResult",
    "ClassificationResult",
    "ClassificationTask",
    "Comparison",
    "ComparisonRow",
    "RankingScores",
    "RetrievalResult",
    "RetrievalTask",
    "RunStats",
    "Scored",
    "SimilarityResult",
    "SimilarityTask",
    "Task",
    "WordPairsResult",
    "compare",
    "evaluate_analogies",
    "evaluate_classification",
    "evaluate_retrieval",
    "evaluate_similarity",
    "evaluate_word_pairs",
    "ranking_scores",
    "read_reviews",
    "read_word_pairs",
    "reviews_retrieval",
    "reviews_sentiment",
]
