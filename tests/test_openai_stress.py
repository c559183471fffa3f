"""10,000 real review texts through a server that keeps failing: every row right, nothing paid twice."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from embedkit.backends.openai import OpenAIEmbedder
from openai_server import OpenAIServer, expected_matrix

SMALL = "text-embedding-3-small"


def ten_thousand_reviews(reviews_csv: Path) -> list[str]:
    with reviews_csv.open(newline="", encoding="utf-8") as f:
        reviews = [row["Text"] for row in csv.DictReader(f)]
    return [f"{reviews[i % len(reviews)]} (text {i})" for i in range(10_000)]


@pytest.mark.slow
def test_ten_thousand_texts_through_transient_failures(
    openai_server: OpenAIServer, reviews_csv: Path
) -> None:
    texts = ten_thousand_reviews(reviews_csv)
    openai_server.fail_next("hang", seconds=3.5)  # the first request hangs past the timeout
    openai_server.fail_next("server_error", status=503)
    openai_server.fail_next("drop")
    openai_server.fail_next("rate_limit", retry_after_ms=20)
    openai_server.chaos(0.25, ["rate_limit", "server_error", "drop"], seed=7, retry_after_ms=20)
    model = OpenAIEmbedder(
        SMALL,
        api_key=openai_server.api_key,
        base_url=openai_server.base_url,
        max_concurrency=8,
        max_retries=12,
        timeout=3.0,  # generous: a slow but healthy answer must not be abandoned (paid twice)
        backoff=0.02,
    )
    out = model.embed(texts)

    np.testing.assert_array_equal(out, expected_matrix(texts, SMALL))
    openai_server.wait_idle()  # the hung request ends (dropped) before the log is read
    logged = openai_server.requests
    ok = [r for r in logged if r.status == 200]
    failed = [r for r in logged if r.status != 200]
    assert {r.fault for r in failed} == {"rate_limit", "server_error", "drop", "hang"}
    sent_ok = Counter(t for r in ok for t in r.inputs)
    assert len(sent_ok) == 10_000 and set(sent_ok.values()) == {1}  # each text paid once
    assert sorted(t for r in ok for t in r.inputs) == sorted(texts)
    assert len(ok) <= 20  # 500x fewer requests than one per row
    assert model.stats.retries == len(failed)
