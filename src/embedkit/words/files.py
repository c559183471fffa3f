"""Word-vector file formats, read with numpy only (no gensim needed for text/binary files).

Formats read (numpy only, no gensim needed):

* word2vec text: a header line ``"<count> <dim>"``, then ``"<word> <v1> ... <vdim>"`` lines;
* word2vec binary: the same header, then per word ``"<word> "`` and ``dim`` little-endian
  float32 values (optionally followed by a newline);
* GloVe text: word2vec text without the header line;
* a native folder written by :meth:`WordVectors.save` / ``StaticEmbedder.save``
  (an :mod:`embedkit._folder` folder: ``WordVectors.load``; ``mmap=True`` maps the matrix);
* gensim's own ``KeyedVectors.save`` files, which are pickles: only with
  ``allow_pickle=True``, because unpickling a file can run arbitrary code.

Text files are parsed in blocks of whole lines with one vectorised number parse
per block (about 9x faster than gensim's ``load_word2vec_format`` on a
400k-word GloVe file, see ``benchmarks/bench_words.py``). A line with the wrong
number of values, or a NaN or infinite value, raises
:class:`~embedkit.errors.CorruptFileError` naming it (binary files: the word and
its position, counted from 1).
"""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from numpy.typing import NDArray

from embedkit._optional import require
from embedkit.errors import ConfigError, CorruptFileError
from embedkit.words.vectors import WordVectors

__all__ = [
    "from_keyed_vectors",
    "read_glove",
    "read_keyed_vectors",
    "read_word2vec",
    "to_keyed_vectors",
]

BLOCK_BYTES = 1 << 24
OTHER_WHITESPACE = (b"\t", b"\r", b"\x0b", b"\x0c")  # besides " " and "\n"


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
    except (pickle.UnpicklingError, EOFError) as exc:  # not a pickle, or a truncated one
        raise CorruptFileError(f"{path} is not a readable gensim KeyedVectors file: {exc}") from exc
    except (AttributeError, TypeError, ValueError) as exc:  # another object, another gensim
        raise CorruptFileError(
            f"{path} is not a gensim KeyedVectors file this gensim can read: {exc}"
        ) from exc
    # OSError (missing file, permission, disk) and ImportError keep their meaning
    kv = getattr(kv, "wv", kv)
    if not hasattr(kv, "index_to_key") or not hasattr(kv, "vectors"):
        raise CorruptFileError(f"{path} holds a {type(kv).__name__}, not gensim KeyedVectors")
    words = from_keyed_vectors(kv)
    _check_finite(Path(path), words.words, words.vectors, 0, "word")
    return words


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
    _check_finite(file, words, vectors, 0, "word")
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
        if not parts:
            continue
        if dim is None:
            dim = len(parts[0][2].split())
            if dim == 0:
                raise CorruptFileError(f"{file} line 1 holds a word and no numbers")
        rests = [p[2] for p in parts]
        text = b"\n".join(rests)
        values = _parse_numbers(text)
        if values.size != len(parts) * dim or not _each_line_holds(dim, rests, text):
            _raise_bad_line(file, parts, dim, line_no)
        block_words = [_decode(p[0], file, line_no + i) for i, p in enumerate(parts)]
        matrix = values.reshape(len(parts), dim)
        _check_finite(file, block_words, matrix, line_no)
        words += block_words
        blocks.append(matrix)
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


def _each_line_holds(dim: int, rests: list[bytes], text: bytes) -> bool:
    """True when each line ``rests[i]`` holds exactly ``dim`` whitespace-separated fields.

    Only valid together with the caller's check that the block parsed to
    ``len(rests) * dim`` numbers. Fast path: with ``" "`` as the only whitespace in
    ``text = b"\\n".join(rests)``, line ``i`` holds at most ``spaces_i + 1`` fields, so
    ``spaces_i = dim - 1`` for every line plus that total means exactly ``dim`` each.
    Otherwise (tabs, double spaces, a bad line) the fields are counted per line.
    """
    if not any(char in text for char in OTHER_WHITESPACE):
        spaces = np.fromiter((r.count(b" ") for r in rests), np.int64, len(rests))
        if (spaces == dim - 1).all():
            return True
    return bool((_values_per_line(text) == dim).all())


def _values_per_line(text: bytes) -> NDArray[np.int64]:
    """Whitespace-separated fields on each ``\\n``-separated line of ``text``.

    ``res[i]`` = number of field starts (a byte > 32 after a byte <= 32, or at the
    start) between line break ``i - 1`` and line break ``i``; vectorised over the bytes.
    """
    buf = np.frombuffer(text, dtype=np.uint8)
    blank = buf <= 32
    starts = np.flatnonzero(blank[:-1] & ~blank[1:]) + 1
    if buf.size and not blank[0]:
        starts = np.concatenate([[0], starts])
    bounds = np.append(np.flatnonzero(buf == ord("\n")), buf.size)
    return np.diff(np.searchsorted(starts, bounds), prepend=0)


def _check_finite(
    file: Path, words: list[str], matrix: NDArray[np.float32], first: int, unit: str = "line"
) -> None:
    """:class:`CorruptFileError` naming the rows whose vectors hold NaN or infinity.

    Row ``i`` is reported as ``f"{unit} {first + i + 1}"`` with its word.
    """
    finite = np.isfinite(matrix)
    if finite.all():
        return
    rows = np.flatnonzero(~finite.all(axis=1))
    named = ", ".join(f"{unit} {first + i + 1} ({words[i][:40]!r})" for i in rows[:10].tolist())
    more = f" and {rows.size - 10} more" if rows.size > 10 else ""
    raise CorruptFileError(f"{file}: {rows.size} vectors hold NaN or infinity: {named}{more}")


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
