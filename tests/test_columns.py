"""Index ids and metadata at any size: default ids as a range, metadata read lazily."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from embedkit._folder import MANIFEST, data_path
from embedkit.errors import ConfigError, CorruptFileError
from embedkit.search.columns import IdColumn, MetadataColumn
from embedkit.search.index import VectorIndex
from embedkit.search.writer import IndexWriter


def rows(n: int, dim: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def stored_ids(folder: Path) -> object:
    return json.loads((data_path(folder) / "ids.json").read_text())


def test_default_ids_are_stored_as_a_range_and_load_as_the_same_ids(tmp_path: Path) -> None:
    index = VectorIndex.from_vectors(rows(50))
    index.add_vectors(rows(5, seed=1), ids=[50, 51, 52, 53, 54])  # the default ids, given
    folder = index.save(tmp_path / "i")
    assert stored_ids(folder) == {"range": [0, 55]}
    assert json.loads((folder / MANIFEST).read_text())["version"] == 2
    back = VectorIndex.load(folder)
    assert back.ids == list(range(55)) and back.metadata == [None] * 55
    assert back.search(rows(55)[3], k=1)[0].id == 3
    with pytest.raises(ConfigError, match="duplicate id 7"):
        back.add_vectors(rows(1), ids=[7])
    back.add_vectors(rows(1), ids=["7"])  # 7 and "7" are different ids
    assert back.ids[-2:] == [54, "7"]


def test_other_ids_turn_the_range_into_a_list_that_keeps_every_check(tmp_path: Path) -> None:
    index = VectorIndex.from_vectors(rows(3), ids=["a", "b", "c"])
    index.add_vectors(rows(2, seed=1))  # default ids: the row numbers 3 and 4
    assert index.ids == ["a", "b", "c", 3, 4]
    with pytest.raises(ConfigError, match="duplicate id 'b'"):
        index.add_vectors(rows(1), ids=["b"])
    clash = VectorIndex.from_vectors(rows(2), ids=[3, "x"])
    with pytest.raises(ConfigError, match="duplicate id 3"):
        clash.add_vectors(rows(2, seed=1))  # the default ids 2, 3: 3 is taken
    assert len(clash) == 2 and clash.ids == [3, "x"]  # nothing added
    folder = index.save(tmp_path / "i")
    assert stored_ids(folder) == ["a", "b", "c", 3, 4]
    assert VectorIndex.load(folder, mmap=True).ids == ["a", "b", "c", 3, 4]


def test_a_version_1_folder_still_loads(tmp_path: Path) -> None:
    folder = VectorIndex.from_vectors(rows(4), metadata=[{"t": "x"}, None, None, None]).save(
        tmp_path / "i"
    )
    ids_file = data_path(folder) / "ids.json"
    manifest = json.loads((folder / MANIFEST).read_text())
    data = json.dumps([0, 1, 2, 3]).encode()  # how version 1 stored default ids
    ids_file.write_bytes(data)
    import hashlib

    manifest["files"]["ids.json"] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    manifest["version"] = 1
    (folder / MANIFEST).write_text(json.dumps(manifest))
    back = VectorIndex.load(folder)
    assert back.ids == [0, 1, 2, 3] and back.metadata[0] == {"t": "x"}


@pytest.mark.parametrize("value", [{"range": [1, 4]}, {"range": [0, 3]}, {"rows": 4}, [0, 1]])
def test_malformed_ids_files_are_corrupt(value: object) -> None:
    with pytest.raises(CorruptFileError):
        IdColumn.decode(value, 4, "ids.json")


@pytest.mark.parametrize("mmap", [False, True])
def test_metadata_is_read_lazily_and_exactly(tmp_path: Path, mmap: bool) -> None:
    meta = [{"text": "a\u2028b\u0085c", "n": i} if i % 3 else None for i in range(30)]
    folder = VectorIndex.from_vectors(rows(30), metadata=meta).save(tmp_path / "i")
    back = VectorIndex.load(folder, mmap=mmap)
    hit = back.search(rows(30)[4], k=1)[0]
    assert hit.id == 4 and hit.metadata == meta[4]
    assert back.metadata == meta
    assert back.metadata == meta and back.metadata is not back.metadata  # parsed once, copies
    back.add_vectors(rows(2, seed=5), metadata=[{"new": True}, None])
    again = VectorIndex.load(back.save(tmp_path / "j"))
    assert again.metadata == [*meta, {"new": True}, None]


def test_rows_of_a_search_come_as_each_row_would(tmp_path: Path) -> None:
    meta = [{"n": i, "t": "é\u2028"} if i % 2 else None for i in range(9)]
    folder = VectorIndex.from_vectors(rows(9), metadata=meta).save(tmp_path / "i")
    back = VectorIndex.load(folder)
    back.add_vectors(rows(3, seed=2), metadata=[{"late": 1}, None, {"late": 3}])
    column = back._metadata
    picked = [11, 0, 8, 9, 3, 3, 1]  # the tail, the first and last loaded lines, repeats
    assert column.rows(picked) == [column[r] for r in picked] == [
        {"late": 3}, None, None, {"late": 1}, {"n": 3, "t": "é\u2028"}, {"n": 3, "t": "é\u2028"},
        {"n": 1, "t": "é\u2028"},
    ]  # fmt: skip
    assert column.rows([]) == [] and MetadataColumn([{"a": 1}]).rows([0, 0]) == [{"a": 1}] * 2
    ids = IdColumn(["a", "b", "c"])
    assert ids.rows([2, 0]) == ["c", "a"] and IdColumn(range(5)).rows([4, 1]) == [4, 1]


@pytest.mark.parametrize("mmap", [False, True])
def test_an_index_without_metadata_keeps_no_line_ends(tmp_path: Path, mmap: bool) -> None:
    """All-null lines are recognised at load (row r is "null" at byte 5 r): no ends held,
    the same rows, the same file written back, and a look-alike of that size still parsed."""
    folder = VectorIndex.from_vectors(rows(7)).save(tmp_path / "i")
    back = VectorIndex.load(folder, mmap=mmap)
    column = back._metadata
    assert column._nulls and column._ends.size == 0 and len(column) == 7
    back.add_vectors(rows(2, seed=1), metadata=[{"x": 1}, None])
    assert column.rows([8, 0, 7, 6]) == [None, None, {"x": 1}, None] and column[3] is None
    again = back.save(tmp_path / "j")
    assert VectorIndex.load(again).metadata == [None] * 7 + [{"x": 1}, None] == back.metadata
    same_size = b'{"a":1}\n{}\n' + b"null\n" * 3  # 25 bytes = 5 x 5 lines, not all null
    look_alike = MetadataColumn.from_lines(same_size, 5, "x")
    assert not look_alike._nulls and look_alike.rows([0, 1, 4]) == [{"a": 1}, {}, None]
    with pytest.raises(CorruptFileError, match="6 metadata lines"):
        MetadataColumn.from_lines(b"null\n" * 6, 5, "x")  # one line too many


def test_a_damaged_metadata_line_is_corrupt_when_read(tmp_path: Path) -> None:
    folder = VectorIndex.from_vectors(rows(3), metadata=[{"a": 1}, {"a": 2}, {"a": 3}]).save(
        tmp_path / "i"
    )
    path = data_path(folder) / "metadata.jsonl"
    path.write_bytes(path.read_bytes().replace(b'{"a": 2}', b'{"a": 2]'))  # same size
    with pytest.raises(CorruptFileError, match="sha256"):
        VectorIndex.load(folder)
    back = VectorIndex.load(folder, verify=False)  # sizes only: the line is checked when read
    assert back.search(rows(3)[0], k=1)[0].metadata == {"a": 1}
    with pytest.raises(CorruptFileError, match="metadata line 1"):
        back.search(rows(3)[1], k=1)
    with pytest.raises(CorruptFileError, match="metadata line 1"):
        back.metadata  # noqa: B018 - the whole list: parsed in one pass, the bad row named
    with pytest.raises(CorruptFileError, match="2 metadata lines, the manifest says 3"):
        MetadataColumn.from_lines(b'{"a": 1}\nnull\n', 3, "m")
    with pytest.raises(CorruptFileError):
        MetadataColumn.from_lines(b"null\nnull", 2, "m")  # no final newline


def test_mapped_metadata_truncated_underneath_raises(tmp_path: Path) -> None:
    meta = [{"text": "x" * 100}] * 2000
    folder = VectorIndex.from_vectors(rows(2000), metadata=meta).save(tmp_path / "i")
    mapped = VectorIndex.load(folder, mmap=True)
    assert mapped.search(rows(1)[0], k=1)[0].metadata == meta[0]
    os.truncate(data_path(folder) / "metadata.jsonl", 10)
    with pytest.raises(CorruptFileError, match="changed size underneath"):
        mapped.search(rows(1)[0], k=1)


def test_the_writer_stores_ranges_until_another_id_arrives(tmp_path: Path) -> None:
    with IndexWriter(tmp_path / "r", dim=8, spec=None) as out:
        out.add(rows(3))
        out.add(rows(2, seed=1), ids=[3, 4])
        out.add(rows(0, seed=2), ids=[])
        out.commit()
    assert stored_ids(tmp_path / "r") == {"range": [0, 5]}
    with IndexWriter(tmp_path / "m", dim=8, spec=None) as out:
        out.add(rows(3))
        out.add(rows(2, seed=1), ids=["x", 9])
        out.add(rows(0, seed=2), ids=[])
        out.add(rows(1, seed=3))
        with pytest.raises(ConfigError, match="duplicate id 'x'"):
            out.add(rows(1, seed=4), ids=["x"])
        out.commit()
    assert stored_ids(tmp_path / "m") == [0, 1, 2, "x", 9, 5]
    back = VectorIndex.load(tmp_path / "m")
    assert back.ids == [0, 1, 2, "x", 9, 5] and len(back.vectors) == 6


LOAD = r"""
import json, sys
import numpy as np
from embedkit.search.index import VectorIndex

def anon():
    with open("/proc/self/status") as fh:
        return next(int(l.split()[1]) * 1024 for l in fh if l.startswith("RssAnon:"))

base = anon()
index = VectorIndex.load(sys.argv[1], mmap=True)
loaded = anon()
hit = index.search(np.ones(8, np.float32), k=1)[0]
print(json.dumps({"growth": loaded - base, "id": hit.id, "meta": hit.metadata}))
"""


@pytest.mark.slow
def test_loading_a_mapped_index_costs_a_few_bytes_per_row(tmp_path: Path) -> None:
    """Ids, metadata and the id -> row map are not Python objects per row (they were
    about 140 bytes a row: 1.2 GB at 10M; now 8, the line ends). Here: 1M default-id rows."""
    n = 1_000_000
    with IndexWriter(tmp_path / "i", dim=8, spec=None) as out:
        for start in range(0, n, 100_000):
            out.add(rows(100_000, seed=start), metadata=[{"row": start}] + [None] * 99_999)
        out.commit()
    done = subprocess.run(
        [sys.executable, "-c", LOAD, str(tmp_path / "i")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["growth"] < 40 * n, f"load grew by {result['growth']:,} bytes"
    assert isinstance(result["id"], int)
    assert result["meta"] == ({"row": result["id"]} if result["id"] % 100_000 == 0 else None)
