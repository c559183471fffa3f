"""A cache that cannot be written is still used: read-only, its hits reused, nothing stored."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import embedkit
from embedkit.errors import ConfigError, StorageError
from embedkit.jobs.cache import EmbeddingCache, text_key

SPEC = "hashing?dim=32"
TEXTS = ["pet food", "dog treats", "green tea"]


def _filled(path: Path) -> np.ndarray:
    vectors = embedkit.embed(TEXTS, SPEC, cache=path)
    with EmbeddingCache(path) as cache:
        assert cache.count() == 3
    return vectors


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_read_only_serves_hits_and_stores_nothing(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    vectors = _filled(path)
    before = _digest(path)
    cache = EmbeddingCache(path, read_only=True)
    assert "read-only" in repr(cache)
    got, found = cache.get(embedkit.load(SPEC).spec, 32, [text_key(t) for t in TEXTS])
    assert found.all() and np.array_equal(got, vectors)
    again = embedkit.embed([*TEXTS, "new text"], SPEC, cache=cache)
    assert np.array_equal(again[:3], vectors)
    assert cache.count() == 3  # "new text" was embedded, not stored
    with pytest.raises(StorageError, match="read-only"):
        cache.clear()
    cache.close()
    assert _digest(path) == before


def test_read_only_needs_an_existing_file_and_a_bool(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="does not exist"):
        EmbeddingCache(tmp_path / "absent.sqlite3", read_only=True)
    assert not (tmp_path / "absent.sqlite3").exists()
    with pytest.raises(ConfigError, match="read_only"):
        EmbeddingCache(tmp_path / "x.sqlite3", read_only="yes")  # type: ignore[arg-type]


@pytest.mark.skipif(sys.platform != "linux", reason="read-only bind mounts are Linux")
def test_a_cache_on_a_read_only_mount_is_used_read_only(tmp_path: Path) -> None:
    """A real read-only filesystem (a bind mount in a mount namespace of its own)."""
    if shutil.which("unshare") is None:
        pytest.fail("unshare (util-linux) is needed to make a read-only mount")
    folder = tmp_path / "shared"
    folder.mkdir()
    path = folder / "embeddings.sqlite3"
    vectors = _filled(path)
    np.save(tmp_path / "expected.npy", vectors)
    before = _digest(path)
    script = textwrap.dedent(
        f"""
        import warnings, numpy as np, embedkit
        from embedkit.jobs.cache import EmbeddingCache
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            cache = EmbeddingCache({str(path)!r})
        assert cache.read_only and any("read-only" in str(w.message) for w in seen), seen
        out = embedkit.embed({[*TEXTS, "new text"]!r}, {SPEC!r}, cache=cache)
        assert np.array_equal(out[:3], np.load({str(tmp_path / "expected.npy")!r}))
        assert cache.count() == 3
        print("ok")
        """
    )
    mount = f"mount --bind {folder} {folder} && mount -o remount,ro,bind {folder}"
    done = subprocess.run(
        ["unshare", "--mount", "sh", "-c", f'{mount} && exec "$0" -c "$1"', sys.executable, script],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if "mount" in done.stderr and done.returncode != 0 and "ok" not in done.stdout:
        pytest.fail(f"could not make a read-only mount: {done.stderr}")
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
    assert _digest(path) == before
