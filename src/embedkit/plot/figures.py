"""Matplotlib figures: a 2-D map of vectors, word arrows, a similarity heatmap.

Each function returns a :class:`matplotlib.figure.Figure` built with the
object-oriented API on the non-interactive Agg canvas (pyplot's global state is
never touched and nothing is shown), and writes it to ``path`` when given one
(``.png``, ``.svg`` or ``.pdf``; written to a hidden file beside it, then renamed).
In a notebook the returned Figure displays itself.

What is drawn, so that a test (or a reader) can find it again:

* :func:`embedding_map`: one scatter (``ax.collections[j]``) per label, in sorted
  label order, whose offsets are the :func:`~embedkit.plot.project` coordinates
  of that label's rows (in row order); the legend reads ``"<label> (<count>)"``.
* :func:`word_arrows`: one point and one text per distinct word, one arrow per pair
  ``a -> b`` (``ax.patches``), over the PCA of those words' unit vectors.
* :func:`similarity_heatmap`: ``ax.images[0]`` holds ``res[i, j] = cos(v[i], v[j])``
  (:func:`embedkit.search.kernels.cosine_similarity`), with a colour bar.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from embedkit._optional import require
from embedkit.errors import ConfigError, InvalidInputError
from embedkit.jobs.cache import CacheOption
from embedkit.jobs.embed import ModelLike
from embedkit.plot._data import (
    EXTRA,
    Data,
    Label,
    Method,
    labels_of,
    project,
    save_atomic,
    short,
    suffix_of,
    vectors_of,
)
from embedkit.search.kernels import cosine_similarity
from embedkit.words.vectors import WordVectors

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["FORMATS", "MAX_HEATMAP", "embedding_map", "save", "similarity_heatmap", "word_arrows"]

FORMATS = ("png", "svg", "pdf")
MAX_HEATMAP = 40  # a heatmap is for a handful of texts: its cells stay readable
MAX_CLASSES = 20
DPI = 100
Size = tuple[float, float]


def _figure(size: Size) -> tuple[Figure, Axes]:
    figure_module = require("matplotlib.figure", EXTRA)
    backend = require("matplotlib.backends.backend_agg", EXTRA)
    fig: Figure = figure_module.Figure(figsize=size, dpi=DPI, layout="constrained")
    backend.FigureCanvasAgg(fig)  # the Agg canvas: no GUI, no pyplot
    return fig, fig.add_subplot()


def save(fig: Figure, path: str | os.PathLike[str], *, dpi: int = DPI) -> Path:
    """Write ``fig`` to ``path`` (``.png``, ``.svg`` or ``.pdf``) atomically; return the path."""
    kind = suffix_of(path, FORMATS, " (HTML: the *_plotly functions)")

    def write(partial: Path) -> None:
        with warnings.catch_warnings():  # _cjk_fonts said it once; not once per glyph
            warnings.filterwarnings("ignore", message="Glyph .* missing from font")
            fig.savefig(partial, format=kind, dpi=dpi)

    return save_atomic(path, write)


# Fonts with Chinese/Japanese glyphs, most common first; the first one installed is used
# for texts that need it (matplotlib's default DejaVu Sans has none).
CJK_FONTS = (
    "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei", "Microsoft YaHei", "SimHei", "PingFang SC", "Heiti SC",
    "Hiragino Sans GB", "Arial Unicode MS", "Noto Sans CJK JP",
)  # fmt: skip
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")


def _cjk_fonts(fig: Figure) -> None:
    """Give every text with CJK characters a font that has them, or warn once why not."""
    text_module = require("matplotlib.text", EXTRA)
    texts = [t for t in fig.findobj(text_module.Text) if _CJK.search(t.get_text())]
    if not texts:
        return
    manager = require("matplotlib.font_manager", EXTRA).fontManager
    installed = {f.name for f in manager.ttflist}
    found = [name for name in CJK_FONTS if name in installed]
    if not found:
        warnings.warn(
            "no font with Chinese/Japanese/Korean glyphs is installed, so those labels "
            "draw as boxes; install one (e.g. Debian's fonts-noto-cjk) and it is used",
            UserWarning,
            stacklevel=3,
        )
        return
    for text in texts:
        text.set_fontfamily([found[0], "DejaVu Sans"])


def _finish(fig: Figure, path: str | os.PathLike[str] | None) -> Figure:
    _cjk_fonts(fig)
    if path is not None:
        save(fig, path)
    return fig


def embedding_map(
    data: Data,
    labels: Sequence[Label] | str | None = None,
    *,
    model: ModelLike = None,
    method: Method = "pca",
    annotate: Sequence[str] | None = None,
    title: str | None = None,
    seed: int = 0,
    path: str | os.PathLike[str] | None = None,
    size: Size = (7.0, 5.5),
    max_chars: int = 30,
    cache: CacheOption = True,
    progress: bool | None = None,
) -> Figure:
    """A 2-D map of ``data`` (vectors, texts + ``model``, or an EmbeddedFrame), one colour per label.

    ``labels``: one per row (or a column of an EmbeddedFrame), at most 20 distinct;
    ``annotate``: one text per row written beside its point (cut to ``max_chars``);
    ``method``/``seed``: the projection (:func:`~embedkit.plot.project`).
    """
    vectors, _ = vectors_of(data, model, cache=cache, progress=progress)
    n = vectors.shape[0]
    names = labels_of(data, labels, n)
    notes = _annotations(annotate, n)
    coords = project(vectors, method, seed=seed)
    fig, ax = _figure(size)
    groups = _groups(names, n)
    for colour, (name, rows) in enumerate(groups):
        ax.scatter(
            coords[rows, 0],
            coords[rows, 1],
            s=14,
            alpha=0.75,
            color=f"C{colour % 10}",
            label=None if name is None else f"{name} ({len(rows)})",
            edgecolors="none",
        )
    if names is not None:
        ax.legend(title="label", loc="best", fontsize=8, markerscale=1.5)
    for i, text in enumerate(notes or []):
        ax.annotate(short(text, max_chars), coords[i], fontsize=7, alpha=0.8)
    ax.set_xlabel(f"{method} 1")
    ax.set_ylabel(f"{method} 2")
    ax.set_title(title if title is not None else f"{n} vectors, {method}")
    return _finish(fig, path)


def _groups(names: list[str] | None, n: int) -> list[tuple[str | None, Any]]:
    if names is None:
        return [(None, np.arange(n))]
    values = np.asarray(names, dtype=object)
    classes = sorted(set(names))
    if len(classes) > MAX_CLASSES:
        raise ConfigError(f"{len(classes)} distinct labels; a map colours at most {MAX_CLASSES}")
    return [(c, np.flatnonzero(values == c)) for c in classes]


def _annotations(annotate: Sequence[str] | None, n: int) -> list[str] | None:
    if annotate is None:
        return None
    if isinstance(annotate, str) or not isinstance(annotate, Sequence):
        raise ConfigError(f"annotate must be a list of texts, not {type(annotate).__name__}")
    if len(annotate) != n:
        raise ConfigError(f"{len(annotate)} annotations for {n} points")
    bad = [(i, type(t).__name__) for i, t in enumerate(annotate) if not isinstance(t, str)]
    if bad:
        raise InvalidInputError("annotations must be strings", bad)
    return list(annotate)


def word_arrows(
    words: WordVectors,
    pairs: Sequence[tuple[str, str]],
    *,
    extra: Sequence[str] = (),
    title: str | None = None,
    path: str | os.PathLike[str] | None = None,
    size: Size = (6.5, 5.5),
) -> Figure:
    """Word pairs as arrows ``a -> b`` on the PCA of their vectors (e.g. analogy pairs).

    ``pairs = [("man", "king"), ("woman", "queen")]``: parallel arrows of similar
    length show a shared offset ``b - a``. ``extra`` words are drawn as points
    only. Words without a vector raise :class:`~embedkit.errors.OutOfVocabularyError`.
    """
    if not isinstance(words, WordVectors):
        raise ConfigError(f"words must be a WordVectors, not {type(words).__name__}")
    bad = [(i, "not a (word, word) pair") for i, p in enumerate(pairs) if not _is_pair(p)]
    if bad or not pairs:
        raise InvalidInputError("pairs must be (word, word) tuples (at least one)", bad)
    if isinstance(extra, str) or not all(isinstance(w, str) for w in extra):
        raise ConfigError("extra must be a list of words")
    distinct = list(dict.fromkeys([*(w for p in pairs for w in p), *extra]))
    coords = project(words.lookup(distinct), "pca")
    where = {w: coords[i] for i, w in enumerate(distinct)}
    fig, ax = _figure(size)
    ax.scatter(coords[:, 0], coords[:, 1], s=18, color="C0", zorder=3)
    for word, (x, y) in where.items():
        ax.annotate(word, (x, y), xytext=(4, 4), textcoords="offset points", fontsize=9)
    for a, b in pairs:
        ax.annotate(
            "",
            xy=where[b],
            xytext=where[a],
            arrowprops={"arrowstyle": "->", "color": "C1", "lw": 1.4, "shrinkA": 3, "shrinkB": 3},
        )
    ax.set_xlabel("pca 1")
    ax.set_ylabel("pca 2")
    ax.set_title(title if title is not None else f"{len(pairs)} word pairs")
    return _finish(fig, path)


def _is_pair(pair: object) -> bool:
    return (
        isinstance(pair, (tuple, list)) and len(pair) == 2 and all(isinstance(w, str) for w in pair)
    )


def similarity_heatmap(
    data: Data,
    *,
    model: ModelLike = None,
    labels: Sequence[str] | None = None,
    title: str | None = None,
    path: str | os.PathLike[str] | None = None,
    size: Size | None = None,
    max_chars: int = 40,
    cache: CacheOption = True,
    progress: bool | None = None,
) -> Figure:
    """The cosine matrix of a handful (<= 40) of texts or vectors as a heatmap.

    ``res[i, j] = cos(v[i], v[j])`` (float32 ``(n, n)``, in ``ax.images[0]``); rows
    and columns are labelled by ``labels``, else the texts (cut to ``max_chars``),
    else the row numbers; cells show their value when ``n <= 15``.
    """
    vectors, texts = vectors_of(data, model, cache=cache, progress=progress)
    n = vectors.shape[0]
    if not 1 <= n <= MAX_HEATMAP:
        raise ConfigError(f"a heatmap takes 1 to {MAX_HEATMAP} texts, got {n}")
    names = list(labels) if labels is not None else texts or [str(i) for i in range(n)]
    if len(names) != n or not all(isinstance(x, str) for x in names):
        raise ConfigError(f"labels must be {n} strings, one per row")
    matrix = cosine_similarity(vectors, vectors)
    side = 2.5 + 0.4 * n
    fig, ax = _figure(size or (side + 2.0, side))
    image = ax.imshow(matrix, cmap="viridis", vmin=min(0.0, float(matrix.min())), vmax=1.0)
    fig.colorbar(image, ax=ax, label="cosine similarity", shrink=0.8)
    ticks = [short(x, max_chars) for x in names]
    ax.set_xticks(range(n), ticks, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), ticks, fontsize=8)
    if n <= 15:
        for i in range(n):
            for j in range(n):
                dark = matrix[i, j] < 0.6
                ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if dark else "black")  # fmt: skip
    ax.set_title(title if title is not None else "cosine similarity")
    return _finish(fig, path)
