"""Crash and resume: a real subprocess is SIGKILLed mid-run, the job is run again,
only the missing rows are embedded, and the result equals a clean run."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from embedkit.frame import EmbeddedFrame
from embedkit.jobs.cache import EmbeddingCache
from embedkit.jobs.embed import embed, embed_to_npy
from test_pipeline import CountingEmbedder

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")

# The real CLI in a process of its own, with a backend that is the hashing backend
# slowed down (same spec family, same vectors), so that it can be killed mid-run.
CLI_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    import embedkit
    from embedkit.backends.hashing import HashingEmbedder
    from embedkit.cli import main

    class SlowHashing(HashingEmbedder):
        backend = "slow-hashing"

        def _embed(self, texts):
            time.sleep(float(os.environ.get("SLOW_SECONDS", "0")))
            return super()._embed(texts)

    embedkit.register("slow-hashing", SlowHashing)
    sys.exit(main(sys.argv[1:]))
    """
)

API_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import embedkit
    from embedkit.jobs.embed import embed_to_npy

    class Slow:
        def __init__(self):
            self.inner = embedkit.load("hashing?dim=64")
            self.dim, self.spec = self.inner.dim, self.inner.spec

        def embed(self, texts):
            time.sleep(0.05)
            return self.inner.embed(texts)

    texts = open(sys.argv[1], encoding="utf-8").read().splitlines()
    embed_to_npy(texts, sys.argv[2], Slow(), cache=sys.argv[3], batch_size=10)
    """
)


def _cached(path: Path) -> int:
    """Entries committed so far, read without disturbing the writer."""
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as con:
            return int(con.execute("SELECT COUNT(*) FROM entries").fetchone()[0])
    except sqlite3.OperationalError:  # tables not created yet
        return 0


def _kill_when(proc: subprocess.Popen[str], cache: Path, at_least: int) -> int:
    deadline = time.monotonic() + 60
    while _cached(cache) < at_least:
        assert proc.poll() is None, "the job ended before it could be killed: " + str(
            proc.communicate()
        )
        assert time.monotonic() < deadline, "the job made no progress"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return _cached(cache)


def _cli(args: list[str], env: dict[str, str], **kw: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CLI_SCRIPT, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        **kw,  # type: ignore[call-overload]
    )


def test_cli_job_killed_then_resumed_equals_a_clean_run(reviews_csv: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache" / "embeddings.sqlite3"
    env = {**os.environ, "EMBEDKIT_CACHE_DIR": str(cache.parent), "SLOW_SECONDS": "0.1"}
    out = tmp_path / "reviews.parquet"
    args = [
        "embed",
        str(reviews_csv),
        "--template",
        "Title: {Summary}; Content: {Text}",
        "--model",
        "slow-hashing?dim=128",
        "--batch-size",
        "25",
        "--no-progress",
    ]
    proc = _cli([*args, "--out", str(out)], env)
    done_at_kill = _kill_when(proc, cache, at_least=150)
    assert 150 <= done_at_kill < 700

    env["SLOW_SECONDS"] = "0"
    again = _cli([*args, "--out", str(out), "--resume"], env)
    _, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    computed = int(re.search(r"(\d+) computed", err).group(1))  # type: ignore[union-attr]
    distinct = EmbeddingCache(cache).count()
    assert computed == distinct - done_at_kill  # only what was missing

    clean_out = tmp_path / "clean.parquet"
    clean = _cli([*args, "--out", str(clean_out), "--no-cache"], env)
    _, err = clean.communicate(timeout=120)
    assert clean.returncode == 0, err
    resumed, reference = EmbeddedFrame.load(out), EmbeddedFrame.load(clean_out)
    assert len(resumed) == 1000
    np.testing.assert_array_equal(resumed.vectors, reference.vectors)
    assert resumed.rows["text"].tolist() == reference.rows["text"].tolist()


def test_api_job_killed_then_resumed_embeds_only_what_is_missing(
    lee_corpus: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "c.sqlite3"
    texts = [t for t in lee_corpus.read_text("utf-8").splitlines() if t.strip()]
    corpus = tmp_path / "lee.txt"
    corpus.write_text("\n".join(texts), "utf-8")
    proc = subprocess.Popen(
        [sys.executable, "-c", API_SCRIPT, str(corpus), str(tmp_path / "v.npy"), str(cache)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    done_at_kill = _kill_when(proc, cache, at_least=60)
    assert done_at_kill < len(set(texts))
    rerun = CountingEmbedder("hashing?dim=64")
    stats = embed_to_npy(texts, tmp_path / "v.npy", rerun, cache=cache, batch_size=10)
    assert rerun.texts_embedded == len(set(texts)) - done_at_kill
    assert stats.rows == len(texts)
    resumed = np.load(tmp_path / "v.npy", allow_pickle=False)
    np.testing.assert_array_equal(resumed, embed(texts, "hashing?dim=64", cache=False))
