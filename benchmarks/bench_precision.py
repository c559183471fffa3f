"""sentence-transformers at fp32 and bf16 (``precision=``), side by side in one run.

The same N real texts (the ``Text`` column of the fine-food reviews, cycled; 2,000
by default) go through embedkit's backend, once per precision, each warmed up
first (a process's first batches are 3-4x slower). Printed: the CPU and
its bf16 capability flags, what ``precision=auto`` resolves to here, then texts/s,
the speed-up over fp32 and the mean/min cosine of each row to its fp32 vector.

bf16 pays off only where the CPU has bf16 matrix units (AMX, avx512_bf16); on an
AVX2-only CPU it is emulated and several times slower than fp32: that is why
``auto`` picks fp32 there.

    HF_HUB_OFFLINE=1 python benchmarks/bench_precision.py
    HF_HUB_OFFLINE=1 python benchmarks/bench_precision.py --quick
"""

from __future__ import annotations

import argparse
import csv
import itertools
import os
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np

from embedkit.backends.sbert import (
    BF16_FLAGS,
    SentenceTransformerEmbedder,
    cpu_flags,
    resolve_precision,
)
from embedkit.errors import EmbedkitWarning

REVIEWS = Path(__file__).resolve().parents[2] / "shared" / "data" / "fine_food_reviews_1k.csv"
SHOWN_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


def review_texts(n: int, path: Path = REVIEWS) -> list[str]:
    """``n`` review texts from the CSV's ``Text`` column, cycled."""
    with open(path, newline="", encoding="utf-8") as fh:
        texts = [row["Text"] for row in csv.DictReader(fh)]
    return list(itertools.islice(itertools.cycle(texts), n))


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return "unknown CPU"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 texts (bf16 is slow without AMX)")
    parser.add_argument("--texts", type=int, default=2_000)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    n = 8 if args.quick else args.texts
    batch = min(args.batch_size, n)
    warm = 2 if args.quick else batch

    import torch

    flags = cpu_flags()
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}")
    print(
        f"torch threads {torch.get_num_threads()}, capability {torch.backends.cpu.get_cpu_capability()}"
    )
    print("flags: " + ", ".join(f"{f} {'yes' if f in flags else 'no'}" for f in SHOWN_FLAGS))
    print(
        f"precision=auto -> {resolve_precision('auto')} "
        f"(bf16 where the CPU lists {' or '.join(sorted(BF16_FLAGS))})"
    )

    texts = review_texts(n)
    results: dict[str, tuple[float, np.ndarray]] = {}
    for precision in ("fp32", "bf16"):
        embedder = SentenceTransformerEmbedder(precision=precision, batch_size=batch)
        with warnings.catch_warnings():  # long reviews are truncated to 256 tokens: by design
            warnings.simplefilter("ignore", EmbedkitWarning)
            embedder.embed(texts[:warm])  # warm-up
            t0 = time.perf_counter()
            vectors = embedder.embed(texts)
            results[precision] = (time.perf_counter() - t0, vectors)

    base_s, base = results["fp32"]
    print(f"\n{n} review texts, batch {batch}, all-MiniLM-L6-v2 through embedkit")
    print(f"{'precision':<10}{'texts/s':>10}{'speed-up':>10}{'cos mean':>11}{'cos min':>10}")
    for precision, (seconds, vectors) in results.items():
        cos = np.sum(base * vectors, axis=1)
        print(
            f"{precision:<10}{n / seconds:>10.1f}{base_s / seconds:>9.2f}x"
            f"{cos.mean():>11.6f}{cos.min():>10.6f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
