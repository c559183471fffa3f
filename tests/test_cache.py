"""The SQLite embedding cache: namespaces by spec, corruption, threads, two processes."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import embedkit
from embedkit.errors import CorruptFileError
from embedkit.jobs.cache import EmbeddingCache, default_cache_path, open_cache, text_key
from embedkit.jobs.embed import embed
from test_pipeline import CountingEmbedder


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDKIT_CACHE_DIR", str(tmp_path / "cache"))


TEXTS = [f"text {i}: {'spicy' if i % 2 else 'sweet'} snacks for dogs" for i in range(40)]


def test_round_trip_is_exact_float32(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "c.sqlite3")
    vectors = np.random.default_rng(0).standard_normal((5, 7)).astype(np.float32)
    keys = [text_key(f"t{i}") for i in range(5)]
    cache.put("spec-a", keys, vectors)
    got, found = cache.get("spec-a", 7, [keys[3], text_key("absent"), keys[0]])
    assert found.tolist() == [True, False, True]
    np.testing.assert_array_equal(got[[0, 2]], vectors[[3, 0]])
    assert got.dtype == np.float32
    assert cache.count() == 5 and cache.specs() == {"spec-a": 5}


def test_specs_never_share_entries(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    short = CountingEmbedder("hashing?dim=64")
    longer = CountingEmbedder("hashing?dim=64&ngrams=1")
    a = embed(TEXTS, short, cache=path)
    b = embed(TEXTS, longer, cache=path)
    assert longer.texts_embedded == len(TEXTS)  # nothing reused across specs
    assert not np.allclose(a, b)
    cache = EmbeddingCache(path)
    assert cache.count(short.spec) == cache.count(longer.spec) == len(TEXTS)
    _, found = cache.get("hashing?dim=32", 32, [text_key(TEXTS[0])])
    assert not found.any()
    cache.clear(short.spec)
    assert cache.count(short.spec) == 0 and cache.count(longer.spec) == len(TEXTS)


@pytest.mark.parametrize(
    "damage",
    [
        "UPDATE entries SET vec = x'0000'",  # truncated blob
        "UPDATE entries SET dtype = '<f8'",  # wrong dtype
        "UPDATE entries SET dim = dim + 1",  # wrong width
        "UPDATE entries SET vec = zeroblob(length(vec))",  # a valid length, zero vector: kept
    ],
)
def test_corrupt_entries_are_recomputed(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "c.sqlite3"
    model = CountingEmbedder()
    clean = embed(TEXTS[:6], model, cache=path)
    with sqlite3.connect(path) as con:
        con.execute(damage)
    model.calls.clear()
    again = embed(TEXTS[:6], model, cache=path)
    if "zeroblob" in damage:
        assert model.calls == [] and not again.any()  # well-formed data is trusted
        return
    assert model.texts_embedded == 6
    np.testing.assert_array_equal(again, clean)
    model.calls.clear()
    embed(TEXTS[:6], model, cache=path)  # repaired in place
    assert model.calls == []


def test_nan_entries_are_recomputed(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    model = CountingEmbedder()
    clean = embed(TEXTS[:3], model, cache=path)
    nan_blob = np.full(model.dim, np.nan, np.float32).tobytes()
    with sqlite3.connect(path) as con:
        con.execute("UPDATE entries SET vec = ?", (nan_blob,))
    cache = EmbeddingCache(path)
    model.calls.clear()
    np.testing.assert_array_equal(embed(TEXTS[:3], model, cache=cache), clean)
    assert model.texts_embedded == 3 and cache.corrupt_seen == 3


def test_a_damaged_database_file_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(CorruptFileError, match="delete the file"):
        EmbeddingCache(path)


def test_many_threads_share_one_cache(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "c.sqlite3")
    model = embedkit.load("hashing?dim=64")
    want = model.embed(TEXTS)

    def work(seed: int) -> np.ndarray:
        order = np.random.default_rng(seed).permutation(len(TEXTS))
        got = embed([TEXTS[i] for i in order], model, cache=cache, batch_size=3)
        return got[np.argsort(order)]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(work, range(16)))
    for got in results:
        np.testing.assert_array_equal(got, want)
    assert cache.count(model.spec) == len(TEXTS)
    cache.close()


WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from embedkit.jobs.cache import EmbeddingCache, text_key
    path, start = sys.argv[1], int(sys.argv[2])
    cache = EmbeddingCache(path)
    for batch in range(40):
        ids = range(start + batch * 25, start + batch * 25 + 25)
        keys = [text_key(f"t{i}") for i in ids]
        vectors = np.asarray([[i, -i, 0.5] for i in ids], np.float32)
        cache.put("two-procs", keys, vectors)
    print("ok")
    """
)


def test_two_processes_write_at_once(tmp_path: Path) -> None:
    path = str(tmp_path / "c.sqlite3")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, path, str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for start in (0, 500)  # 1000 keys each, 500 of them shared
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert out.strip() == "ok"
    cache = EmbeddingCache(path)
    assert cache.count("two-procs") == 1500
    keys = [text_key(f"t{i}") for i in range(1500)]
    got, found = cache.get("two-procs", 3, keys)
    assert found.all()
    np.testing.assert_array_equal(got[:, 0], np.arange(1500, dtype=np.float32))


def test_default_location_env_override_and_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMBEDKIT_CACHE_DIR", str(tmp_path / "mine"))
    assert default_cache_path() == tmp_path / "mine" / "embeddings.sqlite3"
    embed(TEXTS[:2], "hashing?dim=64")
    assert (tmp_path / "mine" / "embeddings.sqlite3").exists()
    monkeypatch.delenv("EMBEDKIT_CACHE_DIR")
    if sys.platform.startswith("linux"):
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
        assert default_cache_path() == tmp_path / "xdg" / "embedkit" / "embeddings.sqlite3"
    monkeypatch.setenv("EMBEDKIT_CACHE_DIR", str(tmp_path / "unused"))
    assert open_cache(False) is None
    embed(TEXTS[:2], "hashing?dim=64", cache=False)
    assert not (tmp_path / "unused").exists()
    (tmp_path / "folder").mkdir()
    folder_cache = open_cache(tmp_path / "folder")
    assert folder_cache is not None and folder_cache.path.name == "embeddings.sqlite3"
