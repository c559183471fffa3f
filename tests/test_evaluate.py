"""Analogy and word-pair evaluations: numbers equal to gensim's on the same vectors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from embedkit.errors import ConfigError, CorruptFileError, EmbedkitWarning
from embedkit.words.evaluate import evaluate_analogies, evaluate_word_pairs, pearson, spearman
from embedkit.words.vectors import WordVectors
from test_words import lee_word2vec, lee_words

REPO = Path(__file__).resolve().parents[1]


def datapath(name: str) -> str:
    from gensim.test.utils import datapath as gensim_datapath

    return str(gensim_datapath(name))


def gensim_counts(sections: list[dict[str, Any]]) -> list[tuple[str, int, int]]:
    return [(s["section"], len(s["correct"]), len(s["incorrect"])) for s in sections[:-1]]


@pytest.mark.parametrize(
    ("restrict", "case_insensitive", "dummy"),
    [(300_000, True, False), (2_000, True, True), (500, False, False)],
)
def test_analogies_equal_gensim(restrict: int, case_insensitive: bool, dummy: bool) -> None:
    kv = lee_word2vec().wv
    path = datapath("questions-words.txt")
    score, sections = kv.evaluate_word_analogies(
        path, restrict_vocab=restrict, case_insensitive=case_insensitive, dummy4unknown=dummy
    )
    ours = evaluate_analogies(
        lee_words(),
        path,
        limit=restrict,
        case_insensitive=case_insensitive,
        dummy4unknown=dummy,
    )
    assert ours.accuracy == score
    assert [(s.name, s.correct, s.incorrect) for s in ours.sections] == gensim_counts(sections)
    assert ours.questions == 19544 and ours.correct == len(sections[-1]["correct"])
    assert ours.malformed == []


def test_analogy_accuracy_on_vectors_built_to_solve_them(tmp_path: Path) -> None:
    # country/capital pairs share one offset, so every question has a right answer;
    # "Paris" (upper case) must map onto "paris", the first case variant wins.
    rng = np.random.default_rng(0)
    offset = rng.standard_normal(16) * 3
    countries = ["france", "italy", "spain", "japan"]
    capitals = ["paris", "rome", "madrid", "tokyo"]
    base = {c: rng.standard_normal(16) for c in countries}
    words = countries + capitals + ["Paris", "noise"]
    vectors = [base[c] for c in countries] + [base[c] + offset for c in countries]
    vectors += [rng.standard_normal(16), rng.standard_normal(16)]
    w = WordVectors(words, np.asarray(vectors))
    lines = [": capital"] + [
        f"{countries[i]} {capitals[i]} {countries[j]} {capitals[j]}"
        for i in range(4)
        for j in range(4)
        if i != j
    ]
    lines += [": unknown", "france paris germany berlin", "bad line"]
    path = tmp_path / "questions.txt"
    path.write_text("\n".join(lines) + "\n")
    with pytest.warns(EmbedkitWarning, match=r"skipped 1 malformed lines.*lines 16\)"):
        result = evaluate_analogies(w, path)
    assert result.malformed == [16]  # "bad line", counted from 1
    assert result.accuracy == 1.0 and result.correct == 12
    assert result.oov == 1 and result.questions == 13
    assert result.oov_ratio == pytest.approx(100 / 13)
    assert [s.name for s in result.sections] == ["capital", "unknown"]
    assert result.sections[1].accuracy == 0.0
    with pytest.warns(EmbedkitWarning):
        assert w.evaluate_analogies(path) == result


def test_a_best_answer_that_is_a_case_variant_of_an_input_is_passed_over(tmp_path: Path) -> None:
    """gensim skips an answer whose upper-cased form is an input word and takes the next
    of its top 5: the best answer alone (what embedkit asks for first) is not enough."""
    from gensim.models import KeyedVectors

    rng = np.random.default_rng(1)
    offset = rng.standard_normal(16) * 3
    countries = ["france", "italy", "spain", "japan"]
    capitals = ["paris", "rome", "madrid", "tokyo"]
    base = {c: rng.standard_normal(16) for c in countries}
    words = [*countries, "Italy", "Japan", *capitals]
    # "Italy" / "Japan" lie exactly where the capital of italy / japan should be
    vectors = [base[c] for c in countries] + [base["italy"] + offset, base["japan"] + offset]
    vectors += [base[c] + offset + 0.3 * rng.standard_normal(16) for c in countries]
    lines = [": capital"] + [
        f"{countries[i]} {capitals[i]} {countries[j]} {capitals[j]}"
        for i in range(4)
        for j in range(4)
        if i != j
    ]
    path = tmp_path / "questions.txt"
    path.write_text("\n".join(lines) + "\n")
    kv = KeyedVectors(16)
    kv.add_vectors(words, np.asarray(vectors, dtype=np.float32))
    score, sections = kv.evaluate_word_analogies(str(path))
    w = WordVectors(words, np.asarray(vectors))
    top = w.analogy_batch([("france", "paris", "italy"), ("spain", "madrid", "japan")], 1)
    assert [t[0].word for t in top] == ["Italy", "Japan"]  # the best answers: case variants
    ours = evaluate_analogies(w, path)
    assert ours.accuracy == score == 1.0
    assert [(s.name, s.correct, s.incorrect) for s in ours.sections] == gensim_counts(sections)


def test_analogy_file_errors(tmp_path: Path) -> None:
    path = tmp_path / "q.txt"
    path.write_text("a b c d\n")
    with pytest.raises(CorruptFileError, match="section header"):
        evaluate_analogies(lee_words(), path)
    path.write_text(": empty\n")
    with pytest.raises(CorruptFileError, match="no analogy questions"):
        evaluate_analogies(lee_words(), path)
    with pytest.raises(ConfigError):
        evaluate_analogies(lee_words(), datapath("questions-words.txt"), limit=0)


@pytest.mark.parametrize("name", ["wordsim353.tsv", "simlex999.txt"])
@pytest.mark.parametrize("dummy", [False, True])
def test_word_pairs_equal_gensim(name: str, dummy: bool) -> None:
    kv = lee_word2vec().wv
    (p, _), (rho, _), oov = kv.evaluate_word_pairs(datapath(name), dummy4unknown=dummy)
    ours = evaluate_word_pairs(lee_words(), datapath(name), dummy4unknown=dummy)
    assert ours.pearson == pytest.approx(p, abs=1e-6)
    assert ours.spearman == pytest.approx(rho, abs=1e-6)
    assert ours.oov_ratio == pytest.approx(oov, abs=1e-9)
    total = 353 if name == "wordsim353.tsv" else 999
    assert ours.pairs + (0 if dummy else ours.oov) == total
    assert ours.malformed == []


def test_word_pair_counts_and_errors(tmp_path: Path) -> None:
    result = evaluate_word_pairs(lee_words(), datapath("wordsim353.tsv"))
    assert result.pairs + result.oov == 353
    assert lee_words().evaluate_word_pairs(datapath("wordsim353.tsv")) == result
    path = tmp_path / "pairs.tsv"
    path.write_text("# comment\nqqq\tzzz\t1.0\n")
    with pytest.raises(CorruptFileError, match="no usable word pair"):
        evaluate_word_pairs(lee_words(), path)


def test_malformed_lines_are_counted_and_reported(tmp_path: Path) -> None:
    words = lee_words()
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text(
        "# comment\npolice\tfire\t5.0\n\nonly two\tfields\npolice\tgovernment\tnot-a-number\n"
        "fire\twater\t7.5\npolice\tsaid\t1.0\textra\n"
    )
    with pytest.warns(EmbedkitWarning, match=r"skipped 3 malformed lines.*lines 4, 5, 7\)"):
        result = evaluate_word_pairs(words, pairs)
    assert result.malformed == [4, 5, 7] and result.pairs == 2 and result.oov == 0
    questions = tmp_path / "questions.txt"
    questions.write_text(": s\nman king woman\n\nman king woman queen\na b c d e\n")
    with pytest.warns(EmbedkitWarning, match="2 malformed"):
        analogies = evaluate_analogies(words, questions)
    assert analogies.malformed == [2, 5] and analogies.questions == 1
    questions.write_bytes(b": s\nman king woman queen\n\xff\xfe x y z\n")
    with pytest.raises(CorruptFileError, match="line 3 is not UTF-8"):
        evaluate_analogies(words, questions)


def test_correlations_equal_scipy_with_ties() -> None:
    from scipy import stats

    rng = np.random.default_rng(1)
    x = rng.integers(0, 5, 200).astype(np.float64)
    y = x + rng.integers(0, 3, 200)
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0], abs=1e-12)
    assert pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0], abs=1e-12)
    assert np.isnan(pearson(np.ones(5), np.arange(5.0)))


@pytest.mark.slow
def test_benchmark_quick_runs_and_prints_a_table() -> None:
    out = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_words.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    for part in ("analogies", "pooling", "glove load", "ratio"):
        assert part in out.stdout
