"""Notebook views: ``_repr_html_`` of hits, an index, an embedded frame and evaluation results.

Each view is parsed back with the standard library's HTML parser: the tables must
hold the real values, and user text (``<script>`` in ids, metadata, texts, model
names) must come back as text, never as a tag.
"""

from __future__ import annotations

import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import embedkit
from embedkit import _html
from embedkit.evaluate import (
    compare,
    evaluate_classification,
    evaluate_retrieval,
    evaluate_similarity,
    reviews_retrieval,
)
from embedkit.frame import embed_frame
from embedkit.search.index import Hit, VectorIndex

EVIL = '<script>alert("x")</script>'


class _Parsed(HTMLParser):
    """Tags seen, and the text of every table cell in order."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.cells: list[str] = []
        self.text: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.cells.append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def parse(markup: str) -> _Parsed:
    assert isinstance(markup, str) and markup.strip()
    parser = _Parsed()
    parser.feed(markup)
    parser.close()
    assert "script" not in parser.tags, markup
    return parser


def test_hit_shows_id_score_and_escaped_metadata() -> None:
    hit = Hit(EVIL, 0.875, {"title": EVIL, "n": 3})
    parsed = parse(hit._repr_html_())
    assert parsed.cells[:3] == ["id", "score", "metadata"]
    assert parsed.cells[3] == EVIL  # the text itself, shown as text
    assert parsed.cells[4] == "0.8750"
    assert parsed.cells[5] == f"title: {EVIL}; n: 3"


def test_index_shows_size_dim_spec_store_and_first_rows() -> None:
    texts = [f"review {i} {EVIL}" for i in range(8)]
    ids = [f"id-{i}<b>" for i in range(8)]
    index = VectorIndex.from_texts(
        texts, "hashing?dim=64", ids=ids, metadata=[{"text": t} for t in texts], cache=False
    )
    markup = index._repr_html_()
    parsed = parse(markup)
    caption = "".join(parsed.text)
    assert "rows: 8" in caption and "dim: 64" in caption and "store: exact" in caption
    assert index.spec is not None and index.spec in caption
    body = parsed.cells[3:]
    assert len(body) == 3 * _html.ROWS  # id, metadata, vector for the first rows only
    assert body[0::3] == ids[: _html.ROWS]
    assert body[1] == f"text: {texts[0]}"
    first = [float(x) for x in body[2].strip("[]…, ").split(",")]
    np.testing.assert_allclose(first, index.vectors[0, : len(first)], atol=1e-4)
    assert f"{8 - _html.ROWS} more rows" in caption


def test_empty_index_still_renders() -> None:
    parsed = parse(VectorIndex(16)._repr_html_())
    assert "rows: 0" in "".join(parsed.text)
    assert parsed.cells == ["id", "metadata", "vector"]


def test_embedded_frame_shows_rows_vectors_and_report() -> None:
    df = pd.DataFrame({"text": [EVIL, "a cup of tea", None, "x" * 300], "stars": [5, 4, 1, 2]})
    ef = embed_frame(df, "hashing?dim=32", cache=False)
    parsed = parse(ef._repr_html_())
    caption = "".join(parsed.text)
    assert "rows: 3" in caption and "dim: 32" in caption and "1 dropped" in caption
    assert EVIL in parsed.cells
    assert "embedding" in parsed.cells
    assert not any(len(c) > _html.MAX_CHARS for c in parsed.cells)  # long texts are cut
    assert any(c.startswith("x" * 10) and c.endswith("…") for c in parsed.cells)


def test_comparison_table_uses_the_frame_and_escapes_model_names(reviews_csv: Path) -> None:
    task = reviews_retrieval(reviews_csv, limit=60)
    result = compare({EVIL: "hashing?dim=256", "small": "hashing?dim=16"}, task, progress=False)
    parsed = parse(result._repr_html_())
    frame = result.to_frame()
    for column in frame.columns:
        assert str(column) in parsed.cells
    assert EVIL in parsed.cells
    caption = "".join(parsed.text)
    assert f"best: {result.best.model}" in caption and "mrr@10" in caption
    quality = frame["mrr@10"].tolist()
    assert f"{quality[0]:.4f}" in parsed.cells and f"{quality[1]:.4f}" in parsed.cells


def test_every_result_type_renders_its_frame() -> None:
    model = embedkit.load("hashing?dim=128")
    corpus = ["dog food", "hot sauce", "green tea", "black coffee"]
    retrieval = evaluate_retrieval(
        model, ["food for dogs", "coffee"], corpus, [{0}, {3}], k=(1, 2), cache=False
    )
    similarity = evaluate_similarity(
        model,
        [("dog food", "food for dogs"), ("tea", "sauce"), ("coffee", "black coffee")],
        [5.0, 0.5, 4.0],
        cache=False,
        task=EVIL,
    )
    texts = [f"great {w}" for w in "abcdefghij"] + [f"awful {w}" for w in "abcdefghij"]
    labels = ["pos"] * 10 + ["neg"] * 10
    classification = evaluate_classification(model, texts, labels, folds=2, cache=False)
    for result in (retrieval, similarity, classification):
        parsed = parse(result._repr_html_())
        assert f"score: {result.score:.4f}" in "".join(parsed.text)
        for column in result.to_frame().columns:
            assert str(column) in parsed.cells
    assert EVIL in "".join(parse(similarity._repr_html_()).text)
    retrieval_cells = parse(retrieval._repr_html_()).cells
    assert f"{retrieval.at('recall@2'):.4f}" in retrieval_cells


def test_result_without_pandas_falls_back_to_the_plain_table(
    reviews_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = reviews_retrieval(reviews_csv, limit=30)
    result = compare({EVIL: "hashing?dim=64"}, task, progress=False)
    monkeypatch.setitem(sys.modules, "pandas", None)  # pandas cannot be imported
    parsed = parse(result._repr_html_())
    assert "pre" in parsed.tags
    assert str(result) in "".join(parsed.text)
