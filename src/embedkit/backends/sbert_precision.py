"""``precision`` and ``threads`` of the sentence-transformers backend: values, CPU rule, cores.

``precision`` (recorded in the spec unless fp32, because every value but fp32 moves
the vectors a little):

====== ==================================================== ===========================
value  how the model runs                                   cosine to fp32 (MiniLM)
====== ==================================================== ===========================
fp32   PyTorch, float32 (the default)                       1
bf16   PyTorch under ``torch.autocast(dtype=bfloat16)``     >= 0.9999
onnx   the transformer exported once to ONNX, onnxruntime   >= 0.99999
int8   that export, int8 per-channel dynamic quantization   mean >= 0.99, min >= 0.95
auto   bf16 where the CPU has bf16 matrix units, else fp32  (the spec records which)
====== ==================================================== ===========================

``auto`` picks only among the near-lossless values: int8 moves the vectors to a
cosine of about 0.99 and is chosen explicitly, never by ``auto``.

``threads``: how many threads a model runs on; ``None`` means every core this
process may use (``os.sched_getaffinity``). onnxruntime's intra-op pool takes it per
session; for PyTorch it is ``torch.set_num_threads``, process-wide, so it is set only
when asked for explicitly (PyTorch's own default is already every core).
"""

from __future__ import annotations

import os
from functools import lru_cache

from embedkit.errors import ConfigError

__all__ = [
    "BF16_FLAGS",
    "ONNX_PRECISIONS",
    "PRECISIONS",
    "check_threads",
    "cpu_flags",
    "resolve_precision",
    "usable_cores",
]

PRECISIONS = ("fp32", "bf16", "onnx", "int8", "auto")
ONNX_PRECISIONS = ("onnx", "int8")  # run by embedkit.backends.sbert_onnx
BF16_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})  # fast bf16 matrix units (x86 flags)


@lru_cache(maxsize=4)
def cpu_flags(path: str = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags as the kernel lists them; empty where it cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith(("flags", "Features")):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def resolve_precision(
    precision: object, device: str = "cpu", flags: frozenset[str] | None = None
) -> str:
    """One of :data:`PRECISIONS` but ``auto``: ``precision`` itself, or for ``"auto"``
    bf16 only on a CPU with :data:`BF16_FLAGS` (``flags``: those of this machine's CPU
    unless given), else fp32; on other devices ``auto`` is fp32. The ONNX values run on
    the CPU only: asked for with another device, a :class:`ConfigError`."""
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    on_cpu = device.startswith("cpu")
    if precision in ONNX_PRECISIONS and not on_cpu:
        raise ConfigError(f"precision={precision} runs on the CPU only, not on device {device!r}")
    if precision != "auto":
        return precision
    if not on_cpu:
        return "fp32"
    return "bf16" if (cpu_flags() if flags is None else flags) & BF16_FLAGS else "fp32"


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no sched_getaffinity (macOS, Windows)
        return max(1, os.cpu_count() or 1)


def check_threads(threads: object) -> int | None:
    """``threads`` as given (a positive int) or ``None``; anything else a ConfigError."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"threads must be a positive integer or None, got {threads!r}")
    return threads
