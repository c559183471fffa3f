"""embedkit.dask on a real LocalCluster (inside a loopback-only network namespace), and the
core both cluster adapters share (embedkit.jobs.batch.BatchEmbedder), tested directly.

One child process (``python tests/test_dask.py WORK``, under :func:`netns.run_isolated`)
starts one ``LocalCluster(n_workers=2, threads_per_worker=1)`` at 127.0.0.1, runs
every scenario and writes the outputs under ``WORK``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import embedkit
from embedkit.errors import ConfigError, EmbedkitWarning
from embedkit.frame import EmbeddedFrame
from embedkit.jobs.batch import BatchEmbedder
from netns import torch_threads

HASHING = "hashing?dim=64"
MINILM = "sbert:all-MiniLM-L6-v2"
BAD: list[object] = [None, "", "   ", 7, float("nan")]
BAD_STATUS = ["missing", "missing", "missing", "invalid", "missing"]


def vectors(frame: pd.DataFrame) -> np.ndarray:
    return np.stack([np.asarray(v, dtype=np.float32) for v in frame["embedding"]])


def read_dir(folder: Path) -> pd.DataFrame:
    files = sorted(folder.glob("*.parquet"))
    assert files, f"nothing written under {folder}"
    frames = [pq.read_table(f).to_pandas() for f in files]
    return pd.concat(frames).sort_values("id").reset_index(drop=True)


# -- the child: runs inside the namespace --------------------------------------------
def child(work: Path) -> None:
    import dask
    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    import embedkit.dask as ekd
    from netns import CountingEmbedder, KillingEmbedder, check_offline, computed

    check_offline()
    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    )
    client = Client(cluster)
    results: dict[str, Any] = {}

    def frame(name: str, parts: int) -> Any:
        rows = json.loads((work / f"{name}.json").read_text())
        df = pd.DataFrame({"id": rows["id"], "text": pd.Series(rows["text"], dtype=object)})
        return dd.from_pandas(df, npartitions=parts, sort=False)

    # A: hashing, bad rows (missing and invalid) included
    with dask.config.set({"dataframe.convert-string": False}):  # else the int 7 becomes "7"
        mixed = frame("hashing", 4)
    out = ekd.embed_dataframe(mixed, HASHING, cache=str(work / "a.db"))
    results["spec"] = out._meta.attrs[ekd.SPEC_ATTR]
    got = out.compute()
    pq.write_table(
        pa.table(
            {
                "id": got["id"].to_numpy(),
                **{  # the arrow arrays behind the ArrowDtype columns, as they are
                    c: got[c].array._pa_array.combine_chunks()
                    for c in ("status", "message", "embedding")
                },
            }
        ),
        work / "a_all.parquet",
    )
    ok = ekd.embed_dataframe(frame("clean", 3), HASHING, cache=str(work / "a.db"))
    ekd.write_parquet(ok[ok.status == "ok"], work / "a_ok")
    cores = client.run(lambda: {k: c.stats.rows for k, c in ekd._CORES.items()})
    results["cores"] = list(cores.values())

    # B: a shared cache file; the second run computes only the rows the first did not
    log = str(work / "b.log")
    model = CountingEmbedder(log)
    first = frame("counted", 5).partitions[:3]  # 60 of the 100 rows
    ekd.embed_dataframe(first, model, batch_size=20, cache=str(work / "b.db")).compute()
    results["computed_first"] = computed(log)
    again = ekd.embed_dataframe(frame("counted", 5), model, batch_size=20, cache=str(work / "b.db"))
    ekd.write_parquet(again, work / "b_all")
    results["computed_total"] = computed(log)

    # C: the worker that runs the 3rd backend call of the job SIGKILLs itself once
    (work / "c").mkdir()
    killer = KillingEmbedder(str(work / "c"), at=3)
    out = ekd.embed_dataframe(frame("killed", 10), killer, batch_size=20, cache=str(work / "c.db"))
    ekd.write_parquet(out, work / "c_all")
    results["killed_pid"] = (work / "c" / "killed").read_text()

    # D: MiniLM, partitions of exactly batch_size rows
    out = ekd.embed_dataframe(frame("minilm", 3), MINILM, batch_size=20, cache=False)
    ekd.write_parquet(out, work / "d_all")
    (work / "results.json").write_text(json.dumps(results))
    client.close()
    cluster.close()


# -- the tests -----------------------------------------------------------------------
def _texts(csv: Path, n: int, offset: int = 0) -> list[str]:
    df = pd.read_csv(csv)
    texts = (df["Summary"].astype(str) + ". " + df["Text"].astype(str)).tolist()
    return texts[offset : offset + n]


def _write(work: Path, name: str, texts: list[Any]) -> None:
    clean = [None if isinstance(t, float) else t for t in texts]  # NaN is not JSON
    rows = {"id": list(range(len(texts))), "text": clean}
    (work / f"{name}.json").write_text(json.dumps(rows))


@pytest.fixture(scope="module")
def dask_run(tmp_path_factory: pytest.TempPathFactory, reviews_csv: Path) -> Path:
    from netns import isolated_env, run_isolated

    work = tmp_path_factory.mktemp("dask")
    _write(work, "hashing", [*_texts(reviews_csv, 95), *BAD[:4]])
    _write(work, "clean", _texts(reviews_csv, 90))
    _write(work, "counted", list(dict.fromkeys(_texts(reviews_csv, 150, offset=300)))[:100])
    _write(work, "killed", _texts(reviews_csv, 200, offset=400))
    short = [t for t in _texts(reviews_csv, 200, offset=600) if len(t) < 400][:60]
    _write(work, "minilm", short)
    env = isolated_env({"EMBEDKIT_CACHE_DIR": str(work / "default-cache")})
    run_isolated(Path(__file__), [str(work)], env=env, timeout=900)
    return work


def _source(work: Path, name: str) -> list[Any]:
    texts: list[Any] = json.loads((work / f"{name}.json").read_text())["text"]
    return texts


@pytest.mark.slow
def test_hashing_on_dask_equals_the_single_process_job(dask_run: Path) -> None:
    got = pq.read_table(dask_run / "a_all.parquet").to_pandas().sort_values("id")
    texts = _source(dask_run, "hashing")
    assert got["id"].tolist() == list(range(len(texts)))
    ok = got[got["status"] == "ok"]
    assert ok["id"].tolist() == list(range(95))
    want = embedkit.embed(texts[:95], HASHING, cache=False)
    assert np.array_equal(vectors(ok), want)
    bad = got[got["status"] != "ok"]
    assert bad["status"].tolist() == BAD_STATUS[:4]
    assert bad["message"].tolist()[3] == "not a string (int)"
    assert bad["embedding"].isna().all()
    results = json.loads((dask_run / "results.json").read_text())
    assert results["spec"] == embedkit.load(HASHING).spec


@pytest.mark.slow
def test_the_model_is_loaded_once_per_worker(dask_run: Path) -> None:
    cores = json.loads((dask_run / "results.json").read_text())["cores"]
    assert len(cores) == 2 and all(len(c) <= 2 for c in cores)  # one core per job key
    # every row with a text, of both jobs, went through the cores the workers kept
    got = pq.read_table(dask_run / "a_all.parquet").to_pandas()
    assert sum(n for c in cores for n in c.values()) == (got["status"] == "ok").sum() + 90


@pytest.mark.slow
def test_dask_parquet_is_read_by_embedded_frame(dask_run: Path) -> None:
    files = sorted((dask_run / "a_ok").glob("*.parquet"))
    frames = [EmbeddedFrame.load(f) for f in files]
    assert [len(f) for f in frames] == [30, 30, 30]
    assert {f.spec for f in frames} == {embedkit.load(HASHING).spec}
    rows = pd.concat([f.rows for f in frames])
    want = embedkit.embed(_source(dask_run, "clean"), HASHING, cache=False)
    assert np.array_equal(np.concatenate([f.vectors for f in frames]), want[rows["id"]])


@pytest.mark.slow
def test_a_rerun_with_the_shared_cache_computes_only_what_is_missing(dask_run: Path) -> None:
    results = json.loads((dask_run / "results.json").read_text())
    assert len(set(_source(dask_run, "counted"))) == 100  # distinct texts
    assert results["computed_first"] == 60
    assert results["computed_total"] == 100  # the second run computed only the 40 new rows
    got = read_dir(dask_run / "b_all")
    assert got["id"].tolist() == list(range(100))
    assert np.array_equal(vectors(got), embedkit.embed(got["text"].tolist(), HASHING, cache=False))


@pytest.mark.slow
def test_a_killed_worker_loses_and_duplicates_no_row(dask_run: Path) -> None:
    results = json.loads((dask_run / "results.json").read_text())
    assert int(results["killed_pid"]) > 0
    got = read_dir(dask_run / "c_all")
    assert got["id"].tolist() == list(range(200))
    assert got["text"].tolist() == _source(dask_run, "killed")
    assert np.array_equal(vectors(got), embedkit.embed(got["text"].tolist(), HASHING, cache=False))


@pytest.mark.slow
def test_minilm_on_dask_equals_the_single_process_job(dask_run: Path) -> None:
    got = read_dir(dask_run / "d_all")
    texts = _source(dask_run, "minilm")
    assert got["text"].tolist() == texts and (got["status"] == "ok").all()
    with torch_threads(1):  # as in a 1-CPU actor/worker (OMP_NUM_THREADS=1)
        want = embedkit.embed(texts, MINILM, cache=False, batch_size=20)
    assert np.array_equal(vectors(got), want)


# -- the shared core, in this process --------------------------------------------------
def test_core_reports_every_bad_row_and_embeds_the_rest(tmp_path: Path) -> None:
    core = BatchEmbedder(HASHING, cache=tmp_path / "c.db", batch_size=3)
    texts: list[object] = ["a dog runs", *BAD, "a cat sleeps", "a dog runs"]
    out = core.frame(pd.DataFrame({"text": texts}, index=[10 * i for i in range(len(texts))]))
    assert out.index.tolist() == [10 * i for i in range(len(texts))]
    assert out["status"].tolist() == ["ok", *BAD_STATUS, "ok", "ok"]
    ok = out[out["status"] == "ok"]
    want = embedkit.embed(["a dog runs", "a cat sleeps", "a dog runs"], HASHING, cache=False)
    assert np.array_equal(vectors(ok), want)
    assert out["embedding"].isna().tolist() == [False, *[True] * len(BAD), False, False]
    again = core.frame(pd.DataFrame({"text": ["a cat sleeps"]}))
    assert core.stats.cached == 1 and again["status"].tolist() == ["ok"]


def test_core_table_carries_the_spec_and_a_fixed_size_float32_column() -> None:
    core = BatchEmbedder(HASHING, cache=False)
    table = core.table(pa.table({"id": [1, 2], "text": ["x y", None]}))
    field = table.schema.field("embedding")
    assert pa.types.is_fixed_size_list(field.type) and field.type.list_size == 64
    assert pa.types.is_float32(field.type.value_type)
    assert table.schema.metadata[b"embedkit.spec"] == embedkit.load(HASHING).spec.encode()
    assert table.column("embedding").null_count == 1
    assert table.column("status").to_pylist() == ["ok", "missing"]


def test_core_policies_on_long_rows(minilm: embedkit.Embedder) -> None:
    long_text = "word " * 400
    error = BatchEmbedder(minilm, on_long="error", cache=False).frame(
        pd.DataFrame({"text": ["short one", long_text]})
    )
    assert error["status"].tolist() == ["ok", "too-long"]
    n = int(minilm.count_tokens([long_text])[0])
    assert n > 256 and error["message"][1] == f"{n} tokens > 256"
    truncated = BatchEmbedder(minilm, cache=False).frame(pd.DataFrame({"text": [long_text]}))
    assert truncated["status"].tolist() == ["ok"]
    assert truncated["message"][0] == f"truncated: {n} tokens > 256"
    with pytest.warns(EmbedkitWarning, match="truncated"):
        assert np.array_equal(vectors(truncated), minilm.embed([long_text]))


def test_core_refuses_wrong_options_and_batches() -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        BatchEmbedder(HASHING, batch_size=0)
    with pytest.raises(ConfigError, match="on_long"):
        BatchEmbedder(HASHING, on_long="shorten")  # type: ignore[arg-type]
    core = BatchEmbedder(HASHING, cache=False)
    with pytest.raises(ConfigError, match="no column 'text'"):
        core.frame(pd.DataFrame({"body": ["a"]}))
    with pytest.raises(ConfigError, match="already has"):
        core.frame(pd.DataFrame({"text": ["a"], "status": ["x"]}))
    with pytest.raises(ConfigError, match=r"pyarrow\.Table"):
        core.table(pd.DataFrame({"text": ["a"]}))
    with pytest.raises(ConfigError, match=r"pandas\.DataFrame"):
        core.frame(pa.table({"text": ["a"]}))


def test_embed_dataframe_refuses_what_is_not_a_dask_frame() -> None:
    from embedkit.dask import embed_dataframe

    with pytest.raises(ConfigError, match="dask"):
        embed_dataframe(pd.DataFrame({"text": ["a"]}), HASHING)


if __name__ == "__main__":
    child(Path(sys.argv[1]))
