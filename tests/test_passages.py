"""Question -> passages over chunked documents, on real data (the Lee articles, the reviews).

Quality floors are the measured values (benchmarks/bench_rag.py, docs/rag.md) less
a margin; the query path is checked against vectors computed by hand.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import embedkit
from embedkit.errors import ConfigError, CorruptFileError
from embedkit.evaluate import reviews_retrieval
from embedkit.evaluate.passages import (
    evaluate_passages,
    lee_retrieval,
    queries_past,
    split_sentences,
)
from embedkit.protocol import Embedder
from embedkit.search.index import VectorIndex
from embedkit.search.passages import Passage, PassageIndex, format_context

HASHING = "hashing?dim=512"


@pytest.fixture(scope="module")
def lee_docs(lee_corpus: Path) -> list[str]:
    return lee_corpus.read_text("utf-8").splitlines()


@pytest.fixture(scope="module")
def lee_index(lee_docs: list[str]) -> PassageIndex:
    return PassageIndex.from_documents(
        lee_docs, HASHING, size=64, overlap=16, cache=False, progress=False
    )


def test_passages_point_into_their_documents(lee_index: PassageIndex, lee_docs: list[str]) -> None:
    assert len(lee_index) > len(lee_docs)
    found = lee_index.search("Why did residents of Hill Top in the Southern Highlands leave?", k=5)
    assert len(found) == 5 and all(isinstance(p, Passage) for p in found)
    assert len({p.doc_id for p in found}) == 5, "one passage per document"
    assert [p.score for p in found] == sorted((p.score for p in found), reverse=True)
    for p in found:
        assert lee_docs[int(p.doc_id)][p.start : p.end] == p.text
    assert found[0].doc_id == 0 and "Hill Top" in found[0].text


def test_grouping_by_document(lee_index: PassageIndex) -> None:
    question = "Australian cricket team wins the test match"
    best = lee_index.search(question, k=3)
    grouped = lee_index.search(question, k=3, per_doc=2)
    plain = lee_index.search(question, k=6, per_doc=None)
    docs = [p.doc_id for p in grouped]
    assert list(dict.fromkeys(docs)) == [p.doc_id for p in best], "documents in the same order"
    assert all(docs.count(d) <= 2 for d in docs)
    for d in set(docs):  # within a document, its best chunks first, and its best is the one
        scores = [p.score for p in grouped if p.doc_id == d]
        assert scores == sorted(scores, reverse=True)
        assert scores[0] == next(p.score for p in best if p.doc_id == d)
    assert [p.score for p in plain] == sorted((p.score for p in plain), reverse=True)
    assert plain[0] == best[0]
    assert len(plain) == 6 and len({p.doc_id for p in plain}) <= 6


def test_widens_until_k_documents(lee_docs: list[str]) -> None:
    one_long = [" ".join(lee_docs[:40]), *lee_docs[40:45]]  # one document of many chunks
    index = PassageIndex.from_documents(one_long, HASHING, size=32, cache=False, progress=False)
    found = index.search("fire", k=6)
    assert sorted(p.doc_id for p in found) == list(range(6))
    assert index.search("fire", k=50) and len(index.search("fire", k=50)) == 6


@pytest.mark.slow
def test_queries_use_the_models_query_path() -> None:
    model = embedkit.load("sentence-transformers:all-MiniLM-L6-v2?query_prompt=query: ")
    docs = ["The cat sat on the mat all afternoon.", "Stock markets fell sharply on Monday."]
    index = PassageIndex.from_documents(docs, model, cache=False, progress=False)
    (hit,) = index.search("where did the cat sit?", k=1)
    q = model.embed_query(["where did the cat sit?"])[0]  # type: ignore[attr-defined]
    d = model.embed([hit.text])[0]
    assert hit.doc_id == 0
    assert hit.score == pytest.approx(float(q @ d), abs=1e-5)
    assert hit.score != pytest.approx(float(model.embed(["where did the cat sit?"])[0] @ d))


def test_save_and_load_round_trip(lee_index: PassageIndex, tmp_path: Path) -> None:
    lee_index.save(tmp_path / "idx")
    again = PassageIndex.load(tmp_path / "idx")
    question = "police arrest a man after a shooting"
    assert again.search(question, k=4, per_doc=2) == lee_index.search(question, k=4, per_doc=2)
    assert again.chunks == lee_index.chunks


def test_refusals(lee_index: PassageIndex, tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        lee_index.search(["a list"], k=3)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        lee_index.search_batch("one string")
    for bad in (-1, 1.5, True):
        with pytest.raises(ConfigError, match="k must be"):
            lee_index.search("fire", k=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="per_doc must be"):
        lee_index.search("fire", per_doc=0)
    assert lee_index.search("fire", k=0) == []
    plain = VectorIndex.from_texts(["a", "b"], "hashing", cache=False, progress=False)
    with pytest.raises(ConfigError, match="row 0 is not a chunk"):
        PassageIndex(plain)
    plain.save(tmp_path / "plain")
    with pytest.raises(CorruptFileError, match="not a chunk"):
        PassageIndex.load(tmp_path / "plain")
    with pytest.raises(ConfigError):
        PassageIndex.from_chunks(["not a chunk"], "hashing")  # type: ignore[list-item]


def test_format_context() -> None:
    passages = [Passage("a", 0.9, "First passage.", 0, 14, 0), Passage(7, 0.5, "Second.", 3, 10, 2)]
    assert format_context(passages) == "[1] First passage.\n\n[2] Second."
    custom = format_context(passages, "({doc_id}:{start}-{end}, {score:.1f}) {text}", "\n")
    assert custom == "(a:0-14, 0.9) First passage.\n(7:3-10, 0.5) Second."
    assert format_context([]) == ""
    with pytest.raises(ConfigError, match="bad template"):
        format_context(passages, "{nope}")
    with pytest.raises(ConfigError):
        format_context(["text"])  # type: ignore[list-item]


def test_lee_task_holds_out_one_sentence_per_article(lee_docs: list[str]) -> None:
    task = lee_retrieval()
    assert len(task.corpus) == len(lee_docs) == 300
    assert len(task.queries) >= 290
    for query, rel in zip(task.queries, task.relevant, strict=True):
        (doc,) = rel
        assert query not in task.corpus[int(doc)], "the query is removed from its article"
        assert query in lee_docs[int(doc)]
        assert len(query.split()) >= 8
    assert lee_retrieval().queries == task.queries, "seeded"
    assert lee_retrieval(seed=1).queries != task.queries
    assert split_sentences('He said "Go." Then he left! Why? 4.5 m.') == [
        'He said "Go."',
        "Then he left!",
        "Why? 4.5 m.",
    ]


def test_hashing_quality_floor_on_lee() -> None:
    task = lee_retrieval()
    whole = task.evaluate(HASHING, cache=False, progress=False)
    chunked = evaluate_passages(HASHING, task, size=64, overlap=16, cache=False, progress=False)
    # measured: whole MRR@10 0.126, recall@10 0.265; chunks of 64 MRR@10 0.130, recall@10 0.252
    assert whole.at("mrr@10") > 0.10 and whole.at("recall@10") > 0.22
    assert chunked.at("mrr@10") > 0.10 and chunked.at("recall@10") > 0.21
    assert chunked.documents == 300 and chunked.queries == len(task.queries)
    assert chunked.run.texts > whole.run.texts, "more chunks than documents"


def test_hashing_quality_floor_on_reviews(reviews_csv: Path) -> None:
    task = reviews_retrieval(reviews_csv)
    chunked = evaluate_passages(HASHING, task, size=64, overlap=16, cache=False, progress=False)
    # measured: MRR@10 0.162, recall@10 0.275 (whole reviews: 0.160, 0.287)
    assert chunked.at("mrr@10") > 0.13 and chunked.at("recall@10") > 0.23


@pytest.mark.slow
def test_minilm_chunks_find_what_truncation_cuts_off(minilm: Embedder, lee_docs: list[str]) -> None:
    """Held-out sentences that stood beyond MiniLM's 256-token window in their article."""
    subset = queries_past(lee_retrieval(), lee_docs, minilm, 256)
    assert len(subset.queries) == 26  # of 298: sentences that began past 256 tokens
    whole = subset.evaluate(minilm, cache=False, progress=False)
    chunked = evaluate_passages(minilm, subset, size=256, cache=False, progress=False)
    # measured: whole recall@10 0.308, MRR@10 0.197; chunks of 256: 0.731, 0.462
    assert chunked.at("recall@10") > whole.at("recall@10") + 0.25
    assert chunked.at("mrr@10") > whole.at("mrr@10") + 0.15
    assert chunked.at("recall@10") > 0.6
