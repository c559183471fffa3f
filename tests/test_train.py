"""Training Word2Vec (CBOW, skip-gram) and fastText on the real Lee corpus, and the corpus stream."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import embedkit
from embedkit import _folder, train_fasttext, train_word2vec
from embedkit.backends.fasttext import FastTextEmbedder
from embedkit.backends.gensim import Word2VecEmbedder
from embedkit.errors import ConfigError, InvalidInputError, OutOfVocabularyError
from embedkit.words.corpus import TokenizedCorpus
from embedkit.words.tokenize import register_tokenizer, simple_tokenize
from embedkit.words.vectors import WordVectors

RELATED = [("police", "officers"), ("israeli", "palestinian"), ("australia", "australian")]
UNRELATED = [("police", "cricket"), ("israeli", "wickets"), ("australia", "arafat")]


@pytest.fixture(scope="module")
def cbow(lee_corpus: Path) -> Word2VecEmbedder:
    return train_word2vec(lee_corpus, sg=0, dim=50, min_count=2, epochs=20, seed=1)


@pytest.fixture(scope="module")
def skipgram(lee_corpus: Path) -> Word2VecEmbedder:
    return train_word2vec(lee_corpus, sg=1, dim=50, min_count=2, epochs=10, seed=1)


@pytest.fixture(scope="module")
def fasttext_lee(lee_corpus: Path) -> FastTextEmbedder:
    return train_fasttext(lee_corpus, sg=0, dim=50, min_count=2, epochs=5, bucket=50_000)


def _margin(words: WordVectors) -> float:
    related = np.mean([words.similarity(a, b) for a, b in RELATED])
    unrelated = np.mean([words.similarity(a, b) for a, b in UNRELATED])
    return float(related - unrelated)


# -- the corpus stream --------------------------------------------------------------------
def test_corpus_file_and_list_give_the_same_tokens_on_every_pass(lee_corpus: Path) -> None:
    texts = lee_corpus.read_text("utf-8").splitlines()
    from_file = TokenizedCorpus(lee_corpus)
    from_list = TokenizedCorpus(texts)
    first = list(from_file)
    assert first == list(from_file) == list(from_list)
    assert first[0] == simple_tokenize(texts[0])


def test_corpus_refuses_one_shot_iterators_and_names_bad_rows(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="one-shot iterator"):
        TokenizedCorpus(t for t in ["a b", "c d"])
    with pytest.raises(ConfigError, match="does not exist"):
        TokenizedCorpus(tmp_path / "missing.txt")
    with pytest.raises(InvalidInputError) as info:
        list(TokenizedCorpus(["fine text", None, "more"]))  # type: ignore[list-item]
    assert info.value.positions == [1]


def test_corpus_splits_long_texts() -> None:
    pieces = list(TokenizedCorpus(["a b c d e", "", "f"], max_tokens=2))
    assert pieces == [["a", "b"], ["c", "d"], ["e"], ["f"]]


def test_bad_options_are_config_errors(lee_corpus: Path) -> None:
    with pytest.raises(ConfigError, match="sg must be 0"):
        train_word2vec(lee_corpus, sg=2)
    with pytest.raises(ConfigError, match="min_count"):
        train_word2vec(["one two three"], min_count=5)
    with pytest.raises(ConfigError, match="dim"):
        train_word2vec(lee_corpus, dim=0)
    with pytest.raises(ConfigError, match="minn"):
        train_fasttext(lee_corpus, minn=5, maxn=3)
    with pytest.raises(ConfigError, match="no tokens"):
        train_fasttext(["", "!!"])


# -- Word2Vec -----------------------------------------------------------------------------
def test_cbow_and_skipgram_learn_related_words(
    cbow: Word2VecEmbedder, skipgram: Word2VecEmbedder
) -> None:
    for model in (cbow, skipgram):
        assert model.spec.startswith("word2vec:sha256:")
        assert "tokenizer=words" in model.spec
        assert _margin(model.words) > 0.2, model
    near = [n.word for n in skipgram.words.most_similar("police", 10)]
    assert {"officers", "officials"} <= set(near), near
    counts = cbow.words.counts
    assert counts is not None and np.all(np.diff(counts) <= 0)  # most frequent first
    assert cbow.words.words[0] == "the"


def test_training_is_reproducible_with_a_seed(lee_corpus: Path) -> None:
    texts = lee_corpus.read_text("utf-8").splitlines()[:100]
    a = train_word2vec(texts, dim=20, min_count=2, epochs=2, seed=7)
    b = train_word2vec(texts, dim=20, min_count=2, epochs=2, seed=7)
    c = train_word2vec(texts, dim=20, min_count=2, epochs=2, seed=8)
    np.testing.assert_array_equal(a.words.vectors, b.words.vectors)
    assert a.spec == b.spec != c.spec
    assert not np.allclose(a.words.vectors, c.words.vectors)


def test_word2vec_reports_oov_words_clearly(cbow: Word2VecEmbedder) -> None:
    report = cbow.embed_report(["the governmnet said", "police said"])
    assert report.oov == [["governmnet"], []]
    assert report.oov_rate == pytest.approx(1 / 5)
    with pytest.raises(OutOfVocabularyError, match="governmnet"):
        cbow.words.vector("governmnet")
    strict = Word2VecEmbedder.from_words(cbow.words, on_oov="error")
    with pytest.raises(OutOfVocabularyError) as info:
        strict.embed(["police said", "the governmnet said"])
    assert info.value.positions == [1]


def test_trained_word2vec_saves_and_loads_like_any_other(
    cbow: Word2VecEmbedder, tmp_path: Path
) -> None:
    folder = cbow.save(tmp_path / "lee-cbow")
    again = embedkit.load(f"word2vec:{folder}")
    texts = ["Police said the fire was under control", "Israeli tanks"]
    np.testing.assert_array_equal(again.embed(texts), cbow.embed(texts))
    assert isinstance(again, Word2VecEmbedder)
    assert "tokenizer=words" in again.spec


def test_sif_pooling_is_fitted_on_the_training_corpus(lee_corpus: Path) -> None:
    texts = lee_corpus.read_text("utf-8").splitlines()[:80]
    model = train_word2vec(texts, dim=20, min_count=2, epochs=2, pooling="sif")
    assert model.pooling.fitted and model.pooling.component is not None
    options = model.spec.partition("?")[2]
    assert "pooling=sif" in options and "sha256:" in options  # the fitted weights are named
    vectors = model.embed(["the police", "zzzz qqqq"])
    assert np.isfinite(vectors).all() and not vectors[1].any()


# -- fastText -----------------------------------------------------------------------------
def test_fasttext_gives_misspelled_words_sensible_neighbours(
    fasttext_lee: FastTextEmbedder,
) -> None:
    words = fasttext_lee.words
    assert "governmnet" not in words and "australain" not in words
    near = {w: [n.word for n in words.most_similar(w, 5)] for w in ("governmnet", "australain")}
    assert {"government", "governments"} & set(near["governmnet"]), near
    assert {"australia", "australian", "australians"} & set(near["australain"]), near
    report = fasttext_lee.embed_report(["the governmnet said"])
    assert report.oov == [["governmnet"]]  # reported, yet it has a vector
    vector = fasttext_lee.embed(["governmnet"])[0]
    np.testing.assert_allclose(vector, fasttext_lee.model.get_word_vector("governmnet"), rtol=1e-6)


def test_fasttext_saves_with_its_subword_model(
    fasttext_lee: FastTextEmbedder, tmp_path: Path
) -> None:
    folder = fasttext_lee.save(tmp_path / "lee-ft")
    with _folder.read(folder, "words") as snapshot:
        assert "model.bin" in snapshot  # listed with its sha256, saved in the same write
    again = embedkit.load(f"fasttext:{folder}")
    assert isinstance(again, FastTextEmbedder) and again.words.subword is not None
    texts = ["the governmnet and the polise"]
    np.testing.assert_allclose(again.embed(texts), fasttext_lee.embed(texts), rtol=1e-6)


def test_fasttext_skipgram_trains_and_is_reproducible(lee_corpus: Path) -> None:
    texts = lee_corpus.read_text("utf-8").splitlines()[:60]
    a, b, c = (
        train_fasttext(texts, sg=1, dim=16, min_count=2, epochs=2, bucket=20_000, seed=seed)
        for seed in (3, 3, 4)
    )
    np.testing.assert_array_equal(a.words.vectors, b.words.vectors)
    assert not np.allclose(a.words.vectors, c.words.vectors)
    args = a.model.f.getArgs()
    assert (args.minn, args.maxn, args.bucket, args.dim) == (3, 6, 20_000, 16)
    plain = train_fasttext(texts, dim=16, min_count=2, epochs=1, maxn=0)
    assert plain.words.subword is None
    assert plain.embed_report(["zzqx"]).oov == [["zzqx"]]


# -- vector arithmetic on trained vectors -------------------------------------------------
@pytest.mark.slow
def test_king_minus_man_plus_woman_on_trained_vectors() -> None:
    from gensim.test.utils import datapath

    model = train_word2vec(datapath("head500.noblanks.cor"), sg=0, dim=100, epochs=10, seed=1)
    answers = [n.word for n in model.words.analogy("man", "king", "woman", 10)]
    assert "queen" in answers, answers


# -- custom tokenizers --------------------------------------------------------------------
class _Bigrams:
    """Character bigrams: a custom tokenizer with a name."""

    name = "test-char-bigrams"

    def __call__(self, text: str) -> list[str]:
        s = text.lower().replace(" ", "")
        return [s[i : i + 2] for i in range(len(s) - 1)]


def test_a_custom_tokenizer_must_be_registered_and_then_round_trips(tmp_path: Path) -> None:
    texts = ["the cat sat", "the hat sat", "a cat and a hat"] * 4
    with pytest.raises(ConfigError, match="register_tokenizer"):
        train_word2vec(texts, tokenizer=_Bigrams(), min_count=1, dim=8, epochs=1)
    register_tokenizer("test-char-bigrams", _Bigrams)
    with pytest.raises(ConfigError, match="built-in"):
        register_tokenizer("words", _Bigrams)
    model = train_word2vec(texts, tokenizer=_Bigrams(), min_count=1, dim=8, epochs=1)
    assert "at" in model.words and "tokenizer=test-char-bigrams" in model.spec
    again = embedkit.load(f"word2vec:{model.save(tmp_path / 'bigrams')}")
    np.testing.assert_array_equal(again.embed(["a cat"]), model.embed(["a cat"]))


REPRO_SCRIPT = """
from gensim.test.utils import datapath
from embedkit import train_fasttext, train_glove, train_word2vec
texts = open(datapath("lee_background.cor"), encoding="utf-8").read().splitlines()[:60]
models = (
    train_word2vec(texts, dim=16, min_count=2, epochs=2),
    train_fasttext(texts, dim=16, min_count=2, epochs=2, bucket=20_000),
    train_glove(texts, dim=16, min_count=2, epochs=2),
)
print(" ".join(m.words.content_id() for m in models))
"""


@pytest.mark.slow
def test_training_is_reproducible_across_processes() -> None:
    import os
    import subprocess
    import sys

    outputs = {
        subprocess.run(
            [sys.executable, "-c", REPRO_SCRIPT],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert len(outputs) == 1 and outputs.pop().count("sha256:") == 3


def test_trained_models_say_how_to_load_them(
    cbow: Word2VecEmbedder, fasttext_lee: FastTextEmbedder, tmp_path: Path
) -> None:
    for model in (cbow, fasttext_lee):
        backend = model.backend
        with pytest.raises(ConfigError, match=r"in-memory vectors.*save them first") as err:
            embedkit.load(model.spec)
        assert f"load '{backend}:<folder>'" in str(err.value)
        folder = model.save(tmp_path / backend)
        assert (
            embedkit.load(f"{backend}:{folder}").spec
            == f"{backend}:{folder}?" + (model.spec.partition("?")[2])
        )
