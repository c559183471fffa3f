"""The request planner (property-based), the shared rate limiter and the price table."""

from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embedkit.backends.openai.models import MODELS, PRICES_AS_OF
from embedkit.backends.openai.plan import (
    Estimate,
    RateLimiter,
    plan_requests,
)
from embedkit.errors import ConfigError, TextTooLongError

costs_strategy = st.lists(
    st.one_of(st.integers(1, 8192), st.integers(1, 40), st.sampled_from([8192, 8191, 1])),
    max_size=3000,
)


def _check_plan(costs: list[int], batches: list[range], max_inputs: int, max_tokens: int) -> None:
    assert [i for b in batches for i in b] == list(range(len(costs)))  # order, each once
    for b in batches:
        assert 1 <= len(b) <= max_inputs
        assert sum(costs[i] for i in b) <= max_tokens


@settings(max_examples=60, deadline=None)
@given(costs_strategy)
def test_plan_respects_openai_limits(costs: list[int]) -> None:
    batches = plan_requests(costs)
    _check_plan(costs, batches, 2048, 300_000)
    # Greedy: no batch could have taken the next text without breaking a limit.
    for b, nxt in itertools.pairwise(batches):
        grown = sum(costs[i] for i in b) + costs[nxt.start]
        assert len(b) == 2048 or grown > 300_000


@settings(max_examples=60, deadline=None)
@given(
    costs_strategy,
    st.integers(1, 64),
    st.integers(8192, 40_000),
    st.integers(1, 16),
)
def test_plan_with_small_budgets_and_parallelism(
    costs: list[int], max_inputs: int, max_tokens: int, parallelism: int
) -> None:
    batches = plan_requests(
        costs, max_inputs=max_inputs, max_tokens=max_tokens, parallelism=parallelism, min_split=1
    )
    _check_plan(costs, batches, max_inputs, max_tokens)
    assert len(batches) >= min(parallelism, len(costs))


def test_batch_size_comes_from_the_token_budget() -> None:
    assert [len(b) for b in plan_requests([1] * 5000)] == [2048, 2048, 904]
    assert {len(b) for b in plan_requests([8192] * 100)} == {36, 100 - 2 * 36}
    assert [len(b) for b in plan_requests([1000] * 900)] == [300, 300, 300]


def test_parallelism_splits_evenly() -> None:
    assert [len(b) for b in plan_requests([10] * 1000, parallelism=4, min_split=1)] == [250] * 4
    assert len(plan_requests([5, 5], parallelism=8, min_split=1)) == 2
    assert len(plan_requests([10] * 1000, parallelism=8)) == 3  # >= 4096 tokens per part
    assert len(plan_requests([5, 5], parallelism=8)) == 1


def test_over_long_rows_are_named() -> None:
    with pytest.raises(TextTooLongError) as info:
        plan_requests([5, 9000, 3, 8193])
    assert info.value.positions == [1, 3]
    with pytest.raises(ConfigError):
        plan_requests([1], max_input_tokens=10, max_tokens=5)
    assert plan_requests([]) == []


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_rate_limiter_requests_per_minute() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rpm=60, clock=clock)
    assert all(limiter.try_acquire(0) == 0.0 for _ in range(60))  # a minute's burst
    assert limiter.try_acquire(0) == pytest.approx(1.0)  # then one per second
    clock.now += 0.5
    assert limiter.try_acquire(0) == pytest.approx(0.5)
    clock.now += 0.5
    assert limiter.try_acquire(0) == 0.0


def test_rate_limiter_tokens_per_minute_and_pause() -> None:
    clock = FakeClock()
    limiter = RateLimiter(tpm=6000, clock=clock)
    assert limiter.try_acquire(5000) == 0.0
    assert limiter.try_acquire(2000) == pytest.approx(10.0)  # 1000 short at 100 tokens/s
    assert limiter.try_acquire(9000) == pytest.approx(50.0)  # capped at one minute's allowance
    clock.now += 50
    assert limiter.try_acquire(9000) == 0.0  # paid in full: the bucket goes into debt
    assert limiter.try_acquire(1) == pytest.approx(30.01)
    limiter.pause_until(clock.now + 100)
    assert limiter.wait_time(0) == pytest.approx(100)


def test_rate_limiter_is_shared_by_threads() -> None:
    limiter = RateLimiter(rpm=600)
    paid: list[bool] = []

    def worker() -> None:
        for _ in range(100):
            paid.append(limiter.try_acquire(0) == 0.0)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 600 <= sum(paid) <= 602  # the burst, plus what refilled while running
    stop = threading.Event()
    stop.set()
    assert limiter.acquire(0, stop) is False  # a stopped wait returns at once


def test_rate_limiter_rejects_bad_limits() -> None:
    with pytest.raises(ConfigError):
        RateLimiter(rpm=0)
    with pytest.raises(ConfigError):
        RateLimiter(tpm=1.5)  # type: ignore[arg-type]


def test_price_table_is_dated() -> None:
    assert PRICES_AS_OF[:4].isdigit()
    assert MODELS["text-embedding-3-small"].usd_per_million_tokens == 0.02
    est = Estimate("m", 3, 3, 1_000_000, 1, 0.02, 0.02, PRICES_AS_OF, ())
    assert "$0.0200" in str(est) and "1 requests" in str(est)
    assert np.isclose(est.cost_usd or 0, 0.02)
