"""Semantic similarity: how well cosine similarities follow human scores for text pairs.

For pairs ``(a_i, b_i)`` with human scores ``h_i``::

    c_i = cos(embed(a_i), embed(b_i))          (0 when either vector is zero)
    pearson  = Pearson's r(c, h)
    spearman = Pearson's r(rank(c), rank(h))   (ties get their average rank)

The same correlations as the word-level :func:`embedkit.words.evaluate.evaluate_word_pairs`
(one implementation of each), here for any texts and any model, embedded by the
job path (each distinct text once).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from embedkit import _html
from embedkit.errors import ConfigError, CorruptFileError
from embedkit.evaluate._base import RunStats, embed_timed, to_frame
from embedkit.jobs.cache import CacheOption
from embedkit.jobs.embed import DEFAULT_BATCH_SIZE, ModelLike
from embedkit.search.kernels import normalize
from embedkit.words.evaluate import pearson, spearman

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SimilarityResult", "SimilarityTask", "evaluate_similarity", "read_word_pairs"]

CORRELATIONS = ("spearman", "pearson")


@dataclass(frozen=True)
class SimilarityResult:
    """Spearman's rho and Pearson's r between cosines and human scores over ``pairs``."""

    task: str
    metric: str
    spearman: float
    pearson: float
    pairs: int
    run: RunStats

    @property
    def score(self) -> float:
        return self.spearman if self.metric == "spearman" else self.pearson

    def _repr_html_(self) -> str:
        return _html.result(self, "SimilarityResult", self.to_frame)

    def to_frame(self) -> pd.DataFrame:
        """One row: ``pairs``, ``spearman``, ``pearson``."""
        row = {"task": self.task, "pairs": self.pairs}
        return to_frame([{**row, "spearman": self.spearman, "pearson": self.pearson}], "task")


def evaluate_similarity(
    model: ModelLike,
    pairs: Sequence[tuple[str, str]],
    scores: Sequence[float],
    *,
    metric: str = "spearman",
    cache: CacheOption = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool | None = None,
    task: str = "similarity",
) -> SimilarityResult:
    """Correlate ``cos(a_i, b_i)`` with ``scores[i]`` for each pair ``(a_i, b_i)``."""
    if metric not in CORRELATIONS:
        raise ConfigError(f"metric must be 'spearman' or 'pearson', got {metric!r}")
    if len(pairs) != len(scores):
        raise ConfigError(f"{len(pairs)} pairs but {len(scores)} scores")
    if len(pairs) < 2:
        raise ConfigError("a correlation needs at least 2 pairs")
    for i, pair in enumerate(pairs):
        if isinstance(pair, str) or len(pair) != 2:
            raise ConfigError(f"pair {i} must be two texts, got {pair!r}")
    human = np.asarray(scores, dtype=np.float64)
    if human.ndim != 1 or not np.isfinite(human).all():
        raise ConfigError("scores must be finite numbers, one per pair")
    distinct = list(dict.fromkeys(t for pair in pairs for t in pair))
    vectors, run, _ = embed_timed(
        distinct, model, cache=cache, batch_size=batch_size, progress=progress, desc="pairs"
    )
    unit = normalize(vectors)
    row = {text: i for i, text in enumerate(distinct)}
    left = unit[[row[a] for a, _ in pairs]]
    right = unit[[row[b] for _, b in pairs]]
    cosines = np.einsum("ij,ij->i", left, right, dtype=np.float64)
    return SimilarityResult(
        task, metric, spearman(cosines, human), pearson(cosines, human), len(pairs), run
    )


@dataclass(frozen=True)
class SimilarityTask:
    """Text pairs and human scores, scored by :func:`evaluate_similarity`."""

    name: str
    pairs: tuple[tuple[str, str], ...]
    scores: tuple[float, ...]
    metric: str = "spearman"

    def __len__(self) -> int:
        return len(self.pairs)

    def evaluate(
        self,
        model: ModelLike,
        *,
        cache: CacheOption = True,
        batch_size: int = DEFAULT_BATCH_SIZE,
        progress: bool | None = None,
    ) -> SimilarityResult:
        return evaluate_similarity(
            model,
            self.pairs,
            self.scores,
            metric=self.metric,
            cache=cache,
            batch_size=batch_size,
            progress=progress,
            task=self.name,
        )


def read_word_pairs(
    path: str | os.PathLike[str], *, name: str | None = None, delimiter: str = "\t"
) -> SimilarityTask:
    """A :class:`SimilarityTask` from a WordSim-353 / SimLex-999 style file.

    Lines ``text1<TAB>text2<TAB>score``; ``#`` comments and blank lines are skipped;
    any other line that is not two texts and a number is a :class:`CorruptFileError`
    naming it (gensim's own files, e.g. ``wordsim353.tsv``, read cleanly).
    """
    pairs: list[tuple[str, str]] = []
    scores: list[float] = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            fields = text.split(delimiter)
            try:
                a, b, score = fields[0].strip(), fields[1].strip(), float(fields[2])
            except (IndexError, ValueError):
                raise CorruptFileError(f"{path}:{number}: expected text1, text2, score") from None
            pairs.append((a, b))
            scores.append(score)
    stem = os.path.splitext(os.path.basename(os.fspath(path)))[0]
    return SimilarityTask(name or stem, tuple(pairs), tuple(scores))
