"""Retries, failures and secrets: the OpenAI backend against a misbehaving local server."""

from __future__ import annotations

import json
import logging
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import embedkit
from embedkit.backends.openai import OpenAIEmbedder
from embedkit.errors import BackendError, BadResponseError, QuotaExceededError
from openai_server import OpenAIServer, expected_matrix

SMALL = "text-embedding-3-small"
ITEMS = [f"text number {i}" for i in range(6)]
Make = Callable[..., OpenAIEmbedder]


@pytest.fixture
def make(openai_server: OpenAIServer) -> Make:
    def build(**options: Any) -> OpenAIEmbedder:
        options.setdefault("backoff", 0.01)
        options.setdefault("dimensions", 16)
        return OpenAIEmbedder(
            SMALL, base_url=openai_server.base_url, api_key=openai_server.api_key, **options
        )

    return build


def statuses(server: OpenAIServer) -> list[int]:
    return [r.status for r in server.requests]


def assert_correct(out: np.ndarray, server: OpenAIServer) -> None:
    np.testing.assert_allclose(out, expected_matrix(ITEMS, SMALL, 16), atol=1e-6)
    assert all(r.inputs == ITEMS for r in server.requests)  # the same batch, resent


def test_429_honours_retry_after(openai_server: OpenAIServer, make: Make) -> None:
    openai_server.fail_next("rate_limit", retry_after=0.4)
    model = make()
    started = time.monotonic()
    out = model.embed(ITEMS)
    assert time.monotonic() - started >= 0.4
    assert statuses(openai_server) == [429, 200]
    assert_correct(out, openai_server)
    assert model.stats.requests == 2 and model.stats.retries == 1


def test_retry_after_ms_wins_over_retry_after(openai_server: OpenAIServer, make: Make) -> None:
    openai_server.fail_next("rate_limit", retry_after=30, retry_after_ms=150)
    started = time.monotonic()
    make().embed(ITEMS)
    assert 0.15 <= time.monotonic() - started < 5
    assert statuses(openai_server) == [429, 200]


@pytest.mark.parametrize("status", [500, 502, 503, 408, 409])
def test_transient_statuses_are_retried(
    openai_server: OpenAIServer, make: Make, status: int
) -> None:
    openai_server.fail_next("server_error", times=2, status=status)
    assert_correct(make().embed(ITEMS), openai_server)
    assert statuses(openai_server) == [status, status, 200]


@pytest.mark.parametrize("status", [400, 403, 422])
def test_other_4xx_fail_at_once(openai_server: OpenAIServer, make: Make, status: int) -> None:
    openai_server.fail_next("bad_request", status=status)
    with pytest.raises(BackendError, match=f"HTTP {status}") as info:
        make().embed(ITEMS)
    assert "rows 0-5" in str(info.value)
    assert statuses(openai_server) == [status]


def test_insufficient_quota_is_not_a_rate_limit(openai_server: OpenAIServer, make: Make) -> None:
    openai_server.fail_next("insufficient_quota")
    with pytest.raises(QuotaExceededError, match="quota"):
        make(max_retries=5).embed(ITEMS)
    assert statuses(openai_server) == [429]


def test_hang_past_timeout_is_retried(openai_server: OpenAIServer, make: Make) -> None:
    openai_server.fail_next("hang", seconds=8)
    started = time.monotonic()
    out = make(timeout=0.3).embed(ITEMS)
    assert time.monotonic() - started < 5  # did not wait the 8 s for the hung request
    assert_correct(out, openai_server)
    assert [r.fault for r in openai_server.requests] == ["hang", None]


def test_dropped_connection_is_retried(openai_server: OpenAIServer, make: Make) -> None:
    openai_server.fail_next("drop")
    assert_correct(make().embed(ITEMS), openai_server)
    assert statuses(openai_server) == [0, 200]


def test_gives_up_after_max_retries(openai_server: OpenAIServer, make: Make) -> None:
    openai_server.fail_next("server_error", times=5, status=503)
    with pytest.raises(BackendError, match="gave up after 3 attempts") as info:
        make(max_retries=2).embed(ITEMS)
    assert "HTTP 503" in str(info.value)
    assert statuses(openai_server) == [503, 503, 503]


def test_stops_on_the_deadline(openai_server: OpenAIServer, make: Make) -> None:
    openai_server.fail_next("rate_limit", times=3, retry_after=60)
    started = time.monotonic()
    with pytest.raises(BackendError, match="deadline"):
        make(deadline=1.0).embed(ITEMS)
    assert time.monotonic() - started < 20  # a 60 s wait would pass it: give up now
    assert statuses(openai_server) == [429]


def test_rate_limit_pause_is_shared_by_all_threads(openai_server: OpenAIServer, make: Make) -> None:
    model = make(max_concurrency=1)
    openai_server.latency = 0.02
    openai_server.fail_next("rate_limit", retry_after=0.5)

    def worker(k: int) -> None:
        for j in range(12):
            model.embed([f"thread {k} call {j}"])

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    logged = openai_server.requests
    assert len(logged) == 49 and statuses(openai_server).count(429) == 1
    pause = next(r for r in logged if r.status == 429).finished
    # Requests already on their way may land just after the 429; then all threads hold off.
    assert not [r for r in logged if pause + 0.1 <= r.started < pause + 0.45]
    assert [r for r in logged if r.started >= pause + 0.45]


@pytest.mark.parametrize("fault", ["missing", "duplicate", "nan", "zero", "wrong_dim"])
def test_bad_responses_are_typed_errors_never_retried(
    openai_server: OpenAIServer, make: Make, fault: str
) -> None:
    openai_server.fail_next(fault)
    with pytest.raises(BadResponseError, match="rows 0-5"):
        make().embed(ITEMS)
    assert statuses(openai_server) == [200]  # the server billed it: retrying would pay twice


def test_one_failed_batch_stops_the_others(openai_server: OpenAIServer, make: Make) -> None:
    items = [f"item {i} " + "x " * 400 for i in range(80)]
    openai_server.latency = 0.05
    openai_server.fail_next("insufficient_quota")
    with pytest.raises(QuotaExceededError):
        make(max_concurrency=2).embed(items)
    assert len(openai_server.requests) <= 3  # the failure, the one in flight, at most one more


SENTINEL = "sk-SENTINEL-0123456789abcdef-never-show-me"


def test_api_key_never_leaks(
    openai_server: OpenAIServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    openai_server.api_key = SENTINEL
    caplog.set_level(logging.DEBUG)
    model = OpenAIEmbedder(SMALL, api_key=SENTINEL, base_url=openai_server.base_url, backoff=0)
    openai_server.fail_next("rate_limit", retry_after=0)
    index = embedkit.VectorIndex.from_vectors(model.embed(ITEMS), spec=model.spec)
    folder = index.save(tmp_path / "index")
    shown = [model.spec, repr(model), str(model), json.dumps({"spec": model.spec})]
    shown += [p.read_text("utf-8", "replace") for p in folder.rglob("*") if p.is_file()]
    openai_server.fail_next("bad_request")
    with pytest.raises(BackendError) as bad:
        model.embed(ITEMS)
    wrong = OpenAIEmbedder(SMALL, api_key=SENTINEL + "x", base_url=openai_server.base_url)
    with pytest.raises(BackendError, match="401") as unauthorised:
        wrong.embed(ITEMS)
    for info in (bad, unauthorised):
        shown += ["".join(traceback.format_exception(info.value)), repr(info.value)]
    shown += [record.getMessage() for record in caplog.records]
    assert caplog.records  # the client did log at DEBUG
    assert all(SENTINEL not in text for text in shown)
    assert openai_server.requests[0].authorization == f"Bearer {SENTINEL}"  # it was sent


def test_key_echoed_by_a_server_is_scrubbed(openai_server: OpenAIServer) -> None:
    openai_server.api_key = SENTINEL
    model = OpenAIEmbedder(SMALL, api_key=SENTINEL, base_url=openai_server.base_url)
    openai_server.fail_next("bad_request", message=f"the key {SENTINEL} is not allowed here")
    with pytest.raises(BackendError) as info:
        model.embed(ITEMS)
    assert SENTINEL not in str(info.value) and "the key *** is not allowed" in str(info.value)


def test_retry_after_header_forms() -> None:
    from email.utils import formatdate

    from embedkit.backends.openai.wire import parse_retry_after

    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after": "1.5"}) == 1.5
    in_ten = parse_retry_after({"retry-after": formatdate(time.time() + 10, usegmt=True)})
    assert in_ten is not None and 8 <= in_ten <= 10
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"data": 3}',
        b'{"data": [{"index": 0}]}',
        b'{"data": [{"index": 0, "embedding": "@@"}]}',
    ],
)
def test_unreadable_bodies_are_bad_responses(body: bytes) -> None:
    from embedkit.backends.openai.wire import decode_embeddings

    with pytest.raises(BadResponseError, match="rows 0-0"):
        decode_embeddings(body, 1, None, "rows 0-0")
