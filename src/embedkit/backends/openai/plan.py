"""Request planning for the OpenAI backend: batches, rate limits, prices.

``plan_requests(costs, ...)`` cuts texts ``0..n-1`` into contiguous batches, in
order, each text in exactly one batch, such that for every batch ``b``::

    len(b) <= max_inputs                      (OpenAI: 2048 inputs per request)
    sum(costs[i] for i in b) <= max_tokens    (OpenAI: 300,000 tokens per request)
    costs[i] <= max_input_tokens              (OpenAI: 8192 tokens per input)

``costs[i]`` is the token count of text i or any upper bound of it (the
backend uses the UTF-8 byte length, which no tiktoken count exceeds, and counts
exactly only where that bound could break a limit). Batches are filled greedily
up to the budget; with ``parallelism=p`` the budget is also capped at
``ceil(total / p)`` tokens and ``ceil(n / p)`` inputs so that ``p`` workers all
get work.

:class:`RateLimiter` is a pair of token buckets (requests and tokens per minute)
shared by every worker thread; a 429's ``Retry-After`` pauses all of them.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from embedkit.errors import ConfigError, TextTooLongError

__all__ = [
    "MAX_INPUTS_PER_REQUEST",
    "MAX_TOKENS_PER_REQUEST",
    "Estimate",
    "RateLimiter",
    "plan_requests",
]

MAX_INPUTS_PER_REQUEST = 2048
MAX_TOKENS_PER_REQUEST = 300_000


def plan_requests(
    costs: Sequence[int] | NDArray[np.integer],
    *,
    max_inputs: int = MAX_INPUTS_PER_REQUEST,
    max_tokens: int = MAX_TOKENS_PER_REQUEST,
    max_input_tokens: int = 8192,
    parallelism: int = 1,
    min_split: int = 4096,
) -> list[range]:
    """Contiguous batches ``[range(0, a), range(a, b), ...]`` covering ``range(len(costs))``.

    Raises :class:`TextTooLongError` naming every row with ``costs[i] > max_input_tokens``.
    """
    if min(max_inputs, max_tokens, max_input_tokens, parallelism, min_split) < 1:
        raise ConfigError("request limits and parallelism must be positive")
    if max_input_tokens > max_tokens:
        raise ConfigError(
            f"max_input_tokens ({max_input_tokens}) exceeds the request budget ({max_tokens})"
        )
    cost = np.asarray(costs, dtype=np.int64).reshape(-1)
    over = np.flatnonzero(cost > max_input_tokens)
    if over.size:
        raise TextTooLongError(
            f"{over.size} inputs exceed {max_input_tokens} tokens",
            [(int(i), f"{int(cost[i])} tokens") for i in over],
        )
    if cost.size == 0:
        return []
    batches = _greedy(cost, 0, cost.size, max_inputs, max_tokens)
    if len(batches) >= parallelism:
        return batches
    # Fewer batches than workers: first cut into `parts` runs of about equal total cost.
    parts = min(parallelism, cost.size, math.ceil(int(cost.sum()) / min_split))
    if parts <= len(batches):
        return batches
    ends = np.cumsum(cost)
    targets = ends[-1] * np.arange(1, parts) / parts
    cuts = [0]
    for k, raw in enumerate(np.searchsorted(ends, targets, side="right").tolist(), 1):
        cuts.append(min(max(raw, cuts[-1] + 1), cost.size - parts + k))
    cuts.append(cost.size)
    return [
        batch
        for start, stop in itertools.pairwise(cuts)
        for batch in _greedy(cost, start, stop, max_inputs, max_tokens)
    ]


def _greedy(
    cost: NDArray[np.int64], start: int, stop: int, max_inputs: int, max_tokens: int
) -> list[range]:
    """Fill batches in order from ``cost[start:stop]``, each as full as the limits allow."""
    ends = np.cumsum(cost[start:stop])  # ends[i] = cost[start] + ... + cost[start + i]
    batches: list[range] = []
    i = 0
    while i < ends.size:
        before = int(ends[i - 1]) if i else 0
        j = int(np.searchsorted(ends, before + max_tokens, side="right"))
        j = max(i + 1, min(j, i + max_inputs))
        batches.append(range(start + i, start + j))
        i = j
    return batches


@dataclass(frozen=True)
class Estimate:
    """What ``embed(texts)`` would send, computed without sending anything.

    ``tokens`` is exact (tiktoken), after the ``on_long`` policy; ``cost_usd`` is
    ``tokens / 1e6 * price_per_million_usd`` (``None`` for a model without a price);
    ``long_rows`` are the rows over the model's limit (truncated or chunked).
    """

    model: str
    texts: int
    inputs: int
    tokens: int
    requests: int
    cost_usd: float | None
    price_per_million_usd: float | None
    prices_as_of: str
    long_rows: tuple[int, ...]

    def __str__(self) -> str:
        cost = "unknown" if self.cost_usd is None else f"${self.cost_usd:.4f}"
        return (
            f"{self.model}: {self.texts} texts -> {self.requests} requests, "
            f"{self.tokens} tokens, cost {cost} (prices as of {self.prices_as_of}), "
            f"{len(self.long_rows)} over-long rows"
        )


class RateLimiter:
    """Requests-per-minute and tokens-per-minute buckets shared by threads.

    Each bucket holds at most one minute's allowance and refills continuously at
    ``limit / 60`` per second. ``acquire(tokens)`` blocks until no pause is in
    force and both buckets hold at least ``min(cost, limit)``, then pays the full
    cost (a bucket may go negative: a request larger than the allowance delays
    the next ones), so over any long run the rates stay within the limits.
    ``None`` disables a bucket.
    """

    def __init__(
        self,
        rpm: int | None = None,
        tpm: int | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for name, value in (("rpm", rpm), ("tpm", tpm)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"{name} must be a positive integer or None, got {value!r}")
        self.rpm = rpm
        self.tpm = tpm
        self._clock = clock
        self._lock = threading.Lock()
        self._requests = float(rpm or 0)
        self._tokens = float(tpm or 0)
        self._updated = clock()
        self._paused_until = -math.inf

    def pause_until(self, when: float) -> None:
        """Hold every ``acquire`` until ``clock() >= when`` (e.g. a 429's Retry-After)."""
        with self._lock:
            self._paused_until = max(self._paused_until, when)

    def wait_time(self, tokens: int) -> float:
        """Seconds until ``acquire(tokens)`` could pay, 0.0 if it could now."""
        with self._lock:
            return self._wait_locked(tokens)

    def try_acquire(self, tokens: int) -> float:
        """Pay and return 0.0 if allowed now; else pay nothing and return the wait."""
        with self._lock:
            wait = self._wait_locked(tokens)
            if wait == 0.0:
                self._requests -= 1 if self.rpm else 0
                self._tokens -= tokens if self.tpm else 0
            return wait

    def acquire(self, tokens: int, stop: threading.Event | None = None) -> bool:
        """Block until paid; ``False`` if ``stop`` was set while waiting."""
        stop = stop or threading.Event()
        while (wait := self.try_acquire(tokens)) > 0:
            if stop.wait(wait):
                return False
        return True

    def _wait_locked(self, tokens: int) -> float:
        now = self._clock()
        elapsed = max(0.0, now - self._updated)
        self._updated = now
        wait = max(0.0, self._paused_until - now)
        if self.rpm:
            self._requests = min(float(self.rpm), self._requests + elapsed * self.rpm / 60)
            wait = max(wait, (1 - self._requests) * 60 / self.rpm)
        if self.tpm:
            need = min(tokens, self.tpm)
            self._tokens = min(float(self.tpm), self._tokens + elapsed * self.tpm / 60)
            wait = max(wait, (need - self._tokens) * 60 / self.tpm)
        return wait if wait > 1e-9 else 0.0
