"""embed(): batching, validation, dedup, the cache as checkpoint, streaming, progress."""

from __future__ import annotations

import io
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

import embedkit
from embedkit.errors import BackendError, BadResponseError, EmbedkitWarning, InvalidInputError
from embedkit.frame import EmbeddedFrame
from embedkit.jobs.cache import EmbeddingCache
from embedkit.jobs.embed import EmbedJob, embed, embed_to_npy
from embedkit.jobs.progress import Progress, progress_enabled
from embedkit.jobs.writers import NpyWriter, ParquetWriter


class CountingEmbedder:
    """The real hashing backend, counting the texts it is asked to embed.

    ``fail_on_call``: raise a BackendError on that call (1-based), as a network
    failure would; ``nan_rows``: return NaN in those rows of every call.
    """

    def __init__(
        self, spec: str = "hashing?dim=64", fail_on_call: int = 0, nan_rows: Sequence[int] = ()
    ) -> None:
        self.inner = embedkit.load(spec)
        self.calls: list[list[str]] = []
        self.fail_on_call = fail_on_call
        self.nan_rows = list(nan_rows)

    @property
    def dim(self) -> int:
        return self.inner.dim

    @property
    def spec(self) -> str:
        return self.inner.spec

    @property
    def texts_embedded(self) -> int:
        return sum(len(c) for c in self.calls)

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        self.calls.append(list(texts))
        if self.fail_on_call and len(self.calls) == self.fail_on_call:
            raise BackendError("simulated connection reset")
        out = self.inner.embed(texts)
        out[self.nan_rows] = np.nan
        return out


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDKIT_CACHE_DIR", str(tmp_path / "cache"))


TEXTS = [f"review number {i} about {'dog' if i % 3 else 'cat'} food" for i in range(23)]


def test_embed_equals_backend_for_lists_iterators_and_batches(hashing: embedkit.Embedder) -> None:
    want = hashing.embed(TEXTS)
    for batch_size in (1, 4, 23, 100):
        got = embed(TEXTS, hashing, batch_size=batch_size, cache=False)
        assert got.dtype == np.float32 and got.shape == (23, hashing.dim)
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(embed(iter(TEXTS), hashing, batch_size=5), want)
    np.testing.assert_array_equal(embed(TEXTS, hashing.spec), want)  # a spec string
    config = {"backend": "hashing", "dim": 256}
    np.testing.assert_array_equal(embed(TEXTS, config), want)
    assert embed([], hashing).shape == (0, hashing.dim)
    assert embed(iter([]), hashing).shape == (0, hashing.dim)
    assert embed("one text", hashing).shape == (1, hashing.dim)


def test_cache_hit_makes_no_backend_call(tmp_path: Path) -> None:
    model = CountingEmbedder()
    first = embed(TEXTS, model, cache=tmp_path / "c.sqlite3", batch_size=5)
    assert model.texts_embedded == len(TEXTS)
    model.calls.clear()
    again = embed(TEXTS[::-1], model, cache=tmp_path / "c.sqlite3", batch_size=5)
    assert model.calls == []
    np.testing.assert_array_equal(again, first[::-1])


def test_duplicates_are_embedded_once_per_batch() -> None:
    model = CountingEmbedder()
    texts = ["a b", "c d", "a b", "a b", "e f"]
    job = EmbedJob(texts, model, batch_size=10)
    out = np.concatenate([block.vectors for block in job.batches()])
    assert model.calls == [["a b", "c d", "e f"]]
    np.testing.assert_array_equal(out[0], out[3])
    assert (job.stats.rows, job.stats.cached, job.stats.computed, job.stats.duplicates) == (
        5,
        0,
        3,
        2,
    )


def test_bad_rows_in_a_list_are_named_before_any_work() -> None:
    model = CountingEmbedder()
    texts: list[object] = [*TEXTS[:5], None, "ok", float("nan"), "  "]
    with pytest.raises(InvalidInputError) as info:
        embed(texts, model)  # type: ignore[arg-type]
    assert info.value.positions == [5, 7, 8]
    assert model.calls == []


def test_bad_row_in_a_stream_keeps_the_finished_batches(tmp_path: Path) -> None:
    model = CountingEmbedder()
    cache = EmbeddingCache(tmp_path / "c.sqlite3")

    def rows() -> Iterator[object]:
        yield from TEXTS[:10]
        yield ""
        yield from TEXTS[10:]

    with pytest.raises(InvalidInputError) as info:
        embed(rows(), model, cache=cache, batch_size=4)  # type: ignore[arg-type]
    assert info.value.positions == [10]
    assert "the 8 rows before them are done and cached" in str(info.value)
    assert cache.count(model.spec) == 8


def test_backend_failure_loses_only_the_batch_in_flight(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    clean = embed(TEXTS, CountingEmbedder(), cache=False)
    broken = CountingEmbedder(fail_on_call=3)
    with pytest.raises(BackendError):
        embed(TEXTS, broken, cache=path, batch_size=5)
    assert EmbeddingCache(path).count(broken.spec) == 10  # two batches committed
    rerun = CountingEmbedder()
    np.testing.assert_array_equal(embed(TEXTS, rerun, cache=path, batch_size=5), clean)
    assert rerun.texts_embedded == len(TEXTS) - 10


def test_nan_from_the_backend_is_refused_and_not_cached(tmp_path: Path) -> None:
    model = CountingEmbedder(nan_rows=[1])
    with pytest.raises(BadResponseError, match="NaN"):
        embed(TEXTS, model, cache=tmp_path / "c.sqlite3")
    assert EmbeddingCache(tmp_path / "c.sqlite3").count() == 0


def test_rejected_texts_are_named_by_job_row() -> None:
    class Picky(CountingEmbedder):
        def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
            bad = [(i, "too spicy") for i, t in enumerate(texts) if "spicy" in t]
            if bad:
                raise InvalidInputError("rejected", bad)
            return super().embed(texts)

    texts = ["mild one", "mild two", "mild three", "spicy four", "mild five"]
    with pytest.raises(InvalidInputError) as info:
        embed(texts, Picky(), batch_size=2, cache=False)
    assert info.value.rows == [(3, "too spicy")]
    # a repeated bad text is embedded once per batch, but every row holding it is named
    repeated = ["spicy", "mild", "spicy", "hot and spicy"]
    with pytest.raises(InvalidInputError) as info:
        embed(repeated, Picky(), batch_size=4, cache=True)
    assert info.value.positions == [0, 2, 3]


def test_embed_to_npy_streams_blocks(tmp_path: Path, hashing: embedkit.Embedder) -> None:
    path = tmp_path / "out" / "vectors.npy"
    stats = embed_to_npy(iter(TEXTS), path, hashing, batch_size=4, total=len(TEXTS))
    assert (stats.rows, stats.computed) == (23, 23)
    mapped = np.load(path, mmap_mode="r", allow_pickle=False)
    assert mapped.shape == (23, hashing.dim) and mapped.dtype == np.float32
    np.testing.assert_array_equal(mapped, hashing.embed(TEXTS))


def test_an_unfinished_npy_declares_no_rows(tmp_path: Path) -> None:
    writer = NpyWriter(tmp_path / "partial.npy", 8)
    writer.write(np.ones((3, 8), np.float32))
    assert writer._fh is not None
    writer._fh.flush()  # as a killed job leaves it
    assert np.load(tmp_path / "partial.npy", allow_pickle=False).shape == (0, 8)
    writer.close()
    assert np.load(tmp_path / "partial.npy", allow_pickle=False).shape == (3, 8)


def test_parquet_writer_round_trips_with_the_spec(
    tmp_path: Path, hashing: embedkit.Embedder
) -> None:
    path = tmp_path / "rows.parquet"
    job = EmbedJob(TEXTS, hashing, batch_size=10)
    with ParquetWriter(path, job.dim, job.spec, ["id", "text"], types={"id": "int64"}) as writer:
        at = 0
        for block in job.batches():
            ids = block.rows.tolist()
            assert ids == list(range(at, at + len(ids)))
            writer.write({"id": ids, "text": TEXTS[at : at + len(ids)]}, block.vectors)
            at += len(ids)
    import pyarrow.parquet as pq

    assert pq.ParquetFile(str(path)).metadata.num_row_groups == 3
    frame = EmbeddedFrame.load(path)
    assert frame.spec == hashing.spec
    np.testing.assert_array_equal(frame.vectors, hashing.embed(TEXTS))
    assert frame.rows["text"].tolist() == TEXTS


def test_progress_bar_is_off_without_a_terminal_and_on_when_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("EMBEDKIT_PROGRESS", raising=False)
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    assert not progress_enabled(None)  # StringIO is not a terminal
    embed(TEXTS, "hashing?dim=64", batch_size=5)
    assert stream.getvalue() == ""
    embed(TEXTS, "hashing?dim=64", batch_size=5, progress=True)
    assert "embedding" in stream.getvalue() and "23/23" in stream.getvalue()
    monkeypatch.setenv("EMBEDKIT_PROGRESS", "1")
    assert progress_enabled(None)
    assert not progress_enabled(False)
    with Progress(3, "x", enabled=False) as bar:
        assert not bar.active


@pytest.mark.slow
def test_long_texts_are_reported_once_with_job_rows(minilm: embedkit.Embedder) -> None:
    long_text = " ".join(["embedding"] * 400)
    texts = ["short one", "short two", "short three", long_text, "short five", long_text + " x"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = embed(texts, minilm, batch_size=2, cache=False)
    mine = [str(w.message) for w in caught if issubclass(w.category, EmbedkitWarning)]
    assert len(mine) == 1
    assert "2 of the 6 texts embedded exceed 256 tokens" in mine[0] and "rows 3, 5" in mine[0]
    with pytest.warns(EmbedkitWarning):
        direct = minilm.embed(texts)
    np.testing.assert_allclose(out, direct, atol=1e-5)


def test_parquet_writer_refuses_values_of_another_type(tmp_path: Path) -> None:
    with (
        ParquetWriter(tmp_path / "p.parquet", 2, None, ["id"]) as writer,  # id: string
        pytest.raises(InvalidInputError, match="rows 1"),
    ):
        writer.write({"id": ["a", 1]}, np.ones((2, 2), np.float32))  # never str(1)
