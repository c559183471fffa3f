"""StaticEmbedder: sentence vectors from word vectors, OOV policy and reports, spec, saving."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import embedkit
from embedkit import _folder
from embedkit.backends.gensim import GloVeEmbedder, Word2VecEmbedder
from embedkit.errors import ConfigError, InvalidInputError, OutOfVocabularyError
from embedkit.words.embedder import StaticEmbedder
from embedkit.words.tokenize import simple_tokenize
from embedkit.words.vectors import WordVectors
from test_words import lee_word2vec, lee_words


def lee_path() -> str:
    from gensim.test.utils import datapath

    return str(datapath("lee_background.cor"))


@pytest.fixture(scope="module")
def lee_texts() -> list[str]:
    with open(lee_path(), encoding="utf-8") as fh:
        return [line.strip() for line in fh if line.strip()]


def test_mean_vectors_equal_gensim_get_mean_vector(lee_texts: list[str]) -> None:
    emb = Word2VecEmbedder.from_words(lee_words())
    kv: Any = lee_word2vec().wv
    texts = lee_texts[:40]
    out = emb.embed(texts)
    assert out.shape == (40, 50) and out.dtype == np.float32
    for text, row in zip(texts, out, strict=True):
        tokens = [t for t in simple_tokenize(text) if t in kv]
        np.testing.assert_allclose(row, kv.get_mean_vector(tokens, pre_normalize=False), atol=1e-5)
    assert isinstance(emb, embedkit.Embedder)
    assert emb.embed("one text").shape == (1, 50)


def test_oov_policies_and_reports() -> None:
    words = lee_words()
    texts = ["The police said xqzv", "xqzv wvut", "police"]
    skip = Word2VecEmbedder.from_words(words, on_oov="skip")
    report = skip.embed_report(texts)
    assert report.oov == [["xqzv"], ["xqzv", "wvut"], []]
    assert report.n_tokens.tolist() == [4, 2, 1] and report.oov_rate == pytest.approx(3 / 7)
    assert np.isfinite(report.vectors).all()
    np.testing.assert_array_equal(report.vectors[1], 0.0)  # all OOV: zero, never NaN
    police = words.vector("police")
    zero = Word2VecEmbedder.from_words(words, on_oov="zero").embed(["police xqzv"])[0]
    np.testing.assert_allclose(zero, police / 2, atol=1e-6)
    error = Word2VecEmbedder.from_words(words, on_oov="error")
    with pytest.raises(OutOfVocabularyError) as err:
        error.embed(texts)
    assert err.value.positions == [0, 1]
    np.testing.assert_allclose(error.embed(["police"])[0], police, atol=1e-6)


def test_validation_and_option_errors() -> None:
    emb = Word2VecEmbedder.from_words(lee_words())
    with pytest.raises(InvalidInputError) as err:
        emb.embed(["fine", "", None])  # type: ignore[list-item]
    assert err.value.positions == [1, 2]
    with pytest.raises(ConfigError):
        Word2VecEmbedder.from_words(lee_words(), pooling="max")
    with pytest.raises(ConfigError):
        Word2VecEmbedder.from_words(lee_words(), on_oov="ignore")
    with pytest.raises(ConfigError):
        Word2VecEmbedder.from_words(lee_words(), tokenizer="bpe")
    with pytest.raises(ConfigError):
        StaticEmbedder(np.zeros((2, 2)), source="x")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="fit it on a corpus"):
        Word2VecEmbedder.from_words(lee_words(), pooling="idf").embed(["police"])


def test_spec_names_everything_that_changes_vectors(lee_texts: list[str]) -> None:
    words = lee_words()
    mean = Word2VecEmbedder.from_words(words)
    assert mean.spec == f"word2vec:{words.content_id()}?on_oov=skip&pooling=mean&tokenizer=words"
    cased = Word2VecEmbedder.from_words(words, tokenizer="words-cased")
    assert cased.spec != mean.spec
    assert not np.allclose(cased.embed(["Police"]), mean.embed(["Police"]))
    a = Word2VecEmbedder.from_words(words, pooling="sif").fit_pooling(lee_texts[:100])
    b = Word2VecEmbedder.from_words(words, pooling="sif").fit_pooling(lee_texts[100:])
    assert a.spec != b.spec and "fit_corpus=sha256:" in a.spec
    assert not np.allclose(a.embed(["the police"]), b.embed(["the police"]))
    assert repr(mean).startswith("<Word2VecEmbedder word2vec:sha256:")


def test_fit_corpus_option_from_a_spec(tmp_path: Path) -> None:
    folder = Word2VecEmbedder.from_words(lee_words()).save(tmp_path / "w2v")
    emb = embedkit.load(f"word2vec:{folder}?pooling=idf&fit_corpus={lee_path()}")
    assert isinstance(emb, Word2VecEmbedder) and f"fit_corpus={lee_path()}" in emb.spec
    again = embedkit.load(emb.spec)
    np.testing.assert_array_equal(again.embed(["police fire"]), emb.embed(["police fire"]))
    manual = Word2VecEmbedder(str(folder), pooling="idf").fit_pooling(lee_path())
    np.testing.assert_allclose(manual.embed(["police fire"]), emb.embed(["police fire"]))


@pytest.mark.parametrize("method", ["mean", "idf", "sif"])
def test_save_and_reload_keep_pooling(tmp_path: Path, lee_texts: list[str], method: str) -> None:
    emb = GloVeEmbedder.from_words(lee_words(), pooling=method, on_oov="zero")
    if method != "mean":
        emb.fit_pooling(lee_texts)
    folder = emb.save(tmp_path / method)
    back = embedkit.load(f"glove:{folder}")
    assert isinstance(back, GloVeEmbedder)
    assert back.pooling.method == method and back.on_oov == "zero"
    texts = [*lee_texts[:20], "xqzv"]
    np.testing.assert_allclose(back.embed(texts), emb.embed(texts), atol=1e-6)
    override = embedkit.load(f"glove:{folder}?pooling=mean")
    assert isinstance(override, GloVeEmbedder) and override.pooling.method == "mean"


def test_king_man_woman_on_vectors_behind_an_embedder() -> None:
    vectors = np.array([[0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0.1, 0.1, 0.1]])
    words = WordVectors(["man", "woman", "king", "queen", "the"], vectors)
    emb = GloVeEmbedder.from_words(words)
    assert emb.words.analogy("man", "king", "woman", k=1)[0].word == "queen"
    sims = embedkit.cosine_similarity(emb.embed(["the king"]), emb.embed(["the queen", "man"]))
    assert sims.shape == (1, 2) and sims[0, 0] > 0.4


def test_embed_tokens_skips_tokenisation() -> None:
    emb = Word2VecEmbedder.from_words(lee_words())
    np.testing.assert_array_equal(
        emb.embed_tokens([["the", "police"], []]),
        np.vstack([emb.embed(["The police"]), np.zeros((1, 50), np.float32)]),
    )


# -- specs of file-backed embedders ---------------------------------------------------------
def datapath(name: str) -> str:
    from gensim.test.utils import datapath as gensim_datapath

    return str(gensim_datapath(name))


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Vector files and native folders (idf fitted on a corpus file, sif fitted in memory)."""
    folder = tmp_path_factory.mktemp("specs")
    text = folder / "lee.txt"
    lee_word2vec().wv.save_word2vec_format(str(text))
    idf = Word2VecEmbedder(str(text), pooling="idf", fit_corpus=lee_path()).save(folder / "idf")
    with open(lee_path(), encoding="utf-8") as fh:
        sif = Word2VecEmbedder.from_words(lee_words(), pooling="sif").fit_pooling(list(fh))
    return {
        "text": str(text),
        "idf": str(idf),
        "sif": str(sif.save(folder / "sif")),
        "glove": datapath("test_glove.txt"),
        "lee": lee_path(),
        "head": datapath("head500.noblanks.cor"),
    }


SPECS = [
    "word2vec:{text}",
    "word2vec:{text}?limit=40",
    "word2vec:{text}?limit=40&on_oov=zero&tokenizer=words-cased",
    "word2vec:{text}?pooling=idf&fit_corpus={lee}",
    "word2vec:{text}?pooling=idf&fit_corpus={head}",
    "word2vec:{text}?pooling=sif&fit_corpus={lee}&limit=200",
    "word2vec:{idf}",
    "word2vec:{idf}?mmap=true",
    "word2vec:{idf}?fit_corpus={head}",
    "word2vec:{idf}?tokenizer=words-cased",
    "word2vec:{idf}?limit=300",
    "word2vec:{idf}?pooling=mean",
    "word2vec:{sif}",
    "glove:{glove}",
    "glove:{glove}?limit=10",
    "glove:{sif}",
]
SPEC_TEXTS = ["The police said the fire was contained", "Australia's government", "qwxz"]


@pytest.mark.parametrize("template", SPECS)
def test_load_of_the_spec_rebuilds_the_embedder(paths: dict[str, str], template: str) -> None:
    emb = embedkit.load(template.format(**paths))
    again = embedkit.load(emb.spec)
    assert type(again) is type(emb) and again.spec == emb.spec
    np.testing.assert_allclose(again.embed(SPEC_TEXTS), emb.embed(SPEC_TEXTS), atol=1e-6)


def test_embedders_with_different_vectors_have_different_specs(paths: dict[str, str]) -> None:
    by_spec: dict[str, list[np.ndarray]] = {}
    for template in SPECS:
        emb = embedkit.load(template.format(**paths))
        by_spec.setdefault(emb.spec, []).append(emb.embed(SPEC_TEXTS))
    for spec, outputs in by_spec.items():
        for out in outputs[1:]:
            np.testing.assert_allclose(out, outputs[0], atol=1e-6, err_msg=spec)
    assert len(by_spec) == len(SPECS) - 1  # only ?mmap=true (same vectors) shares a spec


def test_saved_weights_are_refitted_when_what_they_depend_on_changes(
    paths: dict[str, str],
) -> None:
    folder = paths["idf"]
    kept = Word2VecEmbedder(folder)
    assert kept.pooling.method == "idf" and f"fit_corpus={paths['lee']}" in kept.spec
    for options, corpus in (
        ({"tokenizer": "words-cased"}, paths["lee"]),
        ({"fit_corpus": paths["head"]}, paths["head"]),
        ({"limit": 300}, paths["lee"]),
    ):
        emb = Word2VecEmbedder(folder, **options)  # type: ignore[arg-type]
        manual = Word2VecEmbedder(
            folder,
            pooling="idf",
            tokenizer=str(options.get("tokenizer", "words")),
            limit=options.get("limit"),  # type: ignore[arg-type]
        ).fit_pooling(corpus)
        np.testing.assert_allclose(emb.embed(SPEC_TEXTS), manual.embed(SPEC_TEXTS), atol=1e-6)
        assert f"fit_corpus={corpus}" in emb.spec
    with pytest.raises(ConfigError, match="limit=300: give fit_corpus"):
        Word2VecEmbedder(paths["sif"], limit=300)  # in-memory weights cannot be refitted
    Word2VecEmbedder(paths["sif"], limit=300, pooling="mean")


# -- identity: every spec loads, or load says why not ------------------------------------------
def test_specs_of_in_memory_vectors_say_to_save_them_first(tmp_path: Path) -> None:
    words = lee_words()
    for emb in (Word2VecEmbedder.from_words(words), GloVeEmbedder.from_words(words)):
        backend = emb.backend
        assert emb.spec.startswith(f"{backend}:sha256:")
        with pytest.raises(ConfigError) as err:
            embedkit.load(emb.spec)
        message = str(err.value)
        assert "in-memory vectors" in message
        assert (
            f"save them first with embedder.save(folder) and load '{backend}:<folder>'" in message
        )
        folder = emb.save(tmp_path / backend)
        again = embedkit.load(f"{backend}:{folder}")
        assert embedkit.load(again.spec).spec == again.spec  # the saved folder's spec loads
        np.testing.assert_array_equal(again.embed(SPEC_TEXTS), emb.embed(SPEC_TEXTS))


def test_weights_fitted_in_memory_on_a_file_spec_say_where_they_are(paths: dict[str, str]) -> None:
    emb = Word2VecEmbedder(paths["text"], pooling="sif").fit_pooling(["the police said", "fire"])
    assert "fit_corpus=sha256:" in emb.spec
    with pytest.raises(ConfigError, match=r"fitted in memory.*embedder\.save\(folder\)"):
        embedkit.load(emb.spec)


def test_save_is_one_folder_write_listing_every_file(tmp_path: Path, lee_texts: list[str]) -> None:
    emb = Word2VecEmbedder.from_words(lee_words(), pooling="sif", on_oov="zero")
    emb.fit_pooling(lee_texts[:50])
    folder = emb.save(tmp_path / "sif")
    with _folder.read(folder, "words") as snapshot:
        listed = sorted(snapshot.sizes)
        settings = snapshot.meta["embedder"]
    assert listed == [
        "counts.npy",
        "pooling_component.npy",
        "pooling_weights.npy",
        "vectors.npy",
        "vocab.json",
    ]
    assert settings["pooling"] == "sif" and settings["on_oov"] == "zero"
    assert settings["fit_corpus"].startswith("sha256:")
    data = [p for p in folder.iterdir() if p.name.startswith("data-")]
    assert len(data) == 1 and sorted(p.name for p in data[0].iterdir()) == listed
    assert not (folder / "embedder.json").exists()
    mean = Word2VecEmbedder.from_words(lee_words()).save(folder)  # replaces it whole
    with _folder.read(mean, "words") as snapshot:
        assert "pooling_weights.npy" not in snapshot
    assert Word2VecEmbedder(str(folder)).pooling.method == "mean"
