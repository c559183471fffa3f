"""``EmbeddingTransformer``: texts -> vectors as a scikit-learn transformer.

::

    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from embedkit.sklearn import EmbeddingTransformer

    clf = make_pipeline(EmbeddingTransformer(model="hashing?dim=512"), LogisticRegression())
    clf.fit(train_texts, train_labels).score(test_texts, test_labels)

* Parameters only in ``__init__`` (``model``, ``cache``, ``batch_size``, ``progress``),
  stored as given and checked on first use, as scikit-learn asks.
* The model is loaded lazily, on the first ``transform`` (or
  ``get_feature_names_out``), and is never part of the estimator's state (its
  ``__dict__`` holds the four parameters, before and after use): a pickle or a
  ``clone`` holds the spec, not the model. A spec (or a config dict) is loaded
  once per process and shared by every clone a cross-validation makes. An
  Embedder or an :class:`~embedkit.jobs.cache.EmbeddingCache` object given as a
  parameter is shared by ``clone`` (resources, not state: no deep copy of the
  weights or of a database connection); pickle stores an Embedder as it is (prefer
  a spec) and an open cache as its path.
* Stateless: ``fit`` checks its input and returns ``self``; ``transform`` works
  without it. Every text goes through the one job path
  (:func:`embedkit.embed`: validation, batches, the cache, progress).
* Input: a list (or tuple) of ``str``, a pandas ``Series``, a one-column
  ``DataFrame`` (what ``ColumnTransformer`` passes for ``["Text"]``), or a 1-D or
  ``(n, 1)`` numpy array of ``str``. Anything else is refused with a
  :class:`~embedkit.errors.ConfigError`, and a non-``str`` element (None, NaN, a
  number) with an :class:`~embedkit.errors.InvalidInputError` naming its row:
  nothing is converted silently.
* Output: float32 ``(n, dim)``; columns ``embedding_0 .. embedding_{dim-1}``
  (``get_feature_names_out``), a DataFrame after ``set_output(transform="pandas")``.

Needs scikit-learn: ``pip install 'embedkit[sklearn]'``.
"""

from __future__ import annotations

import copy
import functools
import os
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from embedkit.errors import ConfigError, MissingDependencyError
from embedkit.jobs.cache import CacheOption, EmbeddingCache
from embedkit.jobs.embed import DEFAULT_BATCH_SIZE, ModelLike, embed
from embedkit.protocol import Embedder
from embedkit.registry import DEFAULT_MODEL, ENV_VAR, load

try:
    from sklearn.base import BaseEstimator, TransformerMixin
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise MissingDependencyError(
        "'sklearn' is required for embedkit.sklearn; install it with "
        "pip install 'embedkit[sklearn]'"
    ) from exc

__all__ = ["EmbeddingTransformer"]

PREFIX = "embedding_"


@functools.lru_cache(maxsize=8)
def _load_once(key: str | tuple[tuple[str, Any], ...]) -> Embedder:
    """One model per spec (or hashable config) and process, shared by every clone."""
    return load(key if isinstance(key, str) else dict(key))


def _embedder(model: ModelLike) -> Embedder:
    """``load(model)``, memoised for specs and configs, so that the estimator holds no model."""
    if model is None:
        model = os.environ.get(ENV_VAR) or DEFAULT_MODEL
    if isinstance(model, str):
        return _load_once(model)
    if isinstance(model, Mapping):
        key = tuple(sorted((str(k), v) for k, v in model.items()))
        try:
            hash(key)
        except TypeError:
            return load(model)
        return _load_once(key)
    return load(model)  # an Embedder as is; anything else is a ConfigError


class EmbeddingTransformer(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Embed a text column with ``model`` (a spec, a config dict or an Embedder).

    ``model=None`` takes :func:`embedkit.load`'s default (``$EMBEDKIT_MODEL`` or
    MiniLM). ``cache``: ``True`` (the default cache), ``False``, a path or an
    :class:`~embedkit.jobs.cache.EmbeddingCache`. ``progress``: ``None`` shows a
    bar only when a person watches.
    """

    def __init__(
        self,
        model: ModelLike = None,
        *,
        cache: CacheOption = True,
        batch_size: int = DEFAULT_BATCH_SIZE,
        progress: bool | None = None,
    ) -> None:
        self.model = model
        self.cache = cache
        self.batch_size = batch_size
        self.progress = progress

    @property
    def embedder(self) -> Embedder:
        """The model named by ``model``, loaded on first use (kept outside the estimator)."""
        return _embedder(self.model)

    # -- the estimator API --------------------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> EmbeddingTransformer:
        """Check that ``X`` is a text column and return ``self`` (nothing is learnt)."""
        column_texts(X)
        return self

    def transform(self, X: Any) -> NDArray[np.float32]:
        """Float32 ``(len(X), dim)``: ``embed(X)`` through the job path and its cache."""
        texts = column_texts(X)
        if not isinstance(self.batch_size, int) or isinstance(self.batch_size, bool):
            raise ConfigError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        return embed(
            texts,
            self.embedder,
            cache=self.cache,
            batch_size=self.batch_size,
            progress=self.progress,
        )

    def get_feature_names_out(self, input_features: Any = None) -> NDArray[np.object_]:
        """``["embedding_0", ..., "embedding_{dim-1}"]`` (loads the model for its ``dim``)."""
        return np.asarray([f"{PREFIX}{i}" for i in range(self.embedder.dim)], dtype=object)

    def __sklearn_clone__(self) -> EmbeddingTransformer:
        """A new, unfitted transformer with the same parameters.

        A model or cache *object* is shared with the clone, not deep-copied: both
        are resources (weights, a database connection), not fitted state. A config
        dict is copied, as scikit-learn copies any parameter.
        """
        params: dict[str, Any] = {
            k: copy.deepcopy(v) if isinstance(v, Mapping) else v
            for k, v in self.get_params(deep=False).items()
        }
        twin = type(self)(**params)
        for attr in ("_sklearn_output_config", "_metadata_request"):  # set_output, routing
            if attr in vars(self):
                setattr(twin, attr, copy.deepcopy(vars(self)[attr]))
        return twin

    def __getstate__(self) -> dict[str, Any]:
        """The parameters as they are, except that an open cache is pickled as its path."""
        state: dict[str, Any] = dict(super().__getstate__())  # a copy: never the live __dict__
        if isinstance(state.get("cache"), EmbeddingCache):
            state["cache"] = str(state["cache"].path)
        return state

    def __sklearn_is_fitted__(self) -> bool:
        return True  # stateless: usable without fit

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.requires_fit = False
        tags.transformer_tags.preserves_dtype = []
        return tags

    def _more_tags(self) -> dict[str, Any]:  # scikit-learn < 1.6
        return {"X_types": ["string"], "requires_fit": False, "stateless": True}


def column_texts(X: Any) -> list[Any]:
    """The texts of one text column ``X`` (see the module docstring for what is accepted).

    Elements are returned as they are: the job path refuses the ones that are not
    ``str``, naming their rows.
    """
    if isinstance(X, (str, bytes)):
        raise ConfigError("X is one string; pass a list of texts (a bare string is not a column)")
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(X, pandas.DataFrame):
        if X.shape[1] != 1:
            raise ConfigError(
                f"X is a DataFrame with {X.shape[1]} columns; pass one text column "
                "(e.g. ColumnTransformer([('text', EmbeddingTransformer(), ['Text'])]))"
            )
        values: list[Any] = X.iloc[:, 0].tolist()
        return values
    if pandas is not None and isinstance(X, pandas.Series):
        series_values: list[Any] = X.tolist()
        return series_values
    if isinstance(X, np.ndarray):
        array = X[:, 0] if X.ndim == 2 and X.shape[1] == 1 else X
        if array.ndim != 1 or array.dtype.kind not in "UO":
            raise ConfigError(
                f"X is a numpy array of shape {X.shape} and dtype {X.dtype}; "
                "pass a 1-D (or (n, 1)) array of str"
            )
        array_values: list[Any] = array.tolist()
        return array_values
    if isinstance(X, (list, tuple)):
        return list(X)
    raise ConfigError(
        "X must be a list of str, a pandas Series, a one-column DataFrame or a 1-D array "
        f"of str, got {type(X).__name__}"
    )
