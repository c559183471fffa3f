"""The ``word2vec`` and ``glove`` backends: sentence vectors from word-vector files.

The file formats (word2vec text/binary, GloVe text, native folders, gensim
pickles only with ``allow_pickle=True``) are read by :mod:`embedkit.words.files`.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from embedkit import _folder
from embedkit.errors import ConfigError, CorruptFileError, EmbedkitWarning
from embedkit.words.embedder import StaticEmbedder
from embedkit.words.files import (
    from_keyed_vectors,
    read_glove,
    read_keyed_vectors,
    read_word2vec,
    to_keyed_vectors,
)
from embedkit.words.pooling import Pooling
from embedkit.words.saved import check_limit, locate, read_folder
from embedkit.words.vectors import KIND, WordVectors

__all__ = [
    "GloVeEmbedder",
    "Word2VecEmbedder",
    "cached_glove",
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
        on_oov: str | None = None,
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
            saved = read_folder(path, mmap=mmap, limit=limit)
            words, config, weights = saved.words, saved.config, saved.pooling
        else:
            words = self._read(path, limit, mmap=mmap, **read_options)
        self._init_loaded(
            words,
            path,
            config,
            weights,
            tokenizer=tokenizer,
            pooling=pooling,
            on_oov=on_oov,
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
        on_oov: str | None = None,
        fit_corpus: str | None = None,
        mmap: bool = False,
        limit: int | None = None,
    ) -> None:
        super().__init__(
            model,
            tokenizer=tokenizer,
            pooling=pooling,
            on_oov=on_oov,
            fit_corpus=fit_corpus,
            mmap=mmap,
            limit=limit,
            binary=binary,
            allow_pickle=allow_pickle,
        )

    def _read(self, path: Path, limit: int | None, **read_options: Any) -> WordVectors:
        if read_options.get("allow_pickle"):
            words = read_keyed_vectors(path, allow_pickle=True)
            return words if limit is None else words.limit(limit)
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

    ``cache=True`` keeps a native copy in ``<path>.embedkit/`` (:func:`cached_glove`)
    and loads from it afterwards (``mmap=True`` maps it). The cache is a loading
    detail, not part of the identity: the spec names the text file either way, and
    the vectors are the same.
    """

    backend = "glove"

    def __init__(
        self,
        model: str = "",
        *,
        tokenizer: str | None = None,
        pooling: str | None = None,
        on_oov: str | None = None,
        fit_corpus: str | None = None,
        mmap: bool = False,
        limit: int | None = None,
        cache: bool = False,
    ) -> None:
        super().__init__(
            model,
            tokenizer=tokenizer,
            pooling=pooling,
            on_oov=on_oov,
            fit_corpus=fit_corpus,
            mmap=mmap,
            limit=limit,
            cache=cache,
        )

    def _read(self, path: Path, limit: int | None, **read_options: Any) -> WordVectors:
        if read_options.get("cache"):
            words = cached_glove(path, mmap=bool(read_options.get("mmap")))
            return words if limit is None else words.limit(limit)
        return read_glove(path, limit=limit)


def cache_folder(path: str | os.PathLike[str]) -> Path:
    """Where :func:`cached_glove` keeps the native copy of a GloVe file: ``<path>.embedkit/``."""
    source = Path(path)
    return source.with_name(source.name + ".embedkit")


def cached_glove(path: str | os.PathLike[str], *, mmap: bool = False) -> WordVectors:
    """The vectors of a GloVe text file, through its native copy ``<path>.embedkit/``.

    The copy is an embedkit folder whose manifest ``meta["source"]`` records the
    text file's size and ``mtime_ns``; when they no longer match (or the copy fails
    its checks) it is rebuilt from the text file in one atomic write.
    """
    source = Path(path)
    folder = cache_folder(source)
    stat = source.stat()
    stamp = {"bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if _folder.is_folder(folder):
        try:
            with _folder.read(folder, KIND) as snapshot:
                if snapshot.meta.get("source") == stamp:
                    return WordVectors.from_snapshot(snapshot, mmap=mmap)
        except CorruptFileError as exc:
            warnings.warn(
                f"the GloVe cache {folder} is damaged ({exc}); rebuilding it from {source}",
                EmbedkitWarning,
                stacklevel=2,
            )
    words = read_glove(source)
    with _folder.FolderWriter(folder, KIND) as writer:
        meta = words.write_files(writer)
        writer.commit({**meta, "source": stamp})
    if not mmap:
        return words
    with _folder.read(folder, KIND) as snapshot:
        return WordVectors.from_snapshot(snapshot, mmap=True)
