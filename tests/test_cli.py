"""The ``embedkit`` command driven as a user drives it: real files, real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import embedkit
from embedkit import registry
from embedkit.cli import main
from embedkit.errors import BackendError
from embedkit.frame import EmbeddedFrame
from embedkit.jobs.cache import EmbeddingCache

HASH = "hashing?dim=1024"
TEMPLATE = "Title: {Summary}; Content: {Text}"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDKIT_CACHE_DIR", str(tmp_path / "cache"))


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "embedkit", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=cwd,
    )


def no_traceback(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stderr, done.stderr


def test_embed_search_info_as_a_user(lee_corpus: Path, tmp_path: Path) -> None:
    index = tmp_path / "lee-index"
    done = run("embed", str(lee_corpus), "--out", str(index), "--model", HASH)
    assert done.returncode == 0, done.stderr
    assert "embedded 300 rows" in done.stderr and "0 from the cache" in done.stderr

    done = run("search", str(index), "firefighters", "Palestinian", "-k", "3")
    assert done.returncode == 0, done.stderr
    blocks = done.stdout.split("query: ")[1:]
    assert len(blocks) == 2 and blocks[0].startswith("firefighters")
    assert blocks[0].splitlines()[1].split() == ["rank", "score", "id", "text"]
    first_hit = blocks[0].splitlines()[2].split(None, 3)
    assert first_hit[0] == "1" and 0 < float(first_hit[1]) <= 1

    done = run("search", str(index), "firefighters", "-k", "2", "--json")
    payload = json.loads(done.stdout)
    hits = payload[0]["hits"]
    assert [h["rank"] for h in hits] == [1, 2] and hits[0]["score"] >= hits[1]["score"]
    assert hits[0]["id"] == int(first_hit[2]) and round(hits[0]["score"], 3) == float(first_hit[1])
    line = lee_corpus.read_text("utf-8").splitlines()[hits[0]["id"] - 1]
    assert hits[0]["metadata"]["text"] == line  # ids are line numbers
    assert "firefighters" in line.lower()

    done = run("info", str(index), "--json")
    info = json.loads(done.stdout)
    assert info["count"] == 300 and info["dim"] == 1024
    assert info["spec"] == embedkit.load(HASH).spec and info["kind"] == "index"


def test_csv_template_to_parquet_and_search(reviews_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "reviews.parquet"
    args = ["embed", str(reviews_csv), "--template", TEMPLATE, "--model", HASH, "--out", str(out)]
    assert main([*args, "--id-column", "UserId"]) == 2  # ids repeat in this column
    assert main(args) == 0
    frame = EmbeddedFrame.load(out)
    assert len(frame) == 1000 and frame.spec == embedkit.load(HASH).spec
    assert frame.rows["text"].iloc[1].startswith("Title: Arrived in pieces; Content: Not pleased")
    want = embedkit.load(HASH).embed(frame.rows["text"].tolist())
    np.testing.assert_array_equal(frame.vectors, want)
    done = run("search", str(out), "pet food", "-k", "5", "--json")
    hits = json.loads(done.stdout)[0]["hits"]
    assert len(hits) == 5 and all("food" in h["metadata"]["text"].lower() for h in hits)
    assert all(isinstance(h["id"], int) for h in hits)  # row numbers stay integers
    assert frame.rows["text"][hits[0]["id"]] == hits[0]["metadata"]["text"]


def test_jsonl_and_npy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "docs.jsonl"
    rows = [{"key": f"d{i}", "body": f"document {i} about tea"} for i in range(7)]
    source.write_text("\n".join(json.dumps(r) for r in rows) + "\n", "utf-8")
    out = tmp_path / "idx"
    assert (
        main(["embed", str(source), "-c", "body", "--id-column", "key", "-o", str(out), "-m", HASH])
        == 0
    )
    assert main(["search", str(out), "document 3 about tea", "-k", "1", "--json"]) == 0
    hit = json.loads(capsys.readouterr().out)[0]["hits"][0]
    assert hit["id"] == "d3" and hit["metadata"]["key"] == "d3"
    npy = tmp_path / "v.npy"
    assert main(["embed", str(source), "-c", "body", "-o", str(npy), "-m", HASH]) == 0
    vectors = np.load(npy, allow_pickle=False)
    np.testing.assert_array_equal(vectors, embedkit.load(HASH).embed([r["body"] for r in rows]))
    assert main(["info", str(npy)]) == 0
    assert "count  7" in capsys.readouterr().out


def test_parquet_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = tmp_path / "in.parquet"
    pq.write_table(pa.table({"text": ["green tea", "black coffee", "dog biscuits"]}), source)
    assert main(["embed", str(source), "-o", str(tmp_path / "idx"), "-m", HASH]) == 0
    assert main(["search", str(tmp_path / "idx"), "biscuits for my dog", "-k", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["hits"][0]["id"] == 2


def write_csv(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path


GOOD = [f'{i},"Title {i}","Tasty snack number {i}"' for i in range(600)]


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ('600,"Title 600",', "line 602: field 'Text': empty string"),
        ('600,"Title 600","one",extra', "line 602: malformed CSV row with 4 fields"),
        ('600,"Title 600","broken "quote" here"', "line 602: malformed CSV"),
    ],
)
def test_bad_csv_rows_are_named_and_finished_work_is_kept(
    tmp_path: Path, bad_line: str, message: str
) -> None:
    source = write_csv(tmp_path / "r.csv", ["id,Summary,Text", *GOOD, bad_line, *GOOD[:5]])
    done = run(
        "embed",
        str(source),
        "-c",
        "Text",
        "-o",
        str(tmp_path / "i"),
        "-m",
        HASH,
        "--batch-size",
        "100",
    )
    assert done.returncode == 2
    no_traceback(done)
    assert message in done.stderr, done.stderr
    cache = EmbeddingCache(tmp_path / "cache")
    assert cache.count(embedkit.load(HASH).spec) == 600  # every finished batch kept


def test_missing_cells_can_be_dropped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_csv(tmp_path / "r.csv", ["Summary,Text", "a,first", "b,", "c,  ", "d,fourth"])
    assert main(["embed", str(source), "-c", "Text", "-o", str(tmp_path / "i"), "-m", HASH]) == 2
    assert "line 3: field 'Text': empty string" in capsys.readouterr().err
    code = main(
        [
            "embed",
            str(source),
            "-c",
            "Text",
            "-o",
            str(tmp_path / "i"),
            "-m",
            HASH,
            "--on-missing",
            "drop",
        ]
    )
    assert code == 0
    assert "2 rows dropped" in capsys.readouterr().err
    assert main(["info", str(tmp_path / "i"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["count"] == 2


def test_non_utf8_file(tmp_path: Path) -> None:
    source = tmp_path / "latin1.txt"
    source.write_bytes("caf\u00e9 au lait\nna\u00efve tea\n".encode("latin-1"))
    done = run("embed", str(source), "-o", str(tmp_path / "i"), "-m", HASH)
    assert done.returncode == 2
    no_traceback(done)
    assert "line 1 is not valid UTF-8" in done.stderr and "iconv" in done.stderr


def test_usage_errors_exit_2_with_one_line(
    reviews_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = [
        (["embed", str(reviews_csv), "-c", "Nope", "-o", str(tmp_path / "x")], "no column 'Nope'"),
        (["embed", str(tmp_path / "absent.csv"), "-o", str(tmp_path / "x")], "does not exist"),
        (
            ["embed", str(reviews_csv), "-c", "Text", "-o", str(tmp_path / "x"), "-m", "nosuch:m"],
            "unknown backend 'nosuch'; available:",
        ),
        (["embed", str(reviews_csv), "-t", "{}", "-o", str(tmp_path / "x")], "not a field name"),
        (
            [
                "embed",
                str(reviews_csv),
                "-c",
                "Text",
                "-o",
                str(tmp_path / "x"),
                "--resume",
                "--no-cache",
            ],
            "--resume needs the cache",
        ),
        (["search", str(tmp_path / "nowhere"), "q"], "no such file"),
        (["info", str(reviews_csv)], "not a readable Parquet file"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and err.startswith("embedkit: error:"), (argv, err)


def test_existing_output_needs_force_or_resume(tmp_path: Path, lee_corpus: Path) -> None:
    out = tmp_path / "idx"
    argv = ["embed", str(lee_corpus), "-o", str(out), "-m", HASH]
    assert main(argv) == 0
    assert main(argv) == 2
    assert main([*argv, "--force"]) == 0
    assert main([*argv, "--resume"]) == 0


def test_query_model_must_match_the_index(
    tmp_path: Path, lee_corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["embed", str(lee_corpus), "-o", str(tmp_path / "idx"), "-m", HASH]) == 0
    assert main(["search", str(tmp_path / "idx"), "fire", "--model", "hashing?dim=64"]) == 2
    assert "must be embedded by the same model" in capsys.readouterr().err
    assert main(["search", str(tmp_path / "idx"), "fire", "--json"]) == 0
    in_ram = json.loads(capsys.readouterr().out)
    assert main(["search", str(tmp_path / "idx"), "fire", "--json", "--mmap", "--model", HASH]) == 0
    assert json.loads(capsys.readouterr().out) == in_ram


def test_missing_dependency_exits_3_and_backend_failure_exits_1(
    tmp_path: Path,
    lee_corpus: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(
        registry._user_backends,
        "ghost",
        registry.BackendInfo("ghost", "ghost_pkg_xyz:Model", "ghost"),
    )
    argv = ["embed", str(lee_corpus), "-o", str(tmp_path / "i")]
    assert main([*argv, "-m", "ghost:any"]) == 3
    assert "pip install 'embedkit[ghost]'" in capsys.readouterr().err

    class Down:
        dim, spec = 8, "down:model"

        def embed(self, texts: list[str]) -> np.ndarray:
            raise BackendError("server unreachable") from ConnectionError("refused")

    monkeypatch.setitem(
        registry._user_backends, "down", registry.BackendInfo("down", lambda m: Down())
    )
    assert main([*argv, "-m", "down:x"]) == 1
    err = capsys.readouterr().err
    assert "server unreachable (caused by ConnectionError)" in err


def test_models_lists_backends_and_missing_extras(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ghost = registry.BackendInfo(
        "ghost", "embedkit.backends.hashing:HashingEmbedder", "ghostextra", ("ghost_module_xyz",)
    )
    monkeypatch.setitem(registry.BUILTIN_BACKENDS, "ghost", ghost)
    assert main(["models", "--json"]) == 0
    rows = {r["backend"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["hashing"]["available"] and rows["hashing"]["missing"] == []
    assert rows["sentence-transformers"]["available"]
    assert rows["ghost"] == {
        "backend": "ghost",
        "available": False,
        "extra": "ghostextra",
        "missing": ["ghost_module_xyz"],
        "install": "pip install 'embedkit[ghostextra]'",
    }
    assert main(["models"]) == 0
    table = capsys.readouterr().out
    assert "pip install 'embedkit[ghostextra]'" in table and "hashing" in table


def test_no_command_prints_help() -> None:
    done = run()
    assert done.returncode == 2 and "embed" in done.stderr


def test_demo_runs_end_to_end_with_any_model(tmp_path: Path) -> None:
    done = run("demo", "--model", HASH, "--out", str(tmp_path / "lee"), "-k", "2")
    assert done.returncode == 0, done.stderr
    assert "embedded 300 articles" in done.stdout
    assert done.stdout.count("query: ") == 5
    assert (tmp_path / "lee" / "manifest.json").exists()


@pytest.mark.slow
def test_cli_with_the_default_minilm_model(
    lee_corpus: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("EMBEDKIT_MODEL", raising=False)
    head = tmp_path / "lee20.txt"
    head.write_text("\n".join(lee_corpus.read_text("utf-8").splitlines()[:20]) + "\n", "utf-8")
    index = tmp_path / "idx"
    assert main(["embed", str(head), "-o", str(index)]) == 0  # no --model: the offline default
    err = capsys.readouterr().err
    assert "sentence-transformers:all-MiniLM-L6-v2" in err and "embedded 20 rows" in err
    assert main(["search", str(index), "forest fire near homes", "-k", "1", "--json"]) == 0
    text = json.loads(capsys.readouterr().out)[0]["hits"][0]["metadata"]["text"].lower()
    assert "fire" in text or "blaze" in text


def test_cache_command_lists_and_clears_namespaces(
    tmp_path: Path, lee_corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for spec in (HASH, "hashing?dim=64"):
        assert main(["embed", str(lee_corpus), "-o", str(tmp_path / spec[-3:]), "-m", spec]) == 0
    capsys.readouterr()
    assert main(["cache", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["path"] == str(tmp_path / "cache" / "embeddings.sqlite3")
    assert sorted(info["specs"].values()) == [293, 293]  # 300 articles, 293 distinct
    small = embedkit.load("hashing?dim=64").spec
    assert main(["cache", "--clear", "--spec", small, "--json"]) == 0
    captured = capsys.readouterr()
    assert "deleted 293 entries" in captured.err
    assert json.loads(captured.out)["specs"] == {small: 0}
    assert EmbeddingCache(tmp_path / "cache").count(embedkit.load(HASH).spec) == 293
