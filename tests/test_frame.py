"""The review-search workflow on the tutorial's own data: 1,000 Amazon fine-food reviews."""

from __future__ import annotations

import ast
import builtins
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import embedkit
from embedkit.errors import ConfigError, InvalidInputError, ModelMismatchError, TextTooLongError
from embedkit.frame import EmbeddedFrame, embed_frame, read_tutorial_csv
from embedkit.jobs.cache import default_cache_path
from embedkit.jobs.tables import Template, build_texts, parse_float_lists
from openai_server import OpenAIServer, expected_matrix
from test_pipeline import CountingEmbedder

TEMPLATE = "Title: {Summary}; Content: {Text}"
HASH = "hashing?dim=256"
LONG = " ".join(["delicious crunchy"] * 400)  # ~800 word pieces: over MiniLM's 256


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDKIT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def reviews(reviews_csv: Path) -> pd.DataFrame:
    """The 1,000 reviews plus four rows the tutorial never checks for."""
    df = pd.read_csv(reviews_csv, index_col=0)
    extra = pd.DataFrame(
        {
            "Summary": [np.nan, "Empty review", "Endless", None],
            "Text": ["No title here", "   ", LONG, "Untitled too"],
            "Score": [3, 1, 5, 2],
        },
        index=[1000, 1001, 1002, 1003],
    )
    return pd.concat([df, extra])


def brute_force(ef: EmbeddedFrame, query: str, k: int) -> list[Any]:
    model = embedkit.load(ef.spec) if ef.spec else None
    assert model is not None
    q = model.embed([query])[0].astype(np.float64)
    m = ef.vectors.astype(np.float64)
    scores = m @ q / np.maximum(np.linalg.norm(m, axis=1) * np.linalg.norm(q), 1e-30)
    return list(ef.rows.index[np.argsort(-scores, kind="stable")[:k]])


def test_template_reports_and_drops_missing_fields(reviews: pd.DataFrame) -> None:
    built = build_texts(reviews, template=TEMPLATE)
    assert built.loc[1, "text"] == (
        "Title: Arrived in pieces; Content: Not pleased at all. When I opened the box, most "
        "of the rings were broken in pieces. A total waste of money."
    )
    assert built["problem"].notna().sum() == 3
    ef = embed_frame(reviews, HASH, template=TEMPLATE)
    assert len(ef) == 1001 and ef.vectors.shape == (1001, 256)
    assert ef.report["row"].tolist() == [1000, 1001, 1003]
    assert set(ef.report["action"]) == {"dropped"}
    assert ef.report["reason"].tolist() == [
        "field 'Summary': NaN (missing value)",
        "field 'Text': whitespace-only",
        "field 'Summary': NaN (missing value)",  # pandas stores None as NaN
    ]
    assert list(ef.rows.index[:3]) == [0, 1, 2] and 1002 in ef.rows.index
    assert ef.rows["n_tokens"].dtype == "Int64" and (ef.rows["n_tokens"] > 0).all()
    with pytest.raises(InvalidInputError) as info:
        embed_frame(reviews, HASH, template=TEMPLATE, on_missing="error")
    assert info.value.positions == [1000, 1001, 1003]


def test_template_and_column_errors(reviews: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match="no column 'Title'"):
        embed_frame(reviews, HASH, template="{Title}: {Text}")
    with pytest.raises(ConfigError, match="not a field name"):
        Template("{} and {0}")
    with pytest.raises(ConfigError, match="names no field"):
        Template("plain text")
    with pytest.raises(ConfigError, match="no column 'text'"):
        embed_frame(reviews, HASH)  # default column "text" is absent
    assert Template("{Product Name}!").fill({"Product Name": 7}) == ("7!", None)
    with pytest.raises(ConfigError, match="on_long must be"):
        embed_frame(reviews, HASH, template=TEMPLATE, on_long="skip")  # type: ignore[arg-type]


def test_whole_workflow_with_hashing(reviews: pd.DataFrame, tmp_path: Path) -> None:
    ef = embed_frame(reviews, HASH, template=TEMPLATE)
    path = ef.save(tmp_path / "reviews.parquet")
    schema = pq.read_schema(path)
    assert schema.field("embedding").type == pa.list_(pa.float32(), 256)
    assert schema.metadata[b"embedkit.spec"] == embedkit.load(HASH).spec.encode()

    back = EmbeddedFrame.load(path)
    pd.testing.assert_frame_equal(back.rows, ef.rows)
    np.testing.assert_array_equal(back.vectors, ef.vectors)
    assert back.spec == ef.spec

    hits = back.search_rows("pet food", k=5)
    assert isinstance(hits, pd.DataFrame) and len(hits) == 5
    assert hits["score"].is_monotonic_decreasing
    assert list(hits.index) == brute_force(back, "pet food", 5)
    assert sum("food" in t.lower() or "pet" in t.lower() for t in hits["text"]) >= 3
    index_hits = back.to_index().search("pet food", k=5)
    assert [h.id for h in index_hits] == list(hits.index)
    assert index_hits[0].metadata is not None and index_hits[0].metadata["Score"] in range(1, 6)
    with pytest.raises(ModelMismatchError):
        back.search_rows("pet food", model="hashing?dim=128")


def test_the_cache_makes_a_second_run_free(reviews: pd.DataFrame) -> None:
    model = CountingEmbedder("hashing?dim=64")
    first = embed_frame(reviews.iloc[:200], model, template=TEMPLATE)
    assert 0 < model.texts_embedded <= 200
    model.calls.clear()
    again = embed_frame(reviews.iloc[:200], model, template=TEMPLATE)
    assert model.calls == []
    np.testing.assert_array_equal(again.vectors, first.vectors)
    assert again.rows["n_tokens"].isna().all()  # this embedder has no tokenizer


def test_csv_path_input_and_csv_errors(reviews_csv: Path, tmp_path: Path) -> None:
    ef = embed_frame(reviews_csv, HASH, template=TEMPLATE)
    assert len(ef) == 1000 and "Unnamed: 0" in ef.rows.columns
    latin = tmp_path / "latin.csv"
    latin.write_bytes("Text\ncaf\u00e9\n".encode("latin-1"))
    with pytest.raises(InvalidInputError, match="not valid UTF-8"):
        embed_frame(latin, HASH, column="Text")
    broken = tmp_path / "broken.csv"
    broken.write_text('Summary,Text\na,"fine"\nb,"unterminated\n', "utf-8")
    with pytest.raises(InvalidInputError, match="not well-formed CSV"):
        embed_frame(broken, HASH, column="Text")


# -- the tutorial's CSV of stringified lists -------------------------------------------
@pytest.fixture
def no_eval(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("eval/literal_eval must not be used")

    monkeypatch.setattr(ast, "literal_eval", forbidden)
    monkeypatch.setattr(builtins, "eval", forbidden)


def test_tutorial_csv_import_is_exact(reviews: pd.DataFrame, tmp_path: Path, no_eval: None) -> None:
    ef = embed_frame(reviews.iloc[:300], HASH, template=TEMPLATE)
    tutorial = ef.rows.copy()
    tutorial["embedding"] = [list(map(float, v)) for v in ef.vectors]  # as the tutorial stores it
    tutorial.to_csv(tmp_path / "tutorial.csv")
    back = read_tutorial_csv(tmp_path / "tutorial.csv", spec=ef.spec)
    np.testing.assert_array_equal(back.vectors, ef.vectors)
    assert back.rows["text"].tolist() == ef.rows["text"].tolist()
    back_hits = back.search_rows("pet food", k=3)
    assert back_hits["Unnamed: 0"].tolist() == list(ef.search_rows("pet food", k=3).index)


def test_tutorial_csv_bad_cells_are_named(no_eval: None) -> None:
    good = "[0.5, -1.25, 3e-05]"
    parsed = parse_float_lists([good, "[1, 2, 3]"])
    assert parsed.dtype == np.float32
    np.testing.assert_array_equal(parsed, np.float32([[0.5, -1.25, 3e-05], [1, 2, 3]]))
    cases = [
        ([good, "[0.5, abc, 1]", good], [(1, "not a list of finite floats")]),
        ([good, good, "[0.5, 1]"], [(2, "2 values, expected 3")]),
        ([float("nan"), good], [(0, "not a string")]),
        ([good, "0.5, 1, 2"], [(1, "not [..] bracketed")]),
        ([good, "[nan, 1, 2]"], [(1, "not a list of finite floats")]),
    ]
    for cells, rows in cases:
        with pytest.raises(InvalidInputError) as info:
            parse_float_lists(cells)
        assert info.value.rows == rows, cells


# -- the real model ---------------------------------------------------------------------
@pytest.mark.slow
def test_workflow_with_minilm_and_the_long_text_policy(
    reviews: pd.DataFrame, minilm: embedkit.Embedder, tmp_path: Path
) -> None:
    reviews = pd.concat([reviews.iloc[:150], reviews.loc[1000:1003]])  # 17 about pets
    with pytest.raises(TextTooLongError) as info:
        embed_frame(reviews, minilm, template=TEMPLATE, on_long="error")
    assert 1002 in reviews.index[info.value.positions]  # positions in the frame
    assert not default_cache_path().exists()  # refused before any work

    ef = embed_frame(reviews, minilm, template=TEMPLATE, on_long="truncate")
    truncated = ef.report[ef.report["action"] == "truncated"]
    assert 1002 in truncated["row"].tolist()
    assert (ef.rows.loc[truncated["row"], "n_tokens"] > 256).all()
    assert (ef.rows["n_tokens"] == minilm.count_tokens(ef.rows["text"].tolist())).all()

    dropped = embed_frame(reviews, minilm, template=TEMPLATE, on_long="drop")
    assert set(dropped.report.loc[dropped.report["action"] == "dropped", "row"]) == {
        1000,
        1001,
        1003,
        *truncated["row"],
    }
    assert len(dropped) == len(ef) - len(truncated)

    hits = ef.search_rows("pet food", k=5)
    pet_words = ("dog", "cat", "pet", "puppy", "kitten", "treat")
    assert sum(any(w in t.lower() for w in pet_words) for t in hits["text"]) >= 3, hits["text"]
    back = EmbeddedFrame.load(ef.save(tmp_path / "minilm.parquet"))
    assert list(back.search_rows("pet food", k=5, model=minilm).index) == list(hits.index)


# -- the OpenAI backend against the local server ------------------------------------------
@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as running:
        yield running


def test_workflow_with_openai_against_the_local_server(
    reviews: pd.DataFrame, server: OpenAIServer, tmp_path: Path
) -> None:
    config = {
        "backend": "openai",
        "model": "text-embedding-3-small",
        "dimensions": 256,
        "base_url": server.base_url,
        "api_key": server.api_key,
        "on_long": "truncate",
    }
    rows = pd.concat([reviews.iloc[:120], reviews.loc[[1000, 1002]]])
    rows.loc[1002, "Text"] = " ".join(["crunchy"] * 9000)  # over OpenAI's 8,192 tokens
    ef = embed_frame(rows, config, template=TEMPLATE, batch_size=50)
    assert ef.report.set_index("row")["action"].to_dict() == {1000: "dropped", 1002: "truncated"}
    assert server.api_key not in (ef.spec or "")
    plain = ef.rows.index != 1002
    want = expected_matrix(ef.rows["text"][plain].tolist(), "text-embedding-3-small", 256)
    np.testing.assert_allclose(ef.vectors[plain], want, atol=1e-6)
    assert ef.rows.loc[1002, "n_tokens"] > 8192

    chunked = embed_frame(rows, {**config, "on_long": "chunk"}, template=TEMPLATE, batch_size=50)
    assert chunked.report.set_index("row")["action"].to_dict() == {1000: "dropped", 1002: "chunked"}
    assert chunked.spec != ef.spec  # the policy changes vectors, so it is part of the cache key
    np.testing.assert_allclose(chunked.vectors[plain], want, atol=1e-6)
    assert not np.allclose(chunked.vectors[~plain], ef.vectors[~plain], atol=1e-3)

    requests = len(server.requests)
    again = embed_frame(rows, config, template=TEMPLATE, batch_size=50)
    assert len(server.requests) == requests  # all from the cache: no call to the API
    np.testing.assert_array_equal(again.vectors, ef.vectors)

    back = EmbeddedFrame.load(ef.save(tmp_path / "openai.parquet"))
    hits = back.search_rows("pet food", k=3, model=config)
    assert hits["score"].is_monotonic_decreasing and len(hits) == 3
    q = expected_matrix(["pet food"], "text-embedding-3-small", 256)[0]
    best = int(np.argmax(back.vectors @ q))
    assert hits.index[0] == back.rows.index[best]


def test_n_tokens_is_counted_where_the_model_has_a_tokenizer_but_no_limit() -> None:
    """The hashing backend has no token limit, but it counts tokens: the column says so."""
    df = pd.DataFrame({"body": ["a b", "pet food is good", "猫粮很好"]})
    ef = embed_frame(df, "hashing?dim=16", template="{body}", cache=False)
    counts = embedkit.load("hashing?dim=16").count_tokens(df["body"].tolist())  # type: ignore[attr-defined]
    assert ef.rows["n_tokens"].tolist() == counts.tolist() and counts.tolist()[:2] == [2, 4]
    plain = CountingEmbedder()  # no tokenizer at all: the column stays empty, nothing fails
    assert embed_frame(df, plain, template="{body}", cache=False).rows["n_tokens"].isna().all()
