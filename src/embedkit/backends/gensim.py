"""The ``word2vec`` and ``glove`` backends: sentence vectors from word-vector files.

The file formats (word2vec text/binary, GloVe text, native folders, gensim
pickles only with ``allow_pickle=True``) are read by :mod:`embedkit.words.files`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from embedkit.errors import ConfigError
from embedkit.words.embedder import StaticEmbedder, check_limit, locate, read_folder
from embedkit.words.files import (
    from_keyed_vectors,
    read_glove,
    read_keyed_vectors,
    read_word2vec,
    to_keyed_vectors,
)
from embedkit.words.pooling import Pooling
from embedkit.words.vectors import WordVectors, is_saved_words

__all__ = [
    "GloVeEmbedder",
    "Word2VecEmbedder",
    "from_keyed_vectors",
    "read_glove",
    "read_keyed_vectors",
    "read_word2vec",
    "to_keyed_vectors",
]


class _FileEmbedder(StaticEmbedder):
    """Shared loading of a path or native folder; options left ``None`` come from the folder.

    ``limit`` keeps the first rows only (and is part of the spec).
    """

    def __init__(
        self,
        model: str,
        *,
        tokenizer: str | None = None,
        pooling: str | None = None,
        oov: str | None = None,
        fit_corpus: str | None = None,
        mmap: bool = False,
        limit: int | None = None,
        **read_options: Any,
    ) -> None:
        path = locate(self.backend, model)
        limit = check_limit(limit)
        config: dict[str, Any] = {}
        weights: Pooling | None = None
        if path.is_dir():
            words, config, weights = read_folder(path, mmap=mmap, limit=limit)
        else:
            words = self._read(path, limit, **read_options)
        self._init_loaded(
            words,
            path,
            config,
            weights,
            tokenizer=tokenizer,
            pooling=pooling,
            oov=oov,
            fit_corpus=fit_corpus,
            limit=limit,
        )

    def _read(self, path: Path, limit: int | None, **read_options: Any) -> WordVectors:
        raise ConfigError(f"{type(self).__name__} cannot read files")


class Word2VecEmbedder(_FileEmbedder):
    """``word2vec:<path>``: word2vec text/binary, a native folder, or (opt-in) a gensim pickle.

    Options: ``binary`` (``None`` detects), ``allow_pickle`` (gensim ``KeyedVectors.save``
    files), ``limit`` (first rows only), ``mmap`` (native folders), plus the pooling
    options of :class:`~embedkit.words.embedder.StaticEmbedder`.
    """

    backend = "word2vec"

    def __init__(
        self,
        model: str = "",
        *,
        binary: bool | None = None,
        allow_pickle: bool = False,
        tokenizer: str | None = None,
        pooling: str | None = None,
        oov: str | None = None,
        fit_corpus: str | None = None,
        mmap: bool = False,
        limit: int | None = None,
    ) -> None:
        super().__init__(
            model,
            tokenizer=tokenizer,
            pooling=pooling,
            oov=oov,
            fit_corpus=fit_corpus,
            mmap=mmap,
            limit=limit,
            binary=binary,
            allow_pickle=allow_pickle,
        )

    def _read(self, path: Path, limit: int | None, **read_options: Any) -> WordVectors:
        if read_options.get("allow_pickle"):
            words = read_keyed_vectors(path, allow_pickle=True)
            return words if limit is None else words.restrict(limit)
        with open(path, "rb") as fh:
            head = fh.read(2)
        if head == b"\x80\x04" or head[:1] == b"\x80":
            raise ConfigError(
                f"{path} is a pickle (gensim KeyedVectors.save); load it with allow_pickle=True "
                "only if you trust the file"
            )
        return read_word2vec(path, binary=read_options.get("binary"), limit=limit)


class GloVeEmbedder(_FileEmbedder):
    """``glove:<path>``: GloVe text vectors (no header line) or a native folder.

    ``cache=True`` keeps a native copy in ``<path>.embedkit/`` (rebuilt when the
    text file's size or modification time changes) and loads from it afterwards.
    """

    backend = "glove"

    def __init__(
        self,
        model: str = "",
        *,
        tokenizer: str | None = None,
        pooling: str | None = None,
        oov: str | None = None,
        fit_corpus: str | None = None,
        mmap: bool = False,
        limit: int | None = None,
        cache: bool = False,
    ) -> None:
        path = Path(model).expanduser() if model else None
        if cache and path is not None and path.is_file():
            model = str(cached_glove(path))
        super().__init__(
            model,
            tokenizer=tokenizer,
            pooling=pooling,
            oov=oov,
            fit_corpus=fit_corpus,
            mmap=mmap,
            limit=limit,
        )

    def _read(self, path: Path, limit: int | None, **read_options: Any) -> WordVectors:
        return read_glove(path, limit=limit)


def cached_glove(path: str | os.PathLike[str]) -> Path:
    """The native folder ``<path>.embedkit/`` for a GloVe text file, built if stale."""
    source = Path(path)
    folder = source.with_name(source.name + ".embedkit")
    stat = source.stat()
    stamp = f"{stat.st_size}:{stat.st_mtime_ns}"
    marker = folder / "source.txt"
    if not (is_saved_words(folder) and marker.is_file() and marker.read_text() == stamp):
        read_glove(source).save(folder)
        marker.write_text(stamp)
    return folder
