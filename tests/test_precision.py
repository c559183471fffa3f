"""``precision`` of the sentence-transformers backend: fp32, bf16 (autocast) and auto."""

from __future__ import annotations

import csv
import itertools
import warnings
from pathlib import Path

import numpy as np
import pytest
import sentence_transformers  # noqa: F401 - fails, never skips, without the sbert extra

import embedkit
from embedkit.backends.sbert import (
    BF16_FLAGS,
    SentenceTransformerEmbedder,
    cpu_flags,
    resolve_precision,
)
from embedkit.errors import ConfigError
from embedkit.registry import same_model

pytestmark = pytest.mark.slow

SPEC = "sentence-transformers:all-MiniLM-L6-v2?normalize=true&on_long=truncate"


@pytest.fixture(scope="module")
def reviews(reviews_csv: Path) -> list[str]:
    """24 real reviews (Summary + Text), the long ones included."""
    with open(reviews_csv, newline="", encoding="utf-8") as fh:
        rows = list(itertools.islice(csv.DictReader(fh), 24))
    return [f"{r['Summary']}. {r['Text']}" for r in rows]


@pytest.fixture(scope="module")
def bf16() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(precision="bf16")


def test_bf16_vectors_are_fp32_vectors_within_a_cosine(
    minilm: embedkit.Embedder, bf16: SentenceTransformerEmbedder, reviews: list[str]
) -> None:
    with warnings.catch_warnings():  # long reviews are truncated to 256 tokens, both ways
        warnings.simplefilter("ignore", embedkit.errors.EmbedkitWarning)
        full, half = minilm.embed(reviews), bf16.embed(reviews)
    assert half.dtype == np.float32 and half.shape == full.shape
    np.testing.assert_allclose(np.linalg.norm(half, axis=1), 1.0, atol=1e-5)
    cos = np.sum(full * half, axis=1)
    print(
        f"\n[precision] bf16 vs fp32, {len(reviews)} reviews: cos mean {cos.mean():.6f} min {cos.min():.6f}"
    )
    assert cos.mean() >= 0.999 and cos.min() >= 0.99, (cos.mean(), cos.min())
    assert not np.array_equal(full, half)  # autocast did run: the vectors moved, a little


def test_bf16_is_in_the_spec_and_round_trips(
    bf16: SentenceTransformerEmbedder, reviews: list[str]
) -> None:
    assert bf16.spec == SPEC + "&precision=bf16"
    again = embedkit.load(bf16.spec)
    assert isinstance(again, SentenceTransformerEmbedder) and again.precision == "bf16"
    short = [r.split(". ")[0] for r in reviews[:3]]  # the summaries: bf16 is slow without AMX
    np.testing.assert_allclose(again.embed(short), bf16.embed(short), atol=1e-6)
    assert not same_model(bf16.spec, SPEC)  # bf16 vectors never pass for fp32 ones


def test_fp32_is_the_default_and_stays_out_of_the_spec(minilm: embedkit.Embedder) -> None:
    assert minilm.spec == SPEC  # specs and caches from before the option still match
    assert same_model(SPEC, SPEC + "&precision=fp32")
    assert embedkit.load(SPEC + "&precision=fp32").spec == SPEC


def test_auto_resolves_to_a_recorded_precision() -> None:
    flags = cpu_flags()
    expected = "bf16" if flags & BF16_FLAGS else "fp32"
    print(f"\n[precision] CPU bf16 flags: {sorted(flags & BF16_FLAGS) or 'none'} -> {expected}")
    assert resolve_precision("auto") == resolve_precision("auto") == expected
    auto = embedkit.load("sentence-transformers:all-MiniLM-L6-v2?precision=auto")
    assert isinstance(auto, SentenceTransformerEmbedder) and auto.precision == expected
    assert "auto" not in auto.spec
    assert embedkit.load(auto.spec).spec == auto.spec


@pytest.mark.parametrize(
    ("flags", "device", "expected"),
    [
        ({"avx2", "fma"}, "cpu", "fp32"),  # an AMD EPYC of this cluster
        ({"avx512f", "avx512_bf16"}, "cpu", "bf16"),
        ({"avx512f", "amx_tile", "amx_bf16"}, "cpu", "bf16"),  # Sapphire Rapids
        ({"amx_bf16"}, "cuda", "fp32"),  # auto looks at CPUs only
        (set(), "cpu", "fp32"),  # no /proc/cpuinfo
    ],
)
def test_auto_rule(flags: set[str], device: str, expected: str) -> None:
    assert resolve_precision("auto", device, frozenset(flags)) == expected
    assert resolve_precision("bf16", device, frozenset(flags)) == "bf16"  # asked: obeyed


def test_cpu_flags_read_from_the_kernel_listing(tmp_path: Path) -> None:
    listing = tmp_path / "cpuinfo"
    listing.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 amx_bf16\n\nprocessor\t: 1\n")
    assert cpu_flags(str(listing)) == {"fpu", "sse2", "avx2", "amx_bf16"}
    assert cpu_flags(str(tmp_path / "missing")) == frozenset()


@pytest.mark.parametrize("value", ["fp16", "int4", "BF16", "ONNX", "", 8])
def test_unknown_precisions_are_config_errors(value: object) -> None:
    with pytest.raises(ConfigError, match="precision must be one of"):
        SentenceTransformerEmbedder(precision=value)  # type: ignore[arg-type]


def test_token_vectors_under_bf16_are_float32(bf16: SentenceTransformerEmbedder) -> None:
    tokens = bf16.token_vectors("the river bank")
    assert tokens.vectors.dtype == np.float32 and tokens.vectors.shape[0] == len(tokens.tokens)
