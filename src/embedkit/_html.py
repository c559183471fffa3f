"""Notebook views: the ``_repr_html_`` of hits, indexes, embedded frames and evaluation results.

Jupyter shows an object by calling its ``_repr_html_()``; those methods are one
line each and call the builders here, so that the HTML lives in one place. Every
piece of user text (ids, metadata, texts, model names, specs) goes through
:func:`escape` (``html.escape`` after truncation), and tables of a DataFrame use
pandas' own ``to_html`` (which escapes its cells). pandas is imported only by
the objects that already hold or build a DataFrame; nothing here imports it.

Every builder returns one ``str``: an HTML fragment (a ``<div>`` with a caption
line and a ``<table>``), never ``None``.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from numpy.typing import NDArray

from embedkit.errors import MissingDependencyError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "MAX_CHARS",
    "ROWS",
    "embedded_frame",
    "escape",
    "hit",
    "index",
    "result",
    "table",
    "vector_preview",
]

MAX_CHARS = 80  # longest cell text before it is cut with an ellipsis
ROWS = 5  # rows shown of an index or a frame
VALUES = 4  # vector values shown per row
STYLE = "border-collapse:collapse;font-size:90%"
CELL = "padding:2px 8px;text-align:left;border-bottom:1px solid #ddd"


class _HitLike(Protocol):
    @property
    def id(self) -> Any: ...

    @property
    def score(self) -> float: ...

    @property
    def metadata(self) -> Any: ...


class _IndexLike(Protocol):
    dim: int
    spec: str | None
    store: Any

    @property
    def vectors(self) -> NDArray[np.float32]: ...

    def __len__(self) -> int: ...


def escape(value: object, max_chars: int = MAX_CHARS) -> str:
    """``html.escape(str(value))``, cut to ``max_chars`` characters (an ellipsis marks a cut)."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > max_chars:
        text = text[: max_chars - 1] + "…"
    return html.escape(text, quote=True)


def _number(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.4f}"


def _cell(value: object) -> str:
    if isinstance(value, (float, np.floating)):
        return _number(float(value))
    if isinstance(value, Mapping):
        return escape("; ".join(f"{k}: {v}" for k, v in value.items()))
    return escape("" if value is None else value)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """An HTML ``<table>``: one header row, then ``rows``; every cell escaped (floats: 4 places)."""
    head = "".join(f'<th style="{CELL}">{escape(h)}</th>' for h in headers)
    body = "".join(
        "<tr>" + "".join(f'<td style="{CELL}">{_cell(v)}</td>' for v in row) + "</tr>"
        for row in rows
    )
    return f'<table style="{STYLE}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _box(caption: str, body: str) -> str:
    return f'<div class="embedkit"><div style="margin-bottom:4px">{caption}</div>{body}</div>'


def _fields(title: str, fields: Sequence[tuple[str, object]]) -> str:
    parts = " · ".join(f"{escape(k)}: <code>{_cell(v)}</code>" for k, v in fields)
    return f"<b>{escape(title)}</b> {parts}"


def vector_preview(row: NDArray[Any], values: int = VALUES) -> str:
    """The first ``values`` numbers of a vector, ``"[0.0123, -0.0456, …]"`` (plain text)."""
    shown = ", ".join(f"{float(x):.4f}" for x in row[:values])
    return f"[{shown}{', …' if row.shape[0] > values else ''}]"


def hit(h: _HitLike) -> str:
    """One search result: its id, score and metadata."""
    return table(["id", "score", "metadata"], [[h.id, float(h.score), h.metadata]])


def index(ix: _IndexLike, ids: Sequence[Any], metadata: Sequence[Any]) -> str:
    """A :class:`~embedkit.search.index.VectorIndex`: size, width, model, store kind, and its
    first rows (``ids``, ``metadata``: those rows' ids and metadata, ``len(ids) <= ROWS``)."""
    store = getattr(ix.store, "kind", type(ix.store).__name__)
    caption = _fields(
        "VectorIndex", [("rows", len(ix)), ("dim", ix.dim), ("spec", ix.spec), ("store", store)]
    )
    vectors = ix.vectors
    lines = [
        [i, m, vector_preview(vectors[r])]
        for r, (i, m) in enumerate(zip(ids, metadata, strict=True))
    ]
    more = f"<div>… {len(ix) - len(lines)} more rows</div>" if len(ix) > len(lines) else ""
    return _box(caption, table(["id", "metadata", "vector"], lines) + more)


def embedded_frame(ef: Any, rows: int = ROWS) -> str:
    """An :class:`~embedkit.frame.EmbeddedFrame`: size, width, model, report, first rows + vectors."""
    report = ef.report
    actions = report["action"].value_counts().to_dict() if len(report) else {}
    left = ", ".join(f"{v} {k}" for k, v in sorted(actions.items())) or "none"
    caption = _fields(
        "EmbeddedFrame", [("rows", len(ef)), ("dim", ef.dim), ("spec", ef.spec), ("report", left)]
    )
    head: pd.DataFrame = ef.rows.head(rows).copy()
    head["embedding"] = [vector_preview(v) for v in ef.vectors[: len(head)]]
    more = f"<div>… {len(ef) - len(head)} more rows</div>" if len(ef) > len(head) else ""
    return _box(caption, _frame_html(head) + more)


def _frame_html(frame: pd.DataFrame) -> str:
    """pandas' ``to_html`` with its cells escaped and long texts cut."""
    shown = frame.copy()
    for column in shown.columns:
        if shown[column].dtype.kind not in "biufcmM":  # text, object or string columns
            shown[column] = [
                v if not isinstance(v, str) or len(v) <= MAX_CHARS else v[: MAX_CHARS - 1] + "…"
                for v in shown[column]
            ]
    out: str = shown.to_html(escape=True, border=0, float_format=_number, max_rows=50)
    return out


def result(obj: Any, title: str, to_frame: Callable[[], pd.DataFrame]) -> str:
    """An evaluation result or a comparison: a caption (task, metric, score) and its frame.

    Without pandas the table is the object's plain text (``str(obj)``) in a ``<pre>``.
    """
    fields: list[tuple[str, object]] = [("task", obj.task), ("metric", obj.metric)]
    score = getattr(obj, "score", None)
    if isinstance(score, (int, float)):
        fields.append(("score", float(score)))
    if isinstance(getattr(type(obj), "best", None), property) and len(obj):
        fields.append(("best", obj.best.model))
    try:
        body = _frame_html(to_frame())
    except MissingDependencyError:
        body = f"<pre>{html.escape(str(obj))}</pre>"
    return _box(_fields(title, fields), body)
