"""Word-vector file formats, read with numpy only (no gensim needed for text/binary files).

Formats read (numpy only, no gensim needed):

* word2vec text: a header line ``"<count> <dim>"``, then ``"<word> <v1> ... <vdim>"`` lines;
* word2vec binary: the same header, then per word ``"<word> "`` and ``dim`` little-endian
  float32 values (optionally followed by a newline);
* GloVe text: word2vec text without the header line;
* a native folder written by :meth:`WordVectors.save` / ``StaticEmbedder.save``
  (``vectors.npy`` + ``vocab.json``; ``mmap=True`` maps the matrix);
* gensim's own ``KeyedVectors.save`` files, which are pickles: only with
  ``allow_pickle=True``, because unpickling a file can run arbitrary code.

Text files are parsed in blocks of whole lines with one vectorised number parse
per block (about 9x faster than gensim's ``load_word2vec_format`` on a
400k-word GloVe file, see ``benchmarks/bench_words.py``). A line with the wrong
number of values raises :class:`~embedkit.errors.CorruptFileError` naming it.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from numpy.typing import NDArray

from embedkit._optional import require
from embedkit.errors import BackendError, ConfigError, CorruptFileError
from embedkit.words import WordVectors

__all__ = [
    "from_keyed_vectors",
    "read_glove",
    "read_keyed_vectors",
    "read_word2vec",
    "to_keyed_vectors",
]

BLOCK_BYTES = 1 << 24


# -- readers ------------------------------------------------------------------------------
def read_glove(path: str | os.PathLike[str], *, limit: int | None = None) -> WordVectors:
    """GloVe text vectors (no header line); ``limit`` keeps the first rows only."""
    with open(path, "rb") as fh:
        return _read_text(fh, Path(path), None, 0, limit)


def read_word2vec(
    path: str | os.PathLike[str], *, binary: bool | None = None, limit: int | None = None
) -> WordVectors:
    """word2vec text or binary vectors (``binary=None`` detects which from the file)."""
    file = Path(path)
    with open(file, "rb") as fh:
        count, dim = _header(fh.readline(), file)
        if limit is not None:
            count = min(count, int(limit))
        start = fh.tell()
        if binary is None:
            binary = _looks_binary(fh.readline(64 * dim + 1024), dim)
            fh.seek(start)
        if binary:
            return _read_binary(fh, file, count, dim)
        vectors = _read_text(fh, file, dim, 1, count)
    if len(vectors) != count:
        raise CorruptFileError(f"{file} declares {count} words but holds {len(vectors)}")
    return vectors


def read_keyed_vectors(path: str | os.PathLike[str], *, allow_pickle: bool = False) -> WordVectors:
    """gensim's native ``KeyedVectors.save`` file: a pickle, so ``allow_pickle=True`` is required."""
    if not allow_pickle:
        raise ConfigError(
            f"{path} would be loaded with gensim's KeyedVectors.load, which unpickles it and can "
            "run arbitrary code; pass allow_pickle=True only for files you trust"
        )
    gensim_models = require("gensim.models", "gensim")
    try:
        kv = gensim_models.KeyedVectors.load(str(path))
    except Exception as exc:  # pickle/IO errors of any kind, translated at the boundary
        raise BackendError(f"gensim cannot load {path}: {exc}") from exc
    return from_keyed_vectors(getattr(kv, "wv", kv))


def from_keyed_vectors(kv: Any) -> WordVectors:
    """A gensim ``KeyedVectors`` (or a model with ``.wv``) as :class:`WordVectors`.

    Counts come from gensim's ``count`` attribute where the vectors were trained.
    """
    kv = getattr(kv, "wv", kv)
    words = list(kv.index_to_key)
    counts = None
    if "count" in getattr(kv, "expandos", {}):
        counts = np.asarray(kv.expandos["count"], dtype=np.int64)[: len(words)]
        if not counts.any():
            counts = None
    return WordVectors(words, np.asarray(kv.vectors, dtype=np.float32), counts=counts)


def to_keyed_vectors(words: WordVectors) -> Any:
    """The same vectors as a gensim ``KeyedVectors`` (for comparisons and interop)."""
    gensim_models = require("gensim.models", "gensim")
    kv = gensim_models.KeyedVectors(words.dim, dtype=np.float32)
    kv.add_vectors(words.words, np.asarray(words.vectors, dtype=np.float32))
    if words.counts is not None:
        kv.expandos["count"] = np.asarray(words.counts, dtype=np.int64)
    return kv


def _header(line: bytes, file: Path) -> tuple[int, int]:
    try:
        count, dim = (int(x) for x in line.split())
    except ValueError:
        raise CorruptFileError(
            f"{file} has no word2vec header '<count> <dim>' (first line {line[:80]!r}); "
            "GloVe files have none: use the glove backend"
        ) from None
    if count < 0 or dim < 1:
        raise CorruptFileError(f"{file} header declares {count} words of dimension {dim}")
    return count, dim


def _looks_binary(line: bytes, dim: int) -> bool:
    """Text when the first record is ``word`` + ``dim`` numbers on one UTF-8 line."""
    try:
        fields = line.decode("utf-8").split()
        [float(x) for x in fields[1:]]
    except (UnicodeDecodeError, ValueError):
        return True
    return len(fields) != dim + 1


def _read_binary(fh: BinaryIO, file: Path, count: int, dim: int) -> WordVectors:
    vectors = np.empty((count, dim), dtype=np.float32)
    words: list[str] = []
    data = fh.read()
    pos, row_bytes = 0, 4 * dim
    for row in range(count):
        while pos < len(data) and data[pos : pos + 1] in (b"\n", b"\r"):
            pos += 1
        end = data.find(b" ", pos)
        if end < 0 or end + 1 + row_bytes > len(data):
            raise CorruptFileError(f"{file} ends inside word {row} (of {count} declared)")
        words.append(_decode(data[pos:end], file, row))
        vectors[row] = np.frombuffer(data, dtype="<f4", count=dim, offset=end + 1)
        pos = end + 1 + row_bytes
    return WordVectors(words, vectors)


def _read_text(
    fh: BinaryIO, file: Path, dim: int | None, first_line: int, limit: int | None
) -> WordVectors:
    words: list[str] = []
    blocks: list[NDArray[np.float32]] = []
    line_no = first_line
    while limit is None or len(words) < limit:
        block = fh.read(BLOCK_BYTES)
        if not block:
            break
        block += fh.readline()
        lines = [line for line in block.split(b"\n") if line.strip()]
        if limit is not None:
            lines = lines[: limit - len(words)]
        parts = [line.rstrip().partition(b" ") for line in lines]
        if dim is None and parts:
            dim = len(parts[0][2].split())
            if dim == 0:
                raise CorruptFileError(f"{file} line 1 holds a word and no numbers")
        values = _parse_numbers(b" ".join(p[2] for p in parts))
        if values.size != len(parts) * (dim or 0):
            _raise_bad_line(file, parts, dim or 0, line_no)
        words += [_decode(p[0], file, line_no + i) for i, p in enumerate(parts)]
        blocks.append(values.reshape(len(parts), dim or 0))
        line_no += len(parts)
    if not words or dim is None:
        raise CorruptFileError(f"{file} holds no word vectors")
    matrix = blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
    return WordVectors(words, matrix)


def _parse_numbers(text: bytes) -> NDArray[np.float32]:
    """All whitespace-separated numbers of ``text``; an empty array if one is not a number."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)  # "could not be read to its end"
            out: NDArray[np.float32] = np.fromstring(text, dtype=np.float32, sep=" ")  # type: ignore[call-overload]
    except (ValueError, DeprecationWarning):
        return np.empty(0, dtype=np.float32)
    return out


def _raise_bad_line(
    file: Path, parts: list[tuple[bytes, bytes, bytes]], dim: int, first: int
) -> None:
    bad: list[str] = []
    for i, (word, _, rest) in enumerate(parts):
        fields = rest.split()
        try:
            ok = len(fields) == dim and len([float(x) for x in fields]) == dim
        except ValueError:
            ok = False
        if not ok:
            bad.append(f"line {first + i + 1} ({word[:40]!r}: {len(fields)} values)")
        if len(bad) == 10:
            break
    raise CorruptFileError(
        f"{file}: expected {dim} numbers after each word; bad lines: " + ", ".join(bad)
    )


def _decode(word: bytes, file: Path, line_no: int) -> str:
    try:
        return word.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorruptFileError(f"{file} line {line_no + 1}: word is not UTF-8 ({exc})") from exc


# -- backends -----------------------------------------------------------------------------
