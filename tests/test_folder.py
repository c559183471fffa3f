"""The one folder format under faults: SIGKILL mid-save, concurrent readers and writers, bad manifests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from embedkit import _folder
from embedkit.errors import ConfigError, CorruptFileError
from embedkit.search.index import VectorIndex

ROWS, DIM = 40_000, 64  # 10 MB of vectors: a save takes long enough to be interrupted


def _version(tag: int) -> VectorIndex:
    vectors = np.random.default_rng(tag).standard_normal((ROWS, DIM)).astype(np.float32)
    ids = [f"v{tag}-{i}" for i in range(ROWS)]
    return VectorIndex.from_vectors(vectors, ids=ids, metadata=[{"tag": tag}] * ROWS)


SAVER = """
import sys
import numpy as np
from embedkit.search.index import VectorIndex
sys.path.insert(0, {tests!r})
from test_folder import _version
versions = [_version(1), _version(2)]
print("ready", flush=True)
i = 0
while True:
    versions[i % 2].save({path!r})
    i += 1
"""


def _start_saver(path: Path) -> subprocess.Popen[str]:
    code = SAVER.format(tests=str(Path(__file__).parent), path=str(path))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def _which(index: VectorIndex) -> int:
    """1 or 2: the version the index is, checked whole (ids, metadata and vectors agree)."""
    tag = int(str(index.ids[0]).split("-")[0][1:])
    want = _version(tag)
    assert index.ids == want.ids and index.metadata == want.metadata
    np.testing.assert_array_equal(index.vectors, want.vectors)
    return tag


@pytest.mark.slow
def test_sigkill_at_any_instant_leaves_the_old_or_the_new_index(tmp_path: Path) -> None:
    path = tmp_path / "idx"
    _version(1).save(path)
    seen = set()
    interrupted = 0  # kills that landed inside a save (it left a half-written temp folder)
    rng = np.random.default_rng(0)
    for _ in range(8):
        proc = _start_saver(path)
        time.sleep(float(rng.uniform(0.05, 0.6)))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        interrupted += any(p.name.startswith(".tmp-") for p in path.iterdir())
        seen.add(_which(VectorIndex.load(path)))
    assert interrupted >= 1  # else this test proved nothing
    assert seen <= {1, 2}
    _version(2).save(path)  # the next save cleans what killed saves left
    names = sorted(p.name for p in path.iterdir())
    assert len(names) == 3 and names[0] == ".lock" and names[1].startswith("data-")


@pytest.mark.slow
def test_loads_during_concurrent_saves_return_one_whole_version(tmp_path: Path) -> None:
    path = tmp_path / "idx"
    _version(1).save(path)
    proc = _start_saver(path)
    try:
        seen = [_which(VectorIndex.load(path, mmap=bool(i % 2))) for i in range(12)]
    finally:
        proc.kill()
        proc.wait()
    assert set(seen) <= {1, 2}


def test_a_killed_first_save_leaves_nothing_that_loads(tmp_path: Path) -> None:
    path = tmp_path / "fresh"
    writer = _folder.FolderWriter(path, "index")
    writer.write_bytes("ids.json", b"[]")  # ... and the process dies here: no commit
    with pytest.raises(CorruptFileError, match="no manifest"):
        VectorIndex.load(path)
    writer.close()
    assert [p.name for p in path.iterdir()] == [".lock"]


def _saved(tmp_path: Path) -> Path:
    return VectorIndex.from_vectors(np.eye(3, dtype=np.float32)).save(tmp_path / "idx")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.update(version=99), "newer than this embedkit reads"),
        (lambda m: m.update(version="1"), "positive integer"),
        (lambda m: m.update(kind="words"), "not 'index'"),
        (lambda m: m.update(data="../elsewhere"), "data-<id>"),
        (lambda m: m["files"]["ids.json"].pop("sha256"), "sha256"),
        (lambda m: m["files"]["ids.json"].update(bytes="12"), "sha256"),
        (lambda m: m.update(files=[]), "'files' must be an object"),
        (lambda m: m["files"].update({"../x": m["files"]["ids.json"]}), "plain file name"),
        (lambda m: m["meta"].update(dim="3"), "non-negative integer"),
        (lambda m: m["meta"]["store"].update(kind="pickle"), "unknown store"),
        (lambda m: m.update(meta=None), "'meta' must be an object"),
    ],
)
def test_edited_manifests_are_refused_with_a_clear_error(
    tmp_path: Path, edit: object, message: str
) -> None:
    folder = _saved(tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    edit(manifest)  # type: ignore[operator]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CorruptFileError, match=message):
        VectorIndex.load(folder)


def test_checksums_cannot_be_switched_off_by_the_manifest(tmp_path: Path) -> None:
    folder = _saved(tmp_path)
    data = _folder.data_path(folder)
    raw = bytearray((data / "vectors.npy").read_bytes())
    raw[-1] ^= 0x01
    (data / "vectors.npy").write_bytes(bytes(raw))
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["verify"] = False
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CorruptFileError, match="sha256"):
        VectorIndex.load(folder)


def test_a_file_in_place_of_the_folder_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.write_text("not a folder")
    with pytest.raises(ConfigError, match="is a file"):
        VectorIndex.from_vectors(np.eye(2, dtype=np.float32)).save(target)
    assert target.read_text() == "not a folder"
