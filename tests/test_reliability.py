"""Nothing lost, nothing silently wrong: odd Unicode, odd values, odd specs, secrets, files changed underneath."""

from __future__ import annotations

import contextlib
import datetime
import json
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import embedkit
from embedkit._folder import data_path
from embedkit.cli import main
from embedkit.errors import ConfigError, CorruptFileError, InvalidInputError
from embedkit.jobs.tables import read_csv
from embedkit.search.index import VectorIndex
from embedkit.spec import redact

SECRET = "sk-sentinel-0123456789abcdef"


def test_lone_surrogates_are_refused_naming_the_row() -> None:
    with pytest.raises(InvalidInputError) as info:
        embedkit.load("hashing").embed(["fine", "bad \ud800 text"])
    assert info.value.positions == [1] and "surrogate" in str(info.value)
    with pytest.raises(InvalidInputError, match="surrogate"):
        VectorIndex.from_vectors(np.ones((1, 2)), metadata=[{"text": "\udcff"}])


def test_nfc_and_nfd_forms_are_one_text(tmp_path: Path) -> None:
    nfc, nfd = "café crème", unicodedata.normalize("NFD", "café crème")
    assert nfc != nfd
    model = embedkit.load("hashing?dim=64")
    a, b = model.embed([nfc, nfd])
    np.testing.assert_array_equal(a, b)
    cache = tmp_path / "c.sqlite3"
    embedkit.embed([nfc], model, cache=cache)
    from test_pipeline import CountingEmbedder

    counting = CountingEmbedder("hashing?dim=64")
    embedkit.embed(iter([nfd]), counting, cache=cache)  # an iterable: validated per batch
    assert counting.texts_embedded == 0  # the same cache entry


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (datetime.datetime(2026, 1, 1), "datetime is not JSON"),
        (float("nan"), "nan"),
        (b"raw", "bytes is not JSON"),
        ({"nested": {1: "x"}}, "keys must be str"),
    ],
)
def test_metadata_that_cannot_be_stored_is_refused_before_anything_is_written(
    tmp_path: Path, value: object, why: str
) -> None:
    with pytest.raises(InvalidInputError, match=why) as info:
        VectorIndex.from_vectors(np.ones((2, 2)), metadata=[{"ok": 1}, {"field": value}])
    assert info.value.positions == [1]


def test_numpy_scalars_in_metadata_become_python_values(tmp_path: Path) -> None:
    meta = [{"n": np.int64(3), "x": np.float32(0.5), "list": [np.bool_(True)]}]
    index = VectorIndex.from_vectors(np.ones((1, 2)), metadata=meta)
    assert VectorIndex.load(index.save(tmp_path / "i")).metadata == [
        {"n": 3, "x": 0.5, "list": [True]}
    ]


def test_zero_queries_give_zero_results() -> None:
    index = VectorIndex.from_vectors(np.eye(3))
    assert index.search_batch([]) == []
    assert index.search_batch(np.empty((0, 3))) == []


@pytest.mark.parametrize(
    "spec", ["hashing?dim", "hashing?dim=3&", "hashing?&&", ":model", "?dim=3"]
)
def test_malformed_specs_raise_config_errors(spec: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError):
        embedkit.load(spec)
    monkeypatch.setenv("EMBEDKIT_MODEL", spec)
    with pytest.raises(ConfigError):
        embedkit.load()


@pytest.mark.parametrize(
    "spec",
    [
        f"openai:m?api_key={SECRET}&api_key={SECRET}",
        f"openai:m?{SECRET}",
        f"hashing?token={SECRET}&dim",
    ],
)
def test_a_malformed_spec_never_shows_its_secret(
    spec: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError) as info:
        embedkit.load(spec)
    _assert_no_secret(info.value)
    assert main(["search", "nowhere", "q", "--model", spec]) != 0
    assert SECRET not in capsys.readouterr().err


def _assert_no_secret(exc: BaseException) -> None:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        for text in (str(exc), repr(exc), *map(repr, vars(exc).values())):
            assert SECRET not in text
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]


def test_redaction_rule() -> None:
    assert redact(f"openai:m?api_key={SECRET}&dimensions=3") == "openai:m?api_key=***&dimensions=3"
    assert SECRET not in redact(f"Authorization: Bearer {SECRET}")


def test_an_empty_cache_path_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="empty"):
        embedkit.embed(["a"], "hashing", cache="")
    assert not (tmp_path / "embeddings.sqlite3").exists()


def test_a_duplicated_csv_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dup.csv"
    path.write_text("Text,Score,Text\nfirst,5,second\n", "utf-8")
    with pytest.raises(InvalidInputError, match="'Text' more than once"):
        read_csv(path)
    assert main(["embed", str(path), "--out", str(tmp_path / "o"), "-m", "hashing"]) == 2


def test_a_mapped_index_truncated_underneath_raises_instead_of_crashing(tmp_path: Path) -> None:
    index = VectorIndex.from_vectors(np.random.default_rng(0).standard_normal((5000, 32)))
    folder = index.save(tmp_path / "i")
    mapped = VectorIndex.load(folder, mmap=True)
    assert len(mapped.search(np.ones(32), k=3)) == 3
    with open(data_path(folder) / "vectors.npy", "r+b") as fh:
        fh.truncate(1024)
    with pytest.raises(CorruptFileError, match="changed size underneath"):
        mapped.search(np.ones(32), k=3)


def test_a_mapped_index_survives_a_newer_save_of_the_same_folder(tmp_path: Path) -> None:
    folder = VectorIndex.from_vectors(np.eye(4), ids=list("abcd")).save(tmp_path / "i")
    mapped = VectorIndex.load(folder, mmap=True)
    VectorIndex.from_vectors(np.eye(4)[::-1], ids=list("wxyz")).save(folder)  # old files deleted
    assert mapped.search(np.array([1.0, 0, 0, 0]), k=1)[0].id == "a"  # still the old version
    assert VectorIndex.load(folder).search(np.array([1.0, 0, 0, 0]), k=1)[0].id == "z"


def test_search_json_is_valid_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    VectorIndex.from_vectors(np.zeros((2, 4)), spec="hashing?dim=4").save(tmp_path / "i")
    assert main(["search", str(tmp_path / "i"), "anything", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert [h["score"] for h in payload[0]["hits"]] == [0.0, 0.0]


def test_a_frame_with_datetimes_reports_them_when_indexed() -> None:
    frame = embedkit.EmbeddedFrame(
        pd.DataFrame({"when": [pd.Timestamp("2026-01-01")]}), np.ones((1, 2), np.float32), None
    )
    with pytest.raises(InvalidInputError, match="Timestamp is not JSON"):
        frame.to_index()


def test_a_short_stored_spec_matches_the_model_it_names(tmp_path: Path) -> None:
    index = VectorIndex.from_vectors(np.eye(4), spec="hashing?dim=4")
    assert index.search("anything", k=1)  # "hashing?dim=4&lowercase=true&ngrams=2" is that model
    assert index.spec == embedkit.load("hashing?dim=4").spec
    with pytest.raises(embedkit.ModelMismatchError):
        index.use_embedder("hashing?dim=4&ngrams=1")


def _walk(obj: object, depth: int = 0, seen: set[int] | None = None) -> list[str]:
    """Texts of an exception chain and of every attribute, two levels deep."""
    seen = set() if seen is None else seen
    if id(obj) in seen or depth > 3:
        return []
    seen.add(id(obj))
    out = [repr(obj), str(obj)]
    items = getattr(obj, "items", None)
    if callable(items) and not isinstance(obj, type):  # mappings, HTTP headers (their repr masks)
        with contextlib.suppress(TypeError):
            out.append(str(list(items())))
    if isinstance(obj, BaseException):
        for linked in (obj.__cause__, obj.__context__):
            if linked is not None:
                out += _walk(linked, depth, seen)
    for value in getattr(obj, "__dict__", {}).values():
        out += _walk(value, depth + 1, seen)
    return out


def test_an_openai_failure_carries_no_key_anywhere(openai_server: Any) -> None:
    from embedkit.backends.openai import OpenAIEmbedder

    openai_server.api_key = SECRET
    model = OpenAIEmbedder(
        "text-embedding-3-small", api_key=SECRET, base_url=openai_server.base_url, max_retries=0
    )
    for fault in ("bad_request", "server_error"):
        openai_server.fail_next(fault)
        with pytest.raises(embedkit.errors.BackendError) as info:
            model.embed(["a text"])
        texts = _walk(info.value)
        assert info.value.__cause__ is not None  # the upstream error, scrubbed, is kept
        assert all(SECRET not in t for t in texts)
    wrong = OpenAIEmbedder(
        "text-embedding-3-small", api_key=SECRET + "x", base_url=openai_server.base_url
    )
    with pytest.raises(embedkit.errors.BackendError) as info:
        wrong.embed(["a text"])
    assert all(SECRET not in t for t in _walk(info.value))


def test_parquet_ids_keep_their_type(tmp_path: Path) -> None:
    corpus = tmp_path / "ids.jsonl"
    corpus.write_text('{"id": 1, "text": "pet food"}\n{"id": 2, "text": "coffee"}\n', "utf-8")
    out = tmp_path / "o.parquet"
    assert (
        main(["embed", str(corpus), "--out", str(out), "--id-column", "id", "-m", "hashing"]) == 0
    )
    index = embedkit.EmbeddedFrame.load(out).to_index("id")
    assert index.ids == [1, 2] and index.search("pet food", k=1)[0].id == 1
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text('{"id": "1", "text": "pet food"}\n{"id": 1, "text": "coffee"}\n', "utf-8")
    assert (
        main(["embed", str(mixed), "--out", str(tmp_path / "m.parquet"), "--id-column", "id"]) == 2
    )
    assert not (tmp_path / "m.parquet").exists()
