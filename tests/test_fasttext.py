"""The ``fasttext:<path>`` backend on gensim's real fastText files, and broken-build detection."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path
from typing import Any

import fasttext  # noqa: F401  (the fasttext extra: fail, never skip, when it is missing)
import numpy as np
import pytest

import embedkit
from embedkit import _folder
from embedkit.backends import fasttext as ft_backend
from embedkit.backends.fasttext import FastTextEmbedder, broken_build, fasttext_module
from embedkit.errors import BackendError, ConfigError, CorruptFileError, MissingDependencyError


def _data(name: str) -> str:
    from gensim.test.utils import datapath

    return str(datapath(name))


@pytest.fixture(scope="module")
def lee_bin() -> FastTextEmbedder:
    model = embedkit.load("fasttext:" + _data("lee_fasttext_new.bin"))
    assert isinstance(model, FastTextEmbedder)
    return model


# -- known-broken builds ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("dist", "version", "numpy", "broken"),
    [
        ("fasttext-wheel", "0.9.2", "2.4.6", True),
        ("fasttext-wheel", "0.9.1", "2.0.0", True),
        ("fasttext-wheel", "0.9.2.post1", "2.0.0rc1", True),
        ("fasttext-wheel", "0.9.2", "1.26.4", False),
        ("fasttext", "0.9.3", "2.1.0", True),
        ("fasttext", "0.9.4", "2.1.0", False),
        ("fasttext-numpy2", "0.10.4", "2.4.6", False),
        ("fasttext-numpy2", "0.9.2", "2.4.6", False),
    ],
)
def test_broken_build_table(dist: str, version: str, numpy: str, broken: bool) -> None:
    reason = broken_build(dist, version, numpy)
    assert (reason is not None) == broken
    if reason:
        assert dist in reason and "embedkit[fasttext]" in reason


def test_installed_build_is_accepted() -> None:
    assert fasttext_module().__name__ == "fasttext"


def test_a_broken_build_is_refused_before_any_number_is_returned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        metadata, "packages_distributions", lambda: {"fasttext": ["fasttext-wheel"]}
    )
    monkeypatch.setattr(metadata, "version", lambda dist: "0.9.2")
    monkeypatch.setattr(np, "__version__", "2.4.6")
    with pytest.raises(MissingDependencyError, match=r"fasttext-wheel 0\.9\.2"):
        embedkit.load("fasttext:" + _data("lee_fasttext_new.bin"))


class _WrongNumbers:
    """A model whose get_word_vector disagrees with its own rows (a broken build's symptom)."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def get_word_vector(self, word: str) -> Any:
        return self.real.get_word_vector(word) * 0.5


def test_the_behavioural_probe_catches_wrong_vectors(
    monkeypatch: pytest.MonkeyPatch, lee_bin: FastTextEmbedder
) -> None:
    real_module = fasttext_module()

    class Module:
        @staticmethod
        def load_model(path: str) -> Any:
            return _WrongNumbers(real_module.load_model(path))

    monkeypatch.setattr(ft_backend, "fasttext_module", lambda: Module)
    with pytest.raises(BackendError, match="wrong vectors"):
        FastTextEmbedder(_data("lee_fasttext_new.bin"))


# -- real files ---------------------------------------------------------------------------
def test_bin_model_gives_oov_words_vectors_from_subwords(lee_bin: FastTextEmbedder) -> None:
    words = lee_bin.words
    assert lee_bin.dim == 10 and len(words) == 1763 and words.subword is not None
    assert "governmnet" not in words
    model = lee_bin.model
    np.testing.assert_allclose(words.vector("governmnet"), model.get_word_vector("governmnet"))
    np.testing.assert_allclose(words.vector("the"), model.get_word_vector("the"))
    ours = [n.word for n in words.most_similar("governmnet", 5)]
    theirs = [w for _, w in model.get_nearest_neighbors("governmnet", k=5)]
    assert ours == theirs
    report = lee_bin.embed_report(["the governmnet said", "!!"])
    assert report.oov == [["governmnet"], []]
    assert report.vectors[0].any() and not report.vectors[1].any()


def test_vec_file_is_plain_vectors(lee_bin: FastTextEmbedder) -> None:
    vec = embedkit.load("fasttext:" + _data("lee_fasttext.vec"))
    assert isinstance(vec, FastTextEmbedder)
    assert vec.words.subword is None and vec.model is None and vec.dim == 10
    with pytest.raises(KeyError, match="governmnet"):
        vec.words.vector("governmnet")
    assert vec.embed_report(["the governmnet"]).oov == [["governmnet"]]


def test_bin_embedder_saves_and_reloads(lee_bin: FastTextEmbedder, tmp_path: Path) -> None:
    folder = lee_bin.save(tmp_path / "lee")
    again = embedkit.load(f"fasttext:{folder}?pooling=mean")
    texts = ["the governmnet of australia", "police"]
    np.testing.assert_allclose(again.embed(texts), lee_bin.embed(texts), rtol=1e-6)
    assert isinstance(again, FastTextEmbedder) and again.words.subword is not None


def test_model_bin_is_part_of_the_one_checked_folder(
    lee_bin: FastTextEmbedder, tmp_path: Path
) -> None:
    folder = lee_bin.save(tmp_path / "lee")
    with _folder.read(folder, "words") as snapshot:
        assert "model.bin" in snapshot and "vectors.npy" in snapshot
        assert snapshot.meta["embedder"]["backend"] == "fasttext"
    data = folder / json.loads((folder / "manifest.json").read_text("utf-8"))["data"]
    model = data / "model.bin"
    raw = bytearray(model.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    model.write_bytes(bytes(raw))
    with pytest.raises(CorruptFileError, match=r"model\.bin fails its sha256"):
        embedkit.load(f"fasttext:{folder}")
    plain = FastTextEmbedder(_data("lee_fasttext.vec")).save(tmp_path / "vec")
    with _folder.read(plain, "words") as snapshot:
        assert "model.bin" not in snapshot  # no subword model: no file
    assert FastTextEmbedder(str(plain)).words.subword is None


def test_unreadable_files_raise_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(CorruptFileError, match=r"before 0\.9"):
        FastTextEmbedder(_data("lee_fasttext.bin"))  # an old-format file
    with pytest.raises(CorruptFileError, match="not UTF-8"):
        FastTextEmbedder(_data("pang_lee_polarity_fasttext.bin"))
    with pytest.raises(ConfigError, match="not found"):
        FastTextEmbedder(str(tmp_path / "nope.bin"))
    with pytest.raises(ConfigError, match="needs a path"):
        FastTextEmbedder("")
    (tmp_path / "folder").mkdir()
    with pytest.raises(ConfigError, match="manifest"):
        FastTextEmbedder(str(tmp_path / "folder"))


# -- specs and saved pooling weights ------------------------------------------------------
def test_saved_folder_keeps_or_refits_its_weights_like_the_other_backends(
    lee_bin: FastTextEmbedder, tmp_path: Path
) -> None:
    lee, head = _data("lee_background.cor"), _data("head500.noblanks.cor")
    texts = ["the governmnet of australia", "police fire", "qwxz"]
    fitted = FastTextEmbedder(_data("lee_fasttext_new.bin"), pooling="idf", fit_corpus=lee)
    folder = fitted.save(tmp_path / "idf")
    kept = embedkit.load(f"fasttext:{folder}")
    assert isinstance(kept, FastTextEmbedder) and f"fit_corpus={lee}" in kept.spec
    np.testing.assert_allclose(kept.embed(texts), fitted.embed(texts), rtol=1e-6)
    refit = embedkit.load(f"fasttext:{folder}?fit_corpus={head}")
    assert f"fit_corpus={head}" in refit.spec
    manual = FastTextEmbedder(str(folder), pooling="idf").fit_pooling(head)
    np.testing.assert_allclose(refit.embed(texts), manual.embed(texts), rtol=1e-6)
    assert not np.allclose(refit.embed(texts), kept.embed(texts))


@pytest.mark.parametrize(
    "template",
    [
        "fasttext:{bin}",
        "fasttext:{bin}?pooling=sif&fit_corpus={lee}&on_oov=zero",
        "fasttext:{vec}",
        "fasttext:{vec}?tokenizer=words-cased&pooling=idf&fit_corpus={lee}",
        "fasttext:{folder}",
        "fasttext:{folder}?pooling=mean",
    ],
)
def test_load_of_the_spec_rebuilds_the_fasttext_embedder(tmp_path: Path, template: str) -> None:
    lee, path = _data("lee_background.cor"), _data("lee_fasttext_new.bin")
    paths = {"bin": path, "vec": _data("lee_fasttext.vec"), "folder": "", "lee": lee}
    if "{folder}" in template:  # a saved folder with subwords and idf weights fitted on lee
        fitted = FastTextEmbedder(path, pooling="idf", fit_corpus=lee)
        paths["folder"] = str(fitted.save(tmp_path / "folder"))
    emb = embedkit.load(template.format(**paths))
    again = embedkit.load(emb.spec)
    assert isinstance(again, FastTextEmbedder) and again.spec == emb.spec
    texts = ["the governmnet of australia", "police", "qwxz"]
    np.testing.assert_allclose(again.embed(texts), emb.embed(texts), rtol=1e-6, atol=1e-7)
