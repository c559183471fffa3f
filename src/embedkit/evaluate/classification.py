"""Classification by a linear probe: cross-validated logistic regression on the vectors.

The texts are embedded once by the job path; then, for each of ``folds``
stratified folds (shuffled with ``seed``), the features are standardised on the
training part and a :class:`sklearn.linear_model.LogisticRegression` is fitted on
it and scored on the held-out part::

    accuracy = mean over folds of (correct / n_test)
    macro_f1 = mean over folds of (mean over classes of F1(class))

Macro-F1 weighs every class alike, so a probe that always answers the majority
class scores ``accuracy = share of that class`` but a low macro-F1. Needs
scikit-learn (``pip install 'embedkit[sklearn]'``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from embedkit import _html
from embedkit._optional import require
from embedkit.errors import ConfigError
from embedkit.evaluate._base import RunStats, check_size, embed_timed, to_frame
from embedkit.jobs.cache import CacheOption
from embedkit.jobs.embed import DEFAULT_BATCH_SIZE, ModelLike

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ClassificationResult", "ClassificationTask", "evaluate_classification"]

Label = str | int
SCORES = ("accuracy", "macro_f1")


@dataclass(frozen=True)
class ClassificationResult:
    """Cross-validated accuracy and macro-F1 (means and standard deviations over folds)."""

    task: str
    metric: str
    accuracy: float
    accuracy_std: float
    macro_f1: float
    macro_f1_std: float
    folds: int
    classes: tuple[Label, ...]
    texts: int
    run: RunStats
    fit_seconds: float = 0.0

    @property
    def score(self) -> float:
        return self.accuracy if self.metric == "accuracy" else self.macro_f1

    def _repr_html_(self) -> str:
        return _html.result(self, "ClassificationResult", self.to_frame)

    def to_frame(self) -> pd.DataFrame:
        """One row: ``accuracy``, ``accuracy_std``, ``macro_f1``, ``macro_f1_std``, ``folds``."""
        return to_frame(
            [
                {
                    "task": self.task,
                    "accuracy": self.accuracy,
                    "accuracy_std": self.accuracy_std,
                    "macro_f1": self.macro_f1,
                    "macro_f1_std": self.macro_f1_std,
                    "folds": self.folds,
                }
            ],
            "task",
        )


def evaluate_classification(
    model: ModelLike,
    texts: Sequence[str],
    labels: Sequence[Label],
    *,
    folds: int = 5,
    seed: int = 0,
    C: float = 1.0,
    max_iter: int = 2000,
    metric: str = "accuracy",
    cache: CacheOption = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool | None = None,
    task: str = "classification",
) -> ClassificationResult:
    """Linear-probe scores of ``model`` on ``texts`` labelled ``labels`` (module docstring)."""
    if metric not in SCORES:
        raise ConfigError(f"metric must be 'accuracy' or 'macro_f1', got {metric!r}")
    folds = check_size("folds", folds, 2)
    if isinstance(texts, str):
        raise ConfigError("texts must be a sequence of texts, not one string")
    if len(texts) != len(labels):
        raise ConfigError(f"{len(texts)} texts but {len(labels)} labels")
    y = np.asarray(list(labels))
    if y.ndim != 1 or y.dtype.kind not in "iuUSb":
        raise ConfigError("labels must be one str or int per text")
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2:
        raise ConfigError(f"a probe needs at least 2 classes, got {classes.tolist()!r}")
    if counts.min() < folds:
        small = classes[counts.argmin()].item()
        raise ConfigError(f"class {small!r} has {counts.min()} texts, fewer than folds={folds}")
    vectors, run, _ = embed_timed(
        texts, model, cache=cache, batch_size=batch_size, progress=progress, desc="texts"
    )
    start = time.perf_counter()
    scores = _cross_validate(vectors, y, folds=folds, seed=seed, C=C, max_iter=max_iter)
    fit_seconds = time.perf_counter() - start
    return ClassificationResult(
        task,
        metric,
        float(np.mean(scores["test_accuracy"])),
        float(np.std(scores["test_accuracy"])),
        float(np.mean(scores["test_f1_macro"])),
        float(np.std(scores["test_f1_macro"])),
        folds,
        tuple(c.item() for c in classes),
        len(texts),
        run,
        fit_seconds,
    )


def _cross_validate(
    x: np.ndarray[Any, Any],
    y: np.ndarray[Any, Any],
    *,
    folds: int,
    seed: int,
    C: float,
    max_iter: int,
) -> dict[str, Any]:
    require("sklearn", "sklearn")
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_validate
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter))
    splits = StratifiedKFold(folds, shuffle=True, random_state=seed)
    result: dict[str, Any] = cross_validate(
        probe, x, y, cv=splits, scoring=("accuracy", "f1_macro")
    )
    return result


@dataclass(frozen=True)
class ClassificationTask:
    """Labelled texts, scored by :func:`evaluate_classification`."""

    name: str
    texts: tuple[str, ...]
    labels: tuple[Label, ...]
    folds: int = 5
    metric: str = "accuracy"

    def __len__(self) -> int:
        return len(self.texts)

    def evaluate(
        self,
        model: ModelLike,
        *,
        cache: CacheOption = True,
        batch_size: int = DEFAULT_BATCH_SIZE,
        progress: bool | None = None,
        seed: int = 0,
    ) -> ClassificationResult:
        """Its linear-probe score; ``seed`` shuffles the folds (average a few seeds for
        differences smaller than one split's noise)."""
        return evaluate_classification(
            model,
            self.texts,
            self.labels,
            folds=self.folds,
            seed=seed,
            metric=self.metric,
            cache=cache,
            batch_size=batch_size,
            progress=progress,
            task=self.name,
        )
