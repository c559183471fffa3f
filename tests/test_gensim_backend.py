"""word2vec / GloVe file formats and backends, checked against gensim's own loaders."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import embedkit
from embedkit import _folder
from embedkit.backends.gensim import GloVeEmbedder, Word2VecEmbedder, cache_folder, cached_glove
from embedkit.errors import BackendError, ConfigError, CorruptFileError, EmbedkitWarning
from embedkit.words.files import read_glove, read_keyed_vectors, read_word2vec, to_keyed_vectors
from embedkit.words.vectors import WordVectors
from test_words import lee_word2vec, lee_words


def datapath(name: str) -> str:
    from gensim.test.utils import datapath as gensim_datapath

    return str(gensim_datapath(name))


@pytest.fixture(scope="module")
def saved_formats(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("formats")
    kv = lee_word2vec().wv
    paths = {"text": folder / "lee.txt", "bin": folder / "lee.bin", "kv": folder / "lee.kv"}
    kv.save_word2vec_format(str(paths["text"]))
    kv.save_word2vec_format(str(paths["bin"]), binary=True)
    kv.save(str(paths["kv"]))
    return paths


def assert_same(ours: WordVectors, theirs: Any) -> None:
    assert ours.words == list(theirs.index_to_key)
    np.testing.assert_array_equal(ours.vectors, theirs.vectors)


def test_glove_sample_equals_gensim() -> None:
    from gensim.models import KeyedVectors

    path = datapath("test_glove.txt")
    assert_same(read_glove(path), KeyedVectors.load_word2vec_format(path, no_header=True))
    assert read_glove(path, limit=10).words == read_glove(path).words[:10]


@pytest.mark.parametrize(
    "name",
    [
        "EN.1-10.cbow1_wind5_hs0_neg10_size300_smpl1e-05.txt",
        "euclidean_vectors.bin",
        "word2vec_pre_kv_c",
        "high_precision.kv.bin",
        "high_precision.kv.txt",
    ],
)
def test_gensim_sample_files_equal_gensim(name: str) -> None:
    from gensim.models import KeyedVectors

    path = datapath(name)
    theirs = KeyedVectors.load_word2vec_format(path, binary=name.endswith(".bin"))
    assert_same(read_word2vec(path), theirs)  # text or binary detected from the content


def test_text_and_binary_roundtrip(saved_formats: dict[str, Path]) -> None:
    kv = lee_word2vec().wv
    for kind in ("text", "bin"):
        assert_same(read_word2vec(saved_formats[kind]), kv)
    assert_same(read_word2vec(saved_formats["bin"], binary=True), kv)
    limited = read_word2vec(saved_formats["bin"], limit=25)
    assert limited.words == kv.index_to_key[:25]


def test_damaged_files_raise_corrupt_file_error(
    tmp_path: Path, saved_formats: dict[str, Path]
) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("the 0.1 0.2 0.3\nof 0.4 0.5\nand 0.1 0.2 0.3\n")
    with pytest.raises(CorruptFileError, match=r"line 2 \(b'of': 2 values\)"):
        read_glove(bad)
    bad.write_text("the 0.1 0.2 x3\n")
    with pytest.raises(CorruptFileError, match="line 1"):
        read_glove(bad)
    with pytest.raises(CorruptFileError, match="glove backend"):
        read_word2vec(datapath("test_glove.txt"))
    cut = tmp_path / "cut.bin"
    cut.write_bytes(saved_formats["bin"].read_bytes()[:5000])
    with pytest.raises(CorruptFileError, match="ends inside word"):
        read_word2vec(cut, binary=True)
    short = tmp_path / "short.txt"
    short.write_text("3 2\na 1 2\nb 3 4\n")
    with pytest.raises(CorruptFileError, match="declares 3 words but holds 2"):
        read_word2vec(short)


def test_every_line_must_hold_dim_values(tmp_path: Path) -> None:
    bad = tmp_path / "shifted.txt"
    bad.write_text("a 1 2\nb 3 4 5\nc 6\n")  # 6 values in all: 3 x 2, but not per line
    with pytest.raises(CorruptFileError, match=r"bad lines: line 2 \(b'b': 3 values\)"):
        read_glove(bad)
    with pytest.raises(CorruptFileError, match=r"line 3 \(b'b': 3 values\)"):
        read_word2vec_text(tmp_path, "3 2\na 1 2\nb 3 4 5\nc 6\n")
    # a tab hides the count from a space count: one line short, one long, same total
    bad.write_text("a 1 2 3\nb 1  2\nc 1 2 3\t4\n")
    with pytest.raises(CorruptFileError, match=r"line 2 \(b'b': 2 values\)"):
        read_glove(bad)
    spaced = tmp_path / "spaced.txt"  # odd but valid whitespace still loads
    spaced.write_text("a 1  2\r\nb 3\t4 \n\nc  5 6\n")
    words = read_glove(spaced)
    assert words.words == ["a", "b", "c"]
    np.testing.assert_array_equal(words.vectors, [[1, 2], [3, 4], [5, 6]])


def read_word2vec_text(folder: Path, text: str) -> WordVectors:
    path = folder / "vectors.w2v.txt"
    path.write_text(text)
    return read_word2vec(path, binary=False)


def test_nan_and_infinity_raise_naming_the_words(tmp_path: Path) -> None:
    glove = tmp_path / "nan.txt"
    glove.write_text("a 1 2\nb nan 4\nc 5 6\nd 7 -inf\n")
    with pytest.raises(
        CorruptFileError, match=r"2 vectors hold NaN.*line 2 \('b'\), line 4 \('d'\)"
    ):
        read_glove(glove)
    with pytest.raises(CorruptFileError, match=r"line 3 \('b'\)"):
        read_word2vec_text(tmp_path, "2 2\na 1 2\nb inf 4\n")
    rows = np.array([[1, 2], [np.nan, 4], [5, 6]], dtype="<f4")
    binary = tmp_path / "nan.bin"
    binary.write_bytes(
        b"3 2\n"
        + b"".join(
            w + b" " + r.tobytes() + b"\n" for w, r in zip([b"a", b"b", b"c"], rows, strict=True)
        )
    )
    with pytest.raises(CorruptFileError, match=r"word 2 \('b'\)"):
        read_word2vec(binary, binary=True)
    with pytest.raises(CorruptFileError, match="NaN"):
        Word2VecEmbedder(str(binary))
    assert read_word2vec(binary, binary=True, limit=1).words == ["a"]


def test_gensim_pickles_need_explicit_opt_in(saved_formats: dict[str, Path]) -> None:
    path = saved_formats["kv"]
    assert path.read_bytes()[:1] == pickle.PROTO
    with pytest.raises(ConfigError, match="allow_pickle"):
        Word2VecEmbedder(str(path))
    with pytest.raises(ConfigError, match="allow_pickle"):
        read_keyed_vectors(path)
    with pytest.raises(ConfigError):
        embedkit.load(f"word2vec:{path}")
    loaded = embedkit.load(f"word2vec:{path}?allow_pickle=true")
    assert isinstance(loaded, Word2VecEmbedder)
    with pytest.raises(ConfigError, match="allow_pickle=True only if you trust"):
        embedkit.load(loaded.spec)  # the permission to unpickle is never implied by a spec
    assert_same(loaded.words, lee_word2vec().wv)
    assert loaded.words.counts is not None and loaded.words.counts[0] > loaded.words.counts[-1]


def test_load_by_spec_and_reload_from_spec(saved_formats: dict[str, Path]) -> None:
    emb = embedkit.load(f"word2vec:{saved_formats['bin']}?pooling=mean&on_oov=zero")
    assert isinstance(emb, Word2VecEmbedder) and emb.dim == 50
    assert emb.spec == f"word2vec:{saved_formats['bin']}?on_oov=zero&pooling=mean&tokenizer=words"
    again = embedkit.load(emb.spec)
    texts = ["The police said the fire was contained", "qwxz"]
    np.testing.assert_array_equal(again.embed(texts), emb.embed(texts))
    glove = embedkit.load(f"glove:{datapath('test_glove.txt')}")
    assert isinstance(glove, GloVeEmbedder) and glove.dim == 50
    assert glove.embed(["the of and"]).shape == (1, 50)
    with pytest.raises(ConfigError, match="not found"):
        embedkit.load("glove:/nonexistent/file.txt")
    with pytest.raises(ConfigError, match="needs a path"):
        embedkit.load("word2vec")


def test_limit_is_part_of_the_spec(tmp_path: Path, saved_formats: dict[str, Path]) -> None:
    full = Word2VecEmbedder(str(saved_formats["bin"]))
    small = Word2VecEmbedder(str(saved_formats["bin"]), limit=30)
    assert len(small.words) == 30 and "limit=30" in small.spec and "limit" not in full.spec
    text = ["the police said the fire was contained"]
    assert not np.allclose(small.embed(text), full.embed(text))
    again = embedkit.load(small.spec)
    assert isinstance(again, Word2VecEmbedder) and again.spec == small.spec
    np.testing.assert_array_equal(again.embed(text), small.embed(text))
    folder = full.save(tmp_path / "full")
    from_folder = embedkit.load(f"word2vec:{folder}?limit=30")
    assert "limit=30" in from_folder.spec
    np.testing.assert_array_equal(from_folder.embed(text), small.embed(text))
    for bad in (0, -1, True, 2.5):
        with pytest.raises(ConfigError, match="limit"):
            Word2VecEmbedder(str(saved_formats["bin"]), limit=bad)  # type: ignore[arg-type]


def test_native_folder_reload_with_mmap(tmp_path: Path) -> None:
    emb = Word2VecEmbedder.from_words(lee_words(), pooling="sif")
    with pytest.raises(CorruptFileError, match="not UTF-8"):
        emb.fit_pooling(datapath("lee.cor"))  # latin-1 bytes in it
    emb.fit_pooling(datapath("lee_background.cor"))
    folder = emb.save(tmp_path / "native")
    back = embedkit.load(f"word2vec:{folder}?mmap=true")
    assert isinstance(back, Word2VecEmbedder) and isinstance(back.words.vectors, np.memmap)
    assert back.pooling.method == "sif" and back.spec.endswith(emb.spec.split("?", 1)[1])
    texts = ["the government said", "fire fighters", "zzzz"]
    np.testing.assert_allclose(back.embed(texts), emb.embed(texts), atol=1e-6)
    assert embedkit.load(back.spec).spec == back.spec  # the spec names the saved weights
    with pytest.raises(ConfigError, match="not available"):
        embedkit.load(f"word2vec:{folder}?fit_corpus=sha256:000000000000")
    glove = GloVeEmbedder(str(folder))  # a native folder serves either backend
    assert glove.spec.startswith("glove:")


def cache_data(folder: Path) -> Path:
    """The data folder the cache's manifest names (a new one after each rebuild)."""
    return folder / json.loads((folder / "manifest.json").read_text("utf-8"))["data"]


def test_glove_cache_builds_once_and_tracks_the_source(tmp_path: Path) -> None:
    source = tmp_path / "vectors.txt"
    source.write_bytes(Path(datapath("test_glove.txt")).read_bytes())
    first = GloVeEmbedder(str(source), cache=True)
    folder = cache_folder(source)
    assert folder.name == "vectors.txt.embedkit" and (cache_data(folder) / "vectors.npy").is_file()
    stamp = (cache_data(folder) / "vectors.npy").stat().st_mtime_ns
    built = cache_data(folder)
    second = GloVeEmbedder(str(source), cache=True, mmap=True)
    assert cache_data(folder) == built  # fresh: not rebuilt
    assert (cache_data(folder) / "vectors.npy").stat().st_mtime_ns == stamp
    assert second.words.words == first.words.words
    assert isinstance(second.words.vectors, np.memmap)
    with _folder.read(folder, "words") as snapshot:  # the stamp is in the checked manifest
        stat = source.stat()
        assert snapshot.meta["source"] == {"bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        assert sorted(snapshot.sizes) == ["vectors.npy", "vocab.json"]
    assert not (folder / "source.txt").exists()
    with open(source, "a", encoding="utf-8") as fh:
        fh.write("zzzz " + " ".join(["0.5"] * 50) + "\n")
    os.utime(source, ns=(stamp + 10**9, stamp + 10**9))
    assert "zzzz" in GloVeEmbedder(str(source), cache=True).words
    assert cache_data(folder) != built and "zzzz" in cached_glove(source)


def test_glove_cache_is_not_part_of_the_identity(tmp_path: Path) -> None:
    source = tmp_path / "vectors.txt"
    source.write_bytes(Path(datapath("test_glove.txt")).read_bytes())
    texts = ["the of and", "to in a"]
    for options in ("", "&limit=10", "&pooling=idf&fit_corpus=" + datapath("lee_background.cor")):
        plain = embedkit.load(f"glove:{source}?tokenizer=words{options}")
        cached = embedkit.load(f"glove:{source}?cache=true&mmap=true&tokenizer=words{options}")
        assert cached.spec == plain.spec and f"glove:{source}?" in cached.spec
        assert "cache=" not in cached.spec and ".embedkit" not in cached.spec
        np.testing.assert_array_equal(cached.embed(texts), plain.embed(texts))
        again = embedkit.load(cached.spec)
        np.testing.assert_array_equal(again.embed(texts), cached.embed(texts))


def test_a_damaged_glove_cache_is_rebuilt_with_a_warning(tmp_path: Path) -> None:
    source = tmp_path / "vectors.txt"
    source.write_bytes(Path(datapath("test_glove.txt")).read_bytes())
    words = cached_glove(source)
    vectors = cache_data(cache_folder(source)) / "vectors.npy"
    raw = bytearray(vectors.read_bytes())
    raw[-1] ^= 0xFF
    vectors.write_bytes(bytes(raw))
    with pytest.warns(EmbedkitWarning, match="damaged.*sha256"):
        again = cached_glove(source)
    np.testing.assert_array_equal(again.vectors, words.vectors)
    np.testing.assert_array_equal(cached_glove(source).vectors, words.vectors)  # no warning now


def test_gensim_pickle_errors_keep_their_meaning(tmp_path: Path) -> None:
    junk = tmp_path / "junk.kv"
    junk.write_bytes(b"\x80\x04not a pickle at all")
    with pytest.raises(CorruptFileError, match="not a readable gensim KeyedVectors"):
        read_keyed_vectors(junk, allow_pickle=True)
    other = tmp_path / "list.kv"
    other.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(CorruptFileError, match="not a gensim KeyedVectors file"):
        read_keyed_vectors(other, allow_pickle=True)
    with pytest.raises(FileNotFoundError):
        read_keyed_vectors(tmp_path / "missing.kv", allow_pickle=True)
    missing_module = tmp_path / "module.kv"
    missing_module.write_bytes(b"cno_such_module_x\nX\n.")  # a class of a module not installed
    with pytest.raises(ImportError) as err:
        read_keyed_vectors(missing_module, allow_pickle=True)
    assert not isinstance(err.value, (CorruptFileError, BackendError))
    if os.name == "posix" and os.geteuid() != 0:
        locked = tmp_path / "locked.kv"
        locked.write_bytes(pickle.dumps([1]))
        locked.chmod(0)
        with pytest.raises(PermissionError):
            read_keyed_vectors(locked, allow_pickle=True)


def test_from_words_and_keyed_vectors_interop() -> None:
    words = lee_words()
    emb = GloVeEmbedder.from_words(words, tokenizer="words-cased")
    assert (
        emb.spec.startswith(f"glove:{words.content_id()}?") and "tokenizer=words-cased" in emb.spec
    )
    kv = to_keyed_vectors(words)
    assert len(kv) == len(words) and kv.vectors.shape == words.vectors.shape
    assert kv.most_similar("police", topn=3) == lee_word2vec().wv.most_similar("police", topn=3)


def test_importing_the_word_modules_stays_light() -> None:
    code = (
        "import sys, embedkit, embedkit.words.vectors, embedkit.words.pooling, embedkit.words.evaluate, "
        "embedkit.words.embedder, embedkit.backends.gensim; "
        "print(sorted(m for m in ('gensim', 'scipy', 'torch', 'pandas', 'sklearn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
