"""``embedkit.evaluate``: retrieval, similarity and classification scores, compare(), the CLI verb.

Metrics are checked against hand-computed values; the shipped review tasks run
for real (hashing and Word2Vec on all 1,000 reviews, MiniLM on the first 200,
its vectors kept in a session cache). The full comparison is in docs/evaluate.md
(benchmarks/bench_compare.py).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import embedkit
from embedkit.errors import ConfigError, InvalidInputError, UsageError
from embedkit.evaluate import (
    Comparison,
    RetrievalTask,
    SimilarityTask,
    compare,
    evaluate_classification,
    evaluate_retrieval,
    evaluate_similarity,
    evaluate_word_pairs,
    ranking_scores,
    read_word_pairs,
    reviews_retrieval,
    reviews_sentiment,
)
from embedkit.jobs.cache import EmbeddingCache

HASHING = "hashing?dim=256"
CORPUS = ["dog food for puppies", "spicy hot sauce", "green tea leaves", "strong black coffee"]
QUERIES = ["puppies dog food", "hot sauce", "coffee"]
RELEVANT = [{0}, {1}, {3}]


@pytest.fixture(scope="session")
def review_cache(tmp_path_factory: pytest.TempPathFactory) -> EmbeddingCache:
    """One cache file per test session, shared by the files that embed the reviews."""
    return EmbeddingCache(tmp_path_factory.getbasetemp() / "review-vectors.sqlite3")


# -- metrics ------------------------------------------------------------------------------------
def test_ranking_scores_by_hand() -> None:
    rankings = [["a", "b", "c"], ["c", "a", "b"], ["x", "y", "z"], ["b", "d", "a"]]
    relevant = [{"a"}, {"a"}, {"a"}, {"a", "d"}]
    s = ranking_scores(rankings, relevant, k=(1, 3))
    assert s.k == (1, 3)
    assert s.recall == pytest.approx((0.25, (1 + 1 + 0 + 1) / 4))
    assert s.mrr == pytest.approx((0.25, (1 + 1 / 2 + 0 + 1 / 2) / 4))
    d = [1 / math.log2(r + 1) for r in (1, 2, 3)]
    ndcg_q4 = (d[1] + d[2]) / (d[0] + d[1])
    assert s.ndcg == pytest.approx((0.25, (1 + d[1] + 0 + ndcg_q4) / 4))
    assert s.first_rank == (1, 2, 0, 2)
    assert s.at("mrr@3") == s.mrr[1]
    with pytest.raises(ConfigError, match="metric"):
        s.at("mrr@2")


def test_ranking_scores_refusals() -> None:
    with pytest.raises(ConfigError, match="no relevant"):
        ranking_scores([["a"]], [set()])
    with pytest.raises(ConfigError, match="relevance sets"):
        ranking_scores([["a"]], [{"a"}, {"b"}])
    with pytest.raises(ConfigError, match="k must"):
        ranking_scores([["a"]], [{"a"}], k=0)


# -- retrieval ------------------------------------------------------------------------------------
def test_evaluate_retrieval_through_the_job_path_and_the_index(tmp_path: Path) -> None:
    with EmbeddingCache(tmp_path / "c.sqlite3") as cache:
        first = evaluate_retrieval(HASHING, QUERIES, CORPUS, RELEVANT, k=(1, 2), cache=cache)
        assert first.at("recall@1") == 1.0 and first.score == first.at("mrr@2") == 1.0
        assert (first.queries, first.documents) == (3, 4)
        run = first.run
        assert (run.texts, run.cached, run.computed) == (7, 0, 7)
        assert run.dim == 256 and run.bytes_per_vector == 1024 and run.texts_per_s > 0
        again = evaluate_retrieval(HASHING, QUERIES, CORPUS, RELEVANT, k=(1, 2), cache=cache)
        assert again.run.cached == 4  # the corpus came from the cache; queries are not cached
        assert again.scores == first.scores
    frame = first.to_frame()
    assert list(frame.index) == [1, 2] and list(frame.columns) == ["recall", "mrr", "ndcg"]


def test_evaluate_retrieval_with_ids_and_refusals() -> None:
    ids = ["dog", "sauce", "tea", "coffee"]
    rel = [{"dog"}, {"sauce"}, {"coffee"}]
    result = evaluate_retrieval(HASHING, QUERIES, CORPUS, rel, ids=ids, k=1, cache=False)
    assert result.metric == "mrr@1" and result.score == 1.0
    with pytest.raises(ConfigError, match="not in the corpus"):
        evaluate_retrieval(HASHING, QUERIES, CORPUS, [{"nope"}, {1}, {2}], cache=False)
    with pytest.raises(ConfigError, match="non-empty"):
        evaluate_retrieval(HASHING, QUERIES, CORPUS, [set(), {1}, {2}], cache=False)
    with pytest.raises(ConfigError, match="metric"):
        evaluate_retrieval(HASHING, QUERIES, CORPUS, RELEVANT, metric="map@10", cache=False)
    with pytest.raises(ConfigError, match="one string"):
        evaluate_retrieval(HASHING, "coffee", CORPUS, [{3}], cache=False)
    with pytest.raises(InvalidInputError):
        evaluate_retrieval(HASHING, QUERIES, [*CORPUS[:3], None], RELEVANT, cache=False)  # type: ignore[list-item]


def test_reviews_tasks_hold_each_text_once(reviews_csv: Path) -> None:
    task = reviews_retrieval(reviews_csv)
    assert (len(task.queries), len(task.corpus)) == (721, 761)
    assert len(set(task.corpus)) == 761 and all(task.relevant)
    delicious = task.relevant[task.queries.index("Delicious!")]
    assert len(delicious) == 10
    sentiment = reviews_sentiment(reviews_csv)
    assert len(sentiment) == 706 and sentiment.labels.count("negative") == 103
    assert len(set(sentiment.texts)) == 706


# -- similarity -----------------------------------------------------------------------------------
def test_evaluate_similarity_matches_the_word_level_evaluation(
    lee_corpus: Path, tmp_path: Path
) -> None:
    from gensim.test.utils import datapath

    model = embedkit.train_word2vec(
        lee_corpus.read_text("utf-8").splitlines(), dim=32, min_count=3, epochs=5
    )
    vocab = model.words
    task = read_word_pairs(datapath("wordsim353.tsv"))
    assert len(task) == 353 and task.name == "wordsim353"
    kept = [
        (p, s) for p, s in zip(task.pairs, task.scores, strict=True) if all(w in vocab for w in p)
    ]
    assert len(kept) > 50
    pairs_file = tmp_path / "pairs.tsv"
    pairs_file.write_text("".join(f"{a}\t{b}\t{s}\n" for (a, b), s in kept), "utf-8")
    ours = evaluate_similarity(model, [p for p, _ in kept], [s for _, s in kept], cache=False)
    words = evaluate_word_pairs(vocab, pairs_file, case_insensitive=False)
    assert ours.pairs == words.pairs == len(kept)
    assert ours.spearman == pytest.approx(words.spearman, abs=1e-5)
    assert ours.pearson == pytest.approx(words.pearson, abs=1e-5)
    assert ours.score == ours.spearman and list(ours.to_frame().columns) == [
        "pairs",
        "spearman",
        "pearson",
    ]


def test_similarity_refusals(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="2 pairs"):
        evaluate_similarity(HASHING, [("a", "b")], [1.0], cache=False)
    with pytest.raises(ConfigError, match="scores"):
        evaluate_similarity(HASHING, [("a", "b"), ("c", "d")], [1.0], cache=False)
    with pytest.raises(ConfigError, match="finite"):
        evaluate_similarity(HASHING, [("a", "b"), ("c", "d")], [1.0, math.nan], cache=False)
    bad = tmp_path / "bad.tsv"
    bad.write_text("# comment\ncat\tdog\t3.5\ncat dog\n", "utf-8")
    with pytest.raises(embedkit.errors.CorruptFileError, match=":3:"):
        read_word_pairs(bad)


# -- classification -------------------------------------------------------------------------------
def test_linear_probe_on_review_sentiment_with_hashing(reviews_csv: Path) -> None:
    task = reviews_sentiment(reviews_csv)
    result = task.evaluate("hashing?dim=512", cache=False)
    assert result.metric == "macro_f1" and result.score == result.macro_f1
    assert result.classes == ("negative", "positive") and result.folds == 5
    assert result.macro_f1 > 0.55  # always "positive" would score 0.46
    assert 0.0 <= result.macro_f1_std < 0.1 and result.run.texts == 706
    assert list(result.to_frame().columns)[:3] == ["accuracy", "accuracy_std", "macro_f1"]
    again = task.evaluate("hashing?dim=512", cache=False, seed=0)  # the default split
    other = task.evaluate("hashing?dim=512", cache=False, seed=1)
    assert again.macro_f1 == result.macro_f1 and other.macro_f1 != result.macro_f1
    by_hand = evaluate_classification(
        "hashing?dim=512", task.texts, task.labels, seed=1, metric="macro_f1", cache=False
    )
    assert other.macro_f1 == by_hand.macro_f1


def test_classification_refusals() -> None:
    texts = ["good", "bad", "fine", "awful"]
    with pytest.raises(ConfigError, match="labels"):
        evaluate_classification(HASHING, texts, ["a"], cache=False)
    with pytest.raises(ConfigError, match="2 classes"):
        evaluate_classification(HASHING, texts, ["a"] * 4, cache=False, folds=2)
    with pytest.raises(ConfigError, match="fewer than folds"):
        evaluate_classification(HASHING, texts, ["a", "b", "a", "a"], cache=False, folds=2)
    with pytest.raises(ConfigError, match="folds"):
        evaluate_classification(HASHING, texts, ["a", "b"] * 2, folds=1)
    with pytest.raises(ConfigError, match="labels must be"):
        evaluate_classification(HASHING, texts, [0.5, 1.5, 0.5, 1.5], folds=2)


# -- compare --------------------------------------------------------------------------------------
def test_compare_table_with_progress(capsys: pytest.CaptureFixture[str]) -> None:
    task = RetrievalTask("toy", tuple(QUERIES), tuple(CORPUS), tuple(map(frozenset, RELEVANT)))
    table = compare({"wide": HASHING, "narrow": "hashing?dim=4"}, task, progress=True)
    assert "compare" in capsys.readouterr().err  # the bar over the models
    assert isinstance(table, Comparison) and len(table) == 2 and table.metric == "mrr@10"
    assert table.best.model == "wide" and table["wide"].quality == 1.0
    assert table["narrow"].dim == 4 and table["narrow"].bytes_per_vector == 16
    frame = table.to_frame()
    assert list(frame.index) == ["wide", "narrow"]
    assert list(frame.columns)[:4] == ["mrr@10", "texts_per_s", "dim", "bytes_per_vector"]
    text = str(table)
    assert text.splitlines()[0] == "task: toy" and "cache hits" in text
    again = compare([HASHING], task)  # rows named by spec; the corpus now in the cache
    assert again.rows[0].cache_hits == 4 and again.rows[0].model.startswith("hashing")
    pairs = SimilarityTask("pairs", (("dog", "dog food"), ("tea", "coffee")), (9.0, 2.0))
    assert compare([HASHING], pairs).rows[0].quality == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="one config dict"):
        compare({"backend": "hashing"}, task)
    with pytest.raises(ConfigError, match="no models"):
        compare([], task)


@pytest.fixture(scope="session")
def review_comparison(
    reviews_csv: Path, minilm: embedkit.Embedder, review_cache: EmbeddingCache
) -> list[Comparison]:
    """hashing, Word2Vec trained on the reviews and MiniLM on the first 200 reviews."""
    from embedkit.evaluate import read_reviews

    text = [f"{s}. {t}" for _, s, t in read_reviews(reviews_csv)]
    models = {
        "hashing": "hashing?dim=512",
        "word2vec": embedkit.train_word2vec(text, dim=100, min_count=2, epochs=20),
        "MiniLM": minilm,
    }
    tasks = [reviews_retrieval(reviews_csv, limit=200), reviews_sentiment(reviews_csv, limit=200)]
    return [compare(models, task, cache=review_cache, progress=False) for task in tasks]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*truncated:embedkit.errors.EmbedkitWarning")
def test_minilm_leads_on_the_review_tasks(review_comparison: list[Comparison]) -> None:
    retrieval, sentiment = review_comparison
    print("\n" + "\n\n".join(map(str, review_comparison)))
    assert retrieval.best.model == "MiniLM", str(retrieval)
    minilm = retrieval["MiniLM"].result
    assert minilm.at("recall@10") > 0.5 and minilm.at("mrr@10") > 0.35  # 0.57, 0.40 measured
    assert retrieval["MiniLM"].quality > retrieval["hashing"].quality + 0.1
    # on 164 texts (25 negative) Word2Vec trained on all the reviews comes close (0.59 vs 0.60);
    # on the full set MiniLM leads (docs/evaluate.md); the lexical baseline is far behind
    assert sentiment["MiniLM"].quality > sentiment["hashing"].quality + 0.1
    assert sentiment["MiniLM"].cache_hits == sentiment["MiniLM"].texts  # retrieval embedded them
    assert sentiment["word2vec"].dim == 100 and sentiment["word2vec"].bytes_per_vector == 400


# -- the CLI verb ---------------------------------------------------------------------------------
def run_cli(argv: list[str]) -> int:
    from embedkit.cli.compare import add_parser

    parser = argparse.ArgumentParser(prog="embedkit")
    add_parser(parser.add_subparsers())
    args = parser.parse_args(argv)
    code: int = args.handler(args)
    return code


def test_cli_compare_prints_tables_and_json(
    reviews_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = ["--data", str(reviews_csv), "--limit", "100", "--no-progress"]
    assert run_cli(["compare", "small=hashing?dim=64", "hashing?dim=512", *data]) == 0
    out = capsys.readouterr().out
    assert "task: reviews: title -> review" in out and "task: reviews: sentiment" in out
    assert "small " in out and "hashing?dim=512" in out
    args = ["compare", "hashing?dim=64", *data, "--task", "retrieval", "--json", "--no-cache"]
    assert run_cli(args) == 0
    payload = json.loads(capsys.readouterr().out)
    assert [p["metric"] for p in payload] == ["mrr@10"]
    assert set(payload[0]["rows"][0]) >= {"quality", "texts_per_s", "dim", "cache_hits"}
    with pytest.raises(UsageError, match="same name"):
        run_cli(["compare", "a=hashing", "a=hashing?dim=8", *data])
    with pytest.raises(ConfigError, match="EMBEDKIT_REVIEWS_CSV"):
        run_cli(["compare", "hashing", "--no-cache"])


def test_cli_compare_word_pairs(capsys: pytest.CaptureFixture[str]) -> None:
    from gensim.test.utils import datapath

    assert run_cli(["compare", "hashing?dim=64", "--word-pairs", datapath("wordsim353.tsv")]) == 0
    assert "spearman" in capsys.readouterr().out


def test_cli_parse_model() -> None:
    from embedkit.cli.compare import parse_model

    assert parse_model("hashing?dim=64") == ("hashing?dim=64", "hashing?dim=64")
    assert parse_model("w2v=word2vec:build/w2v") == ("w2v", "word2vec:build/w2v")


def test_main_wires_compare_with_its_exit_codes(reviews_csv: Path) -> None:
    from embedkit.cli import main

    try:
        code = main(["compare", "--help"])
    except SystemExit as exc:  # argparse's --help
        code = int(exc.code or 0)
    assert code == 0
    assert main(["compare", "hashing", "--data", str(reviews_csv / "missing.csv")]) == 2


# -- lightness ------------------------------------------------------------------------------------
def test_imports_stay_light() -> None:
    code = (
        "import sys, embedkit, embedkit.evaluate, embedkit.integrations; "
        "print(sorted(m for m in ('sklearn', 'pandas', 'langchain_core', 'torch', 'gensim') "
        "if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
    done = subprocess.run(
        [sys.executable, "-c", "import sys, embedkit; print('embedkit.evaluate' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "False"


def test_word_level_evaluations_are_re_exported() -> None:
    import embedkit.evaluate as ev
    import embedkit.words.evaluate as words

    assert ev.evaluate_analogies is words.evaluate_analogies
    assert ev.evaluate_word_pairs is words.evaluate_word_pairs
    assert np.isfinite(ev.ranking_scores([[0]], [{0}]).mrr[0])
