"""embedkit.ray on a real local Ray cluster, run inside a loopback-only network namespace.

One child process (``python tests/test_ray.py WORK``, under :func:`netns.run_isolated`)
starts one cluster (``ray.init(num_cpus=2, ...)`` at 127.0.0.1) and runs every
scenario, writing its outputs with Ray's own Parquet writer under ``WORK``; the
tests below compare them with the single-process job (:func:`embedkit.embed`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import embedkit
from embedkit.errors import ConfigError
from embedkit.frame import EmbeddedFrame
from embedkit.outputs import load_searchable
from netns import torch_threads

HASHING = "hashing?dim=64"
MINILM = "sbert:all-MiniLM-L6-v2"
BAD = [None, "", "   "]  # missing: None, empty, whitespace-only


def read_dir(folder: Path) -> pd.DataFrame:
    """Every Parquet file Ray wrote under ``folder``, rows sorted by ``id``."""
    files = sorted(folder.glob("*.parquet"))
    assert files, f"nothing written under {folder}"
    frames = [pq.read_table(f).to_pandas() for f in files]
    return pd.concat(frames).sort_values("id").reset_index(drop=True)


def vectors(frame: pd.DataFrame) -> np.ndarray:
    return np.stack([np.asarray(v, dtype=np.float32) for v in frame["embedding"]])


# -- the child: runs inside the namespace --------------------------------------------
def child(work: Path) -> None:
    import ray

    from embedkit.ray import dataset_spec, embed_dataset
    from netns import CountingEmbedder, KillingEmbedder, check_offline, computed

    check_offline()
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        logging_level="WARNING",
        log_to_driver=False,
    )
    ray.data.DataContext.get_current().enable_progress_bars = False
    results: dict[str, Any] = {}

    def dataset(name: str, block: int) -> Any:
        df = pd.read_parquet(work / f"{name}.parquet")
        return ray.data.from_pandas([df.iloc[i : i + block] for i in range(0, len(df), block)])

    # A: hashing, bad rows included; written whole and ok-only
    out = embed_dataset(
        dataset("hashing", 50), HASHING, concurrency=2, batch_size=50, cache=str(work / "a.db")
    ).materialize()
    results["spec"] = dataset_spec(out)
    out.write_parquet(str(work / "a_all"))
    out.filter(expr="status == 'ok'").write_parquet(str(work / "a_ok"))

    # B: a shared cache file; the second run computes only the rows the first did not
    log = str(work / "b.log")
    model = CountingEmbedder(log)
    first = dataset("counted", 20).limit(60)
    embed_dataset(
        first, model, concurrency=2, batch_size=20, cache=str(work / "b.db")
    ).materialize()
    results["computed_first"] = computed(log)
    again = embed_dataset(
        dataset("counted", 20), model, concurrency=2, batch_size=20, cache=str(work / "b.db")
    )
    again.write_parquet(str(work / "b_all"))
    results["computed_total"] = computed(log)

    # C: the actor that runs the 3rd backend call of the job SIGKILLs itself once
    (work / "c").mkdir()
    killer = KillingEmbedder(str(work / "c"), at=3)
    embed_dataset(
        dataset("killed", 20), killer, concurrency=2, batch_size=20, cache=str(work / "c.db")
    ).write_parquet(str(work / "c_all"))
    results["killed_pid"] = (work / "c" / "killed").read_text()

    # D: MiniLM, blocks of exactly batch_size rows; bad rows (missing, too long) in the last
    embed_dataset(
        dataset("minilm", 20), MINILM, on_long="error", concurrency=2, batch_size=20, cache=False
    ).write_parquet(str(work / "d_all"))
    (work / "results.json").write_text(json.dumps(results))
    ray.shutdown()


# -- the tests -----------------------------------------------------------------------
def _texts(csv: Path, n: int, offset: int = 0) -> list[str]:
    df = pd.read_csv(csv)
    texts = (df["Summary"].astype(str) + ". " + df["Text"].astype(str)).tolist()
    return texts[offset : offset + n]


@pytest.fixture(scope="module")
def ray_run(tmp_path_factory: pytest.TempPathFactory, reviews_csv: Path) -> Path:
    from netns import isolated_env, run_isolated

    work = tmp_path_factory.mktemp("ray")
    texts: list[str | None] = [*_texts(reviews_csv, 297), *BAD]
    pd.DataFrame({"id": range(len(texts)), "text": texts}).to_parquet(work / "hashing.parquet")
    counted = list(dict.fromkeys(_texts(reviews_csv, 150, offset=300)))[:100]  # distinct
    pd.DataFrame({"id": range(100), "text": counted}).to_parquet(work / "counted.parquet")
    killed = _texts(reviews_csv, 200, offset=400)
    pd.DataFrame({"id": range(200), "text": killed}).to_parquet(work / "killed.parquet")
    short = [t for t in _texts(reviews_csv, 400, offset=600) if len(t) < 400][:102]
    long_text = " ".join(_texts(reviews_csv, 6, offset=600))  # well over 256 tokens
    minilm: list[str | None] = [
        *short[:100],
        None,
        "",
        long_text,
        long_text + " again",
        *short[100:],
    ]
    pd.DataFrame({"id": range(len(minilm)), "text": minilm}).to_parquet(work / "minilm.parquet")
    env = isolated_env({"EMBEDKIT_CACHE_DIR": str(work / "default-cache")})
    run_isolated(Path(__file__), [str(work)], env=env, timeout=900)
    return work


def _input(work: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(work / f"{name}.parquet")


@pytest.mark.slow
def test_hashing_on_ray_equals_the_single_process_job(ray_run: Path) -> None:
    source = _input(ray_run, "hashing")
    got = read_dir(ray_run / "a_all")
    assert got["id"].tolist() == source["id"].tolist()  # every row once, none added
    ok = got[got["status"] == "ok"]
    want = embedkit.embed(ok["text"].tolist(), HASHING, cache=False)
    assert np.array_equal(vectors(ok), want)
    assert ok["message"].isna().all()
    spec = json.loads((ray_run / "results.json").read_text())["spec"]
    assert spec == embedkit.load(HASHING).spec


@pytest.mark.slow
def test_bad_rows_are_reported_not_fatal(ray_run: Path) -> None:
    got = read_dir(ray_run / "a_all")
    bad = got[got["status"] != "ok"]
    assert bad["id"].tolist() == [297, 298, 299]
    assert bad["status"].tolist() == ["missing"] * 3
    assert bad["message"].tolist() == ["None (missing value)", "empty string", "whitespace-only"]
    assert bad["embedding"].isna().all()


@pytest.mark.slow
def test_rays_parquet_is_read_by_embedded_frame_and_load_searchable(ray_run: Path) -> None:
    files = sorted((ray_run / "a_ok").glob("*.parquet"))
    frames = [EmbeddedFrame.load(f) for f in files]
    assert sum(len(f) for f in frames) == 297
    spec = embedkit.load(HASHING).spec
    assert {f.spec for f in frames} == {spec}
    query = _input(ray_run, "hashing")["text"][5]
    hits = [load_searchable(f).search(query, k=1)[0] for f in files]
    best = max(hits, key=lambda h: h.score)
    assert best.id == 5 and best.score == pytest.approx(1.0, abs=1e-5)


@pytest.mark.slow
def test_a_rerun_with_the_shared_cache_computes_only_what_is_missing(ray_run: Path) -> None:
    results = json.loads((ray_run / "results.json").read_text())
    assert len(set(_input(ray_run, "counted")["text"])) == 100  # distinct texts
    assert results["computed_first"] == 60
    assert results["computed_total"] == 100  # the second run computed only the 40 new rows
    got = read_dir(ray_run / "b_all")
    assert got["id"].tolist() == list(range(100))
    assert np.array_equal(vectors(got), embedkit.embed(got["text"].tolist(), HASHING, cache=False))


@pytest.mark.slow
def test_a_killed_actor_loses_and_duplicates_no_row(ray_run: Path) -> None:
    results = json.loads((ray_run / "results.json").read_text())
    assert int(results["killed_pid"]) > 0  # the kill did happen
    got = read_dir(ray_run / "c_all")
    assert got["id"].tolist() == list(range(200))
    assert (got["status"] == "ok").all()
    source = _input(ray_run, "killed")
    assert got["text"].tolist() == source["text"].tolist()
    assert np.array_equal(vectors(got), embedkit.embed(got["text"].tolist(), HASHING, cache=False))


@pytest.mark.slow
def test_minilm_on_ray_equals_the_single_process_job(ray_run: Path) -> None:
    got = read_dir(ray_run / "d_all")
    assert got["id"].tolist() == list(range(106))
    status = dict(zip(got["id"], got["status"], strict=True))
    assert [status[i] for i in (100, 101, 102, 103)] == [
        "missing",
        "missing",
        "too-long",
        "too-long",
    ]
    assert got.loc[got["id"] == 102, "message"].item().endswith("tokens > 256")
    ok = got[got["status"] == "ok"]
    assert len(ok) == 102
    # same batches of 20 as the actors saw (5 full ones, then the last block's 2 ok rows)
    with torch_threads(1):  # as in a 1-CPU actor/worker (OMP_NUM_THREADS=1)
        want = embedkit.embed(ok["text"].tolist(), MINILM, cache=False, batch_size=20)
    assert np.array_equal(vectors(ok), want)


def test_embed_dataset_refuses_what_is_not_a_dataset() -> None:
    from embedkit.ray import embed_dataset

    with pytest.raises(ConfigError, match=r"ray\.data\.Dataset"):
        embed_dataset(pd.DataFrame({"text": ["a"]}), HASHING)


if __name__ == "__main__":
    child(Path(sys.argv[1]))
