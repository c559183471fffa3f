"""sentence-transformers at fp32, bf16, ONNX fp32 and ONNX int8 (``precision=``), side by side.

The same N real texts (the ``Text`` column of the fine-food reviews, cycled; 2,000
by default) go through embedkit's backend once per precision and round, the
precisions interleaved round by round (the machine may be shared: each precision
meets the same noise) after a warm-up each (a process's first batches are 3-4x
slower). Printed: the CPU and its bf16/int8 capability flags, what
``precision=auto`` resolves to here, the threads, then per precision the median
texts/s over the rounds (and each round's), the speed-up over fp32 and the mean/min
cosine of each row to its fp32 vector. ``--pool`` adds sentence-transformers'
multi-process pool (fp32, one worker per core) for comparison.

bf16 pays off only where the CPU has bf16 matrix units (AMX, avx512_bf16); on an
AVX2-only CPU it is emulated and several times slower than fp32: that is why
``auto`` picks fp32 there, and why the ONNX int8 route exists (int8 per-channel,
VNNI where the CPU has it).

    HF_HUB_OFFLINE=1 python benchmarks/bench_precision.py
    HF_HUB_OFFLINE=1 python benchmarks/bench_precision.py --rounds 3 --pool
    HF_HUB_OFFLINE=1 python benchmarks/bench_precision.py --quick
"""

from __future__ import annotations

import argparse
import csv
import itertools
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np

from embedkit.backends.sbert import SentenceTransformerEmbedder
from embedkit.backends.sbert_precision import (
    BF16_FLAGS,
    cpu_flags,
    resolve_precision,
    usable_cores,
)
from embedkit.errors import EmbedkitWarning

REVIEWS = Path(__file__).resolve().parents[2] / "shared" / "data" / "fine_food_reviews_1k.csv"
PRECISIONS_RUN = ("fp32", "bf16", "onnx", "int8")
SHOWN_FLAGS = (
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)


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


def _timed(embed: Callable[[list[str]], np.ndarray], texts: list[str]) -> tuple[float, np.ndarray]:
    with warnings.catch_warnings():  # long reviews are truncated to 256 tokens: by design
        warnings.simplefilter("ignore", EmbedkitWarning)
        t0 = time.perf_counter()
        vectors = embed(texts)
        return time.perf_counter() - t0, np.asarray(vectors, dtype=np.float32)


def _pool_embedder(batch: int) -> tuple[Callable[[list[str]], np.ndarray], Callable[[], None]]:
    """fp32 through sentence-transformers' multi-process pool, one worker per core."""
    model = SentenceTransformerEmbedder(batch_size=batch)._model
    pool = model.start_multi_process_pool(["cpu"] * usable_cores())

    def embed(texts: list[str]) -> np.ndarray:
        out = model.encode(texts, pool=pool, batch_size=batch, normalize_embeddings=True)
        return np.asarray(out, dtype=np.float32)

    return embed, lambda: model.stop_multi_process_pool(pool)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 texts, one round")
    parser.add_argument("--texts", type=int, default=2_000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument("--skip", nargs="*", default=[], choices=PRECISIONS_RUN, help="leave out")
    parser.add_argument("--pool", action="store_true", help="add the multi-process pool (fp32)")
    parser.add_argument("--onnx-dir", default=None, help="export cache (default: embedkit's)")
    args = parser.parse_args(argv)
    n = 8 if args.quick else args.texts
    rounds = 1 if args.quick else max(1, args.rounds)
    batch = min(args.batch_size, n)
    warm = 2 if args.quick else batch

    import onnxruntime
    import torch

    flags = cpu_flags()
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores ({usable_cores()} usable)")
    print(f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}")
    print(
        f"torch threads {torch.get_num_threads()}, capability {torch.backends.cpu.get_cpu_capability()}; "
        f"onnxruntime intra-op threads {usable_cores()}"
    )
    print("flags: " + ", ".join(f"{f} {'yes' if f in flags else 'no'}" for f in SHOWN_FLAGS))
    print(
        f"precision=auto -> {resolve_precision('auto')} "
        f"(bf16 where the CPU lists {' or '.join(sorted(BF16_FLAGS))})"
    )

    texts = review_texts(n)
    runs: dict[str, Callable[[list[str]], np.ndarray]] = {}
    stops: list[Callable[[], None]] = []
    for precision in (p for p in PRECISIONS_RUN if p == "fp32" or p not in args.skip):
        t0 = time.perf_counter()
        model = SentenceTransformerEmbedder(
            precision=precision, batch_size=batch, onnx_dir=args.onnx_dir
        )
        if precision in ("onnx", "int8"):
            print(
                f"{precision}: loaded (export cached or made) in {time.perf_counter() - t0:.1f} s"
            )
        runs[precision] = model.embed
    if args.pool:
        runs["fp32 pool"], stop = _pool_embedder(batch)
        stops.append(stop)
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    vectors: dict[str, np.ndarray] = {}
    try:
        for embed in runs.values():
            _timed(embed, texts[:warm])  # warm-up
        for _ in range(rounds):
            for name, embed in runs.items():
                took, vectors[name] = _timed(embed, texts)
                seconds[name].append(took)
                print(f"  round {len(seconds[name])}: {name} {n / took:.1f} texts/s", flush=True)
    finally:
        for stop in stops:
            stop()

    base_s, base = float(np.median(seconds["fp32"])), vectors["fp32"]
    print(
        f"\n{n} review texts, batch {batch}, all-MiniLM-L6-v2 through embedkit, {rounds} round(s)"
    )
    print(f"{'precision':<11}{'texts/s':>9}{'speed-up':>10}{'cos mean':>11}{'cos min':>10}  rounds")
    for name, took in seconds.items():
        cos = np.sum(base * vectors[name], axis=1)
        median = float(np.median(took))
        each = " ".join(f"{n / t:.0f}" for t in took)
        print(
            f"{name:<11}{n / median:>9.1f}{base_s / median:>9.2f}x"
            f"{cos.mean():>11.6f}{cos.min():>10.6f}  {each}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
