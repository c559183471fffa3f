"""What every plot shares: inputs to vectors, labels, the 2-D projection and atomic saving.

Inputs (``data``) are one of:

* a ``(n, d)`` float matrix (a NumPy array): used as is, ``model`` must be ``None``;
* a sequence of ``n`` texts: embedded by ``model`` through the one job path
  (:func:`embedkit.jobs.embed.embed`: validation, batches, the cache, progress);
* an :class:`~embedkit.frame.EmbeddedFrame`: its vectors; ``labels`` may then name
  one of its columns.

Projection (:func:`project`), with ``X = normalize(vectors)`` (unit rows, as every
embedkit search compares them; zero rows stay zero) and ``res`` float32 ``(n, 2)``:

* ``"pca"``: ``res = (X - mean(X)) @ V[:, :2]``, ``V`` the principal axes
  (scikit-learn ``PCA``, full SVD, signs fixed by scikit-learn's ``svd_flip``);
* ``"tsne"``: scikit-learn ``TSNE(init="pca", perplexity=min(30, (n - 1) / 3),
  random_state=seed)``;
* ``"umap"``: ``umap.UMAP(n_neighbors=min(15, n - 1), random_state=seed)``
  (umap-learn, an optional package of its own).

The same ``seed`` gives the same map.
"""

from __future__ import annotations

import importlib
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from embedkit._optional import require
from embedkit.errors import (
    ConfigError,
    DimensionMismatchError,
    InvalidInputError,
    MissingDependencyError,
)
from embedkit.frame import EmbeddedFrame
from embedkit.jobs.cache import CacheOption
from embedkit.jobs.embed import ModelLike, embed
from embedkit.search.kernels import normalize

__all__ = ["METHODS", "Data", "Label", "Method", "project"]

Method = Literal["pca", "tsne", "umap"]
METHODS: tuple[str, ...] = ("pca", "tsne", "umap")
Label = str | int | bool
Data = Sequence[str] | NDArray[Any] | EmbeddedFrame
Matrix = NDArray[np.float32]
EXTRA = "plot"


def need(module: str, package: str) -> ModuleType:
    """Import ``module`` of the optional ``package`` (not part of an extra), or say how to get it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{module!r} is required for this plot; install it with pip install {package}"
        ) from exc


def vectors_of(
    data: Data,
    model: ModelLike,
    *,
    cache: CacheOption,
    progress: bool | None,
) -> tuple[Matrix, list[str] | None]:
    """``(vectors (n, d) float32, the texts or None)`` of ``data`` (see the module docstring)."""
    if isinstance(data, EmbeddedFrame):
        _no_model(model, "an EmbeddedFrame")
        texts = data.rows["text"].astype(str).tolist() if "text" in data.rows.columns else None
        return np.asarray(data.vectors, dtype=np.float32), texts
    if isinstance(data, np.ndarray):
        _no_model(model, "vectors")
        return _matrix(data), None
    if isinstance(data, (str, bytes)) or not isinstance(data, Sequence):
        raise ConfigError(
            "data must be a (n, d) array, a list of texts or an EmbeddedFrame, "
            f"not {type(data).__name__}"
        )
    bad = [(i, type(t).__name__) for i, t in enumerate(data) if not isinstance(t, str)]
    if bad:
        raise InvalidInputError("texts to plot must all be strings", bad)
    texts = list(data)
    return embed(texts, model, cache=cache, progress=progress), texts


def _no_model(model: ModelLike, what: str) -> None:
    if model is not None:
        raise ConfigError(f"model= is for texts; {what} are already embedded")


def _matrix(data: NDArray[Any]) -> Matrix:
    if data.dtype.kind not in "fiu" or data.dtype == np.bool_:
        raise ConfigError(f"vectors must be a numeric (n, d) array, got dtype {data.dtype}")
    if data.ndim != 2:
        raise DimensionMismatchError(f"vectors must be a (n, d) matrix, got shape {data.shape}")
    matrix = np.asarray(data, dtype=np.float32)
    bad = np.flatnonzero(~np.isfinite(matrix).all(axis=1))
    if bad.size:
        raise InvalidInputError(
            "vectors hold NaN or infinite values", [(int(i), "not finite") for i in bad[:20]]
        )
    return matrix


def labels_of(data: Data, labels: Sequence[Label] | str | None, n: int) -> list[str] | None:
    """One label (as text) per row, checked: a sequence of ``n``, or a column of an EmbeddedFrame."""
    if labels is None:
        return None
    if isinstance(labels, str):
        if not isinstance(data, EmbeddedFrame):
            raise ConfigError("labels='<column>' needs an EmbeddedFrame; pass one label per row")
        if labels not in data.rows.columns:
            columns = ", ".join(map(str, data.rows.columns))
            raise ConfigError(f"no column {labels!r} to colour by; columns: {columns}")
        values: list[Any] = data.rows[labels].tolist()
    elif isinstance(labels, (Sequence, np.ndarray)):
        values = list(labels)
    else:
        raise ConfigError(
            f"labels must be a sequence or a column name, not {type(labels).__name__}"
        )
    if len(values) != n:
        raise DimensionMismatchError(f"{len(values)} labels for {n} points")
    missing = [(i, "missing label") for i, v in enumerate(values) if _missing(v)]
    if missing:
        raise InvalidInputError(f"{len(missing)} of {n} labels are missing", missing)
    return [str(v) for v in values]


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be an integer >= 0, got {seed!r}")
    return int(seed)


def project(vectors: NDArray[Any], method: Method = "pca", *, seed: int = 0) -> Matrix:
    """2-D coordinates of ``vectors`` ``(n, d)``: float32 ``(n, 2)``, row ``i`` for ``vectors[i]``.

    ``method``: ``"pca"``, ``"tsne"`` or ``"umap"`` (see the module docstring for
    the formulas); deterministic for a given ``seed``. Needs ``n >= 2`` rows and
    ``d >= 2`` columns (``n >= 4`` for t-SNE and UMAP).
    """
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    seed = check_seed(seed)
    if not isinstance(vectors, np.ndarray):
        raise ConfigError(f"vectors must be a NumPy (n, d) array, not {type(vectors).__name__}")
    x = normalize(_matrix(vectors))
    n, d = x.shape
    least = 2 if method == "pca" else 4
    if n < least or d < 2:
        raise DimensionMismatchError(
            f"a {method} map needs at least {least} vectors of dimension >= 2, got shape {x.shape}"
        )
    out: NDArray[Any] = _PROJECTIONS[method](x, seed)
    return np.ascontiguousarray(out, dtype=np.float32)


def _pca(x: Matrix, seed: int) -> NDArray[Any]:
    decomposition = require("sklearn.decomposition", EXTRA)
    pca = decomposition.PCA(n_components=2, svd_solver="full", random_state=seed)
    out: NDArray[Any] = pca.fit_transform(x.astype(np.float64))
    return out


def _tsne(x: Matrix, seed: int) -> NDArray[Any]:
    manifold = require("sklearn.manifold", EXTRA)
    n = x.shape[0]
    tsne = manifold.TSNE(
        n_components=2, perplexity=min(30.0, (n - 1) / 3), init="pca", random_state=seed
    )
    out: NDArray[Any] = tsne.fit_transform(x.astype(np.float64))
    return out


def _umap(x: Matrix, seed: int) -> NDArray[Any]:
    umap = need("umap", "umap-learn")
    reducer = umap.UMAP(n_components=2, n_neighbors=min(15, x.shape[0] - 1), random_state=seed)
    out: NDArray[Any] = reducer.fit_transform(x)
    return out


_PROJECTIONS: dict[str, Callable[[Matrix, int], NDArray[Any]]] = {
    "pca": _pca,
    "tsne": _tsne,
    "umap": _umap,
}


def save_atomic(path: str | os.PathLike[str], write: Callable[[Path], object]) -> Path:
    """Call ``write(partial)`` on a hidden file beside ``path``, then rename it to ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    try:
        write(partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def suffix_of(path: str | os.PathLike[str], allowed: Sequence[str], hint: str) -> str:
    """The file type of ``path`` (``"png"``...), or a :class:`ConfigError` listing ``allowed``."""
    if not isinstance(path, (str, os.PathLike)):
        raise ConfigError(f"path must be a str or a path, not {type(path).__name__}")
    kind = Path(path).suffix.lower().lstrip(".")
    if kind not in allowed:
        raise ConfigError(
            f"cannot save a plot as {Path(path).name!r}: use {', '.join('.' + a for a in allowed)}"
            f"{hint}"
        )
    return kind


def short(text: str, max_chars: int) -> str:
    """``text`` on one line, cut to ``max_chars`` characters (an ellipsis marks a cut)."""
    line = " ".join(text.split())
    return line if len(line) <= max_chars else line[: max_chars - 1] + "…"
