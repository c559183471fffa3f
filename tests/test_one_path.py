"""Every way from text to vectors is the job path; every search is the search seam."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.typing import NDArray

import embedkit
from embedkit.backends.hashing import HashingEmbedder
from embedkit.cli import main
from embedkit.errors import (
    ConfigError,
    DimensionMismatchError,
    InvalidInputError,
    ModelMismatchError,
    TextTooLongError,
)
from embedkit.frame import EmbeddedFrame, embed_frame
from embedkit.jobs.cache import EmbeddingCache
from embedkit.jobs.embed import EmbedJob
from embedkit.search.index import VectorIndex
from embedkit.search.writer import IndexWriter
from test_pipeline import CountingEmbedder

ODD = "line\u2028separator, para\u2029graph, next\u0085line"


class CountingTokens(HashingEmbedder):
    """The hashing backend with a token limit, counting every ``count_tokens`` call."""

    backend = "hashing"

    def __init__(self, limit: int = 6, on_long: str = "truncate") -> None:
        super().__init__(dim=32)
        self.limit = limit
        self.on_long = on_long  # type: ignore[assignment]
        self.counted: list[int] = []

    @property
    def max_tokens(self) -> int:
        return self.limit

    def count_tokens(self, texts: Sequence[str]) -> NDArray[np.int64]:
        self.counted.append(len(texts))
        return super().count_tokens(texts)

    def _truncate(self, text: str) -> str:
        return " ".join(text.split()[: self.limit])


TEXTS = [
    "a short one",
    "one two three four five six seven eight",
    "pet food",
    "a b c d e f g h i j",
]


def test_tokens_are_counted_once_per_text_in_embed_and_embed_frame() -> None:
    model = CountingTokens()
    with pytest.warns(embedkit.errors.EmbedkitWarning, match="2 of the 4 texts"):
        embedkit.embed(TEXTS, model, cache=False, batch_size=2)
    assert sum(model.counted) == len(TEXTS)

    model = CountingTokens()
    ef = embed_frame(pd.DataFrame({"text": TEXTS}), model, cache=False, batch_size=3)
    assert sum(model.counted) == len(TEXTS)
    assert ef.report["action"].tolist() == ["truncated", "truncated"]
    assert ef.rows["n_tokens"].tolist() == [3, 8, 2, 10]

    model = CountingTokens()
    dropped = embed_frame(pd.DataFrame({"text": TEXTS}), model, on_long="drop", cache=False)
    assert sum(model.counted) == len(TEXTS)
    assert dropped.rows["text"].tolist() == ["a short one", "pet food"]
    assert dropped.report["reason"].tolist() == ["8 tokens > 6", "10 tokens > 6"]


def test_on_long_error_refuses_before_any_work_and_names_every_row(tmp_path: Path) -> None:
    model = CountingTokens()
    cache = tmp_path / "c.sqlite3"
    with pytest.raises(TextTooLongError) as info:
        EmbedJob(TEXTS, model, on_long="error", cache=cache)
    assert info.value.positions == [1, 3] and not cache.exists()


def test_index_from_texts_and_add_go_through_the_cache(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "c.sqlite3")
    first = CountingEmbedder()
    index = VectorIndex.from_texts(TEXTS, first, cache=cache, batch_size=2)
    assert first.texts_embedded == len(TEXTS) and cache.count(first.spec) == len(TEXTS)
    again = CountingEmbedder()
    same = VectorIndex.from_texts(TEXTS, again, cache=cache)
    assert again.texts_embedded == 0  # every vector from the cache
    np.testing.assert_array_equal(same.vectors, index.vectors)
    index.add(["dog treats"], ids=["new"], cache=cache)
    assert cache.count(first.spec) == len(TEXTS) + 1 and index.ids[-1] == "new"


def test_a_failed_add_adds_nothing(hashing: embedkit.Embedder) -> None:
    index = VectorIndex.from_texts(["a", "b"], hashing, cache=False)
    with pytest.raises(ConfigError, match="duplicate id"):
        index.add(["c", "d"], ids=[2, 0], cache=False)
    with pytest.raises(InvalidInputError):
        index.add(["c", None], cache=False)  # type: ignore[list-item]
    assert len(index) == 2 and index.ids == [0, 1]


def test_the_streamed_index_equals_the_in_memory_one(
    tmp_path: Path, hashing: embedkit.Embedder
) -> None:
    texts = [f"review {i} about {'pets' if i % 3 else 'coffee'}" for i in range(1000)]
    job = EmbedJob(iter(texts), hashing, cache=False, batch_size=128)
    with IndexWriter(tmp_path / "streamed", job.dim, job.spec) as writer:
        for block in job.batches():
            writer.add(
                block.vectors,
                [f"r{i}" for i in block.rows],
                [{"text": texts[i]} for i in block.rows],
            )
        writer.commit()
    streamed = VectorIndex.load(tmp_path / "streamed", mmap=True)
    memory = VectorIndex.from_texts(texts, hashing, ids=[f"r{i}" for i in range(1000)], cache=False)
    assert streamed.spec == memory.spec and streamed.ids == memory.ids
    np.testing.assert_array_equal(streamed.vectors, memory.vectors)
    assert streamed.search("coffee", k=5) == memory.search("coffee", k=5)


def test_an_uncommitted_stream_leaves_the_previous_index(tmp_path: Path) -> None:
    VectorIndex.from_vectors(np.eye(4, dtype=np.float32), ids=list("abcd")).save(tmp_path / "i")
    with IndexWriter(tmp_path / "i", 4, None) as writer:
        writer.add(np.ones((2, 4)), ["x", "y"])
    assert VectorIndex.load(tmp_path / "i").ids == list("abcd")


def test_unicode_line_separators_in_metadata_round_trip(tmp_path: Path) -> None:
    index = VectorIndex.from_vectors(np.ones((2, 8)), metadata=[{"text": ODD}, {"text": "c"}])
    assert VectorIndex.load(index.save(tmp_path / "ix")).metadata == [{"text": ODD}, {"text": "c"}]
    corpus = tmp_path / "odd.jsonl"
    corpus.write_text("\n".join(json.dumps({"text": t}) for t in (ODD, "plain")) + "\n", "utf-8")
    assert main(["embed", str(corpus), "--out", str(tmp_path / "cli"), "-m", "hashing?dim=32"]) == 0
    assert VectorIndex.load(tmp_path / "cli").metadata[0] == {"text": ODD}
    frame = EmbeddedFrame(pd.DataFrame({"text": [ODD]}), np.ones((1, 8), np.float32), None)
    assert VectorIndex.load(frame.to_index().save(tmp_path / "f")).metadata == [{"text": ODD}]


def test_int_and_str_ids_stay_apart(tmp_path: Path) -> None:
    index = VectorIndex.from_vectors(np.eye(2, dtype=np.float32), ids=[1, "1"])
    assert VectorIndex.load(index.save(tmp_path / "i")).ids == [1, "1"]


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: VectorIndex.from_vectors(np.eye(2), metadata={"a": 1, "b": 2}), ConfigError),
        (lambda: VectorIndex.from_vectors(np.eye(2), ids="ab"), ConfigError),
        (lambda: VectorIndex.from_vectors(np.eye(2), metadata=["x", "y"]), ConfigError),
        (lambda: VectorIndex.from_vectors(np.ones((2, 2, 2))), DimensionMismatchError),
        (
            lambda: embedkit.embed(pd.DataFrame({"text": ["a"]}), "hashing", cache=False),
            ConfigError,
        ),
        (lambda: embedkit.embed({"a": 1}, "hashing", cache=False), ConfigError),
        (lambda: embedkit.embed(b"bytes", "hashing", cache=False), ConfigError),
    ],
)
def test_wrong_argument_types_are_refused(call: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        call()  # type: ignore[operator]


@pytest.mark.parametrize(
    "query",
    [
        np.array([np.nan, 1.0, 0.0, 0.0]),
        np.array([np.inf, 1.0, 0.0, 0.0]),
        np.array([1e300, 1.0, 0.0, 0.0]),  # float64 beyond float32
    ],
)
def test_non_finite_queries_are_refused(query: NDArray[np.float64]) -> None:
    index = VectorIndex.from_vectors(np.eye(4, dtype=np.float32))
    with pytest.raises(InvalidInputError, match="not finite"):
        index.search(query)
    with pytest.raises(DimensionMismatchError):
        index.search_batch(np.ones((1, 2, 4)))


def test_frame_search_is_the_index_search(reviews_csv: Path) -> None:
    df = pd.read_csv(reviews_csv).head(200)
    ef = embed_frame(
        df, "hashing?dim=256", template="Title: {Summary}; Content: {Text}", cache=False
    )
    hits = ef.search("pet food", k=5)
    rows = ef.search_rows("pet food", k=5)
    assert [h.id for h in hits] == rows.index.tolist()
    assert [round(h.score, 6) for h in hits] == [round(float(s), 6) for s in rows["score"]]
    assert ef.index.search("pet food", k=5)[0].score == pytest.approx(hits[0].score)
    with pytest.raises(ModelMismatchError):
        ef.search("pet food", model="hashing?dim=256&ngrams=1")
    assert isinstance(ef.embedder, embedkit.Embedder)


def test_stored_specs_are_canonical(tmp_path: Path) -> None:
    index = VectorIndex.from_vectors(np.eye(4), spec="hashing?ngrams=2&dim=4")
    assert index.spec == "hashing?dim=4&ngrams=2"
