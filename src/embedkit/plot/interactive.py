"""Plotly variants, for HTML pages and notebooks: hover a point to read its text.

:func:`embedding_map_plotly` draws what :func:`~embedkit.plot.embedding_map` draws
(the same projection, one trace per label in sorted order, named
``"<label> (<count>)"``) and returns a ``plotly.graph_objects.Figure``; with
``path`` it writes ``.html`` (``plotlyjs="inline"``: the page works offline, about
4.5 MB; ``"cdn"``: a small page that loads plotly.js from its CDN) or ``.json``.
Hover texts are HTML-escaped. plotly is an optional package of its own
(``pip install plotly``).
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np

from embedkit.errors import ConfigError
from embedkit.jobs.cache import CacheOption
from embedkit.jobs.embed import ModelLike
from embedkit.plot._data import (
    Data,
    Label,
    Method,
    labels_of,
    need,
    project,
    save_atomic,
    short,
    suffix_of,
    vectors_of,
)

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = ["embedding_map_plotly"]

HTML_FORMATS = ("html", "json")
PlotlyJs = Literal["inline", "cdn"]


def embedding_map_plotly(
    data: Data,
    labels: Sequence[Label] | str | None = None,
    *,
    model: ModelLike = None,
    method: Method = "pca",
    hover: Sequence[str] | None = None,
    title: str | None = None,
    seed: int = 0,
    path: str | os.PathLike[str] | None = None,
    plotlyjs: PlotlyJs = "inline",
    max_chars: int = 120,
    cache: CacheOption = True,
    progress: bool | None = None,
) -> go.Figure:
    """An interactive 2-D map (see the module docstring); ``hover`` defaults to the texts."""
    graph = need("plotly.graph_objects", "plotly")
    if plotlyjs not in ("inline", "cdn"):
        raise ConfigError(f"plotlyjs must be 'inline' or 'cdn', got {plotlyjs!r}")
    kind = None if path is None else suffix_of(path, HTML_FORMATS, " (PNG/SVG: embedding_map)")
    vectors, texts = vectors_of(data, model, cache=cache, progress=progress)
    n = vectors.shape[0]
    names = labels_of(data, labels, n)
    tips = list(hover) if hover is not None else texts
    if tips is not None and (len(tips) != n or not all(isinstance(t, str) for t in tips)):
        raise ConfigError(f"hover must be {n} strings, one per point")
    coords = project(vectors, method, seed=seed)
    fig = graph.Figure()
    values = np.asarray(names if names is not None else [""] * n, dtype=object)
    for name in sorted(set(values.tolist())):
        rows = np.flatnonzero(values == name)
        fig.add_trace(
            graph.Scatter(
                x=coords[rows, 0].tolist(),
                y=coords[rows, 1].tolist(),
                mode="markers",
                name=f"{html.escape(name)} ({len(rows)})" if names is not None else "points",
                text=None
                if tips is None
                else [html.escape(short(tips[i], max_chars)) for i in rows],
                hoverinfo="text" if tips is not None else "x+y",
                marker={"size": 6, "opacity": 0.75},
            )
        )
    fig.update_layout(
        title=html.escape(title if title is not None else f"{n} vectors, {method}"),
        xaxis_title=f"{method} 1",
        yaxis_title=f"{method} 2",
        legend_title="label",
        template="plotly_white",
    )
    if path is not None:
        include: bool | str = True if plotlyjs == "inline" else "cdn"
        if kind == "html":
            save_atomic(path, lambda p: fig.write_html(str(p), include_plotlyjs=include))
        else:
            save_atomic(path, lambda p: p.write_text(fig.to_json(), encoding="utf-8"))
    return fig
