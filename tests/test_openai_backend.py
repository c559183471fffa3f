"""The OpenAI backend against a real local HTTP server, through the official openai client.

Every assertion about what was sent reads the server's own request log.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import embedkit
from embedkit.backends.openai import MODELS, OpenAIEmbedder, tokens
from embedkit.backends.openai.tokens import count_tokens
from embedkit.errors import (
    BackendError,
    BadResponseError,
    ConfigError,
    EmbedkitWarning,
    InvalidInputError,
    TextTooLongError,
    UnknownDimensionError,
)
from embedkit.protocol import TokenLimited
from openai_server import OpenAIServer, expected_matrix, expected_vector

SMALL = "text-embedding-3-small"
Make = Callable[..., OpenAIEmbedder]


@pytest.fixture
def make(openai_server: OpenAIServer) -> Make:
    def build(model: str = SMALL, **options: Any) -> OpenAIEmbedder:
        options.setdefault("backoff", 0.01)
        return OpenAIEmbedder(
            model, base_url=openai_server.base_url, api_key=openai_server.api_key, **options
        )

    return build


def texts(n: int, prefix: str = "review") -> list[str]:
    return [f"{prefix} {i}: the coffee was {'great' if i % 2 else 'bitter'}" for i in range(n)]


def test_rows_land_in_place_with_one_request(openai_server: OpenAIServer, make: Make) -> None:
    items = texts(50)
    out = make().embed(items)
    assert out.dtype == np.float32 and out.shape == (50, 1536)
    np.testing.assert_array_equal(out, expected_matrix(items, SMALL))
    (request,) = openai_server.requests
    assert request.inputs == items and request.model == SMALL
    assert request.encoding_format == "base64" and request.dimensions is None
    assert request.tokens == int(count_tokens(items).sum())


def test_shuffled_response_is_placed_by_index(openai_server: OpenAIServer, make: Make) -> None:
    items = texts(20)
    openai_server.fail_next("shuffle")
    np.testing.assert_array_equal(make().embed(items), expected_matrix(items, SMALL))
    assert openai_server.requests[0].fault == "shuffle"


def test_single_string_and_empty_list(openai_server: OpenAIServer, make: Make) -> None:
    model = make()
    assert model.embed("just one").shape == (1, 1536)
    assert model.embed([]).shape == (0, 1536)
    assert len(openai_server.requests) == 1


def test_tiktoken_runs_only_where_a_text_could_be_too_long(
    openai_server: OpenAIServer, make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    counted: list[str] = []
    real = tokens.count_tokens

    def spy(items: Any, encoding: str = "cl100k_base") -> Any:
        counted.extend(items)
        return real(items, encoding)

    monkeypatch.setattr(tokens, "count_tokens", spy)
    short = texts(200)
    make().embed(short)
    assert counted == []  # UTF-8 length <= 8192 bytes: no text can pass 8192 tokens
    wordy = "word " * 2000  # 10,000 bytes but 2,001 tokens: counted, once, and sent whole
    make().embed([*short, wordy])
    assert counted == [wordy]
    # requests run concurrently, so the one that carries it may not be the last to arrive
    assert next(r.inputs for r in openai_server.requests if wordy in r.inputs)[-1] == wordy
    counted.clear()
    make(tpm=10_000_000).embed([*short, wordy])  # the tokens-per-minute limit needs every count
    assert sorted(counted) == sorted([*short, wordy])  # still once each
    counted.clear()
    model = make(on_long="truncate", max_concurrency=1)
    with pytest.warns(EmbedkitWarning):
        model.embed(["short", LONG])
    assert counted.count(LONG) == 1 and len(counted) == 2  # LONG, then its cut piece
    counted.clear()
    make().estimate([*short, wordy])
    assert counted.count(wordy) == 1


def test_counts_given_by_the_caller_are_not_taken_again(
    openai_server: OpenAIServer, make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = make()
    wordy = "word " * 2000
    counts = model.token_counts(["short", wordy])
    assert counts.tolist() == [-1, 2001]  # the trailing space is a token of its own
    monkeypatch.setattr(tokens, "count_tokens", None)  # any tiktoken run would fail now
    result = model.embed_detailed(["short", wordy], counts=counts)
    assert result.vectors.shape == (2, 1536) and result.long.size == 0
    assert openai_server.requests[-1].inputs == ["short", wordy]


@pytest.mark.parametrize("bad", ["", "   \n", None, math.nan, 42])
def test_bad_inputs_rejected_before_any_request(
    openai_server: OpenAIServer, make: Make, bad: object
) -> None:
    with pytest.raises(InvalidInputError) as info:
        make().embed(["fine", bad, "also fine"])  # type: ignore[list-item]
    assert info.value.positions == [1]
    assert openai_server.requests == []


def test_dimensions_are_sent_and_enforced(openai_server: OpenAIServer, make: Make) -> None:
    model = make(dimensions=256)
    assert model.dim == 256 and model.spec == f"openai:{SMALL}?dimensions=256&on_long=error"
    items = texts(5)
    np.testing.assert_allclose(model.embed(items), expected_matrix(items, SMALL, 256), atol=1e-6)
    assert openai_server.requests[0].dimensions == 256


def test_dimensions_only_for_text_embedding_3(make: Make) -> None:
    with pytest.raises(ConfigError, match="text-embedding-3"):
        make("text-embedding-ada-002", dimensions=256)
    with pytest.raises(ConfigError, match=r"1\.\.3072"):
        make("text-embedding-3-large", dimensions=4000)


def test_known_models_table(make: Make) -> None:
    assert make("text-embedding-3-large").dim == 3072
    assert make("text-embedding-ada-002").max_tokens == 8192
    # the one table, pinned here by value (the test server derives its answers from it)
    facts = {
        name: (m.dim, m.max_tokens, m.encoding, m.flexible_dimensions) for name, m in MODELS.items()
    }
    assert facts == {
        "text-embedding-3-small": (1536, 8192, "cl100k_base", True),
        "text-embedding-3-large": (3072, 8192, "cl100k_base", True),
        "text-embedding-ada-002": (1536, 8192, "cl100k_base", False),
    }
    assert isinstance(make(), TokenLimited)


def test_unknown_model_learns_dim_then_enforces_it(openai_server: OpenAIServer, make: Make) -> None:
    openai_server.models["acme-embed"] = 48
    model = make("acme-embed")
    assert "dim=?" in repr(model) and openai_server.requests == []
    with pytest.raises(UnknownDimensionError, match=r"dimensions=N.*dim=N.*embed once") as info:
        model.dim  # noqa: B018 -- never a request: dim does no I/O
    assert isinstance(info.value, ConfigError) and openai_server.requests == []
    items = texts(3)
    np.testing.assert_allclose(
        model.embed(items), expected_matrix(items, "acme-embed", dim=48), atol=1e-6
    )
    assert model.dim == 48 and "dim=48" in repr(model)
    assert [r.inputs for r in openai_server.requests] == [items]  # no probe request
    assert model.spec == "openai:acme-embed?on_long=error"  # a learned width is not identity
    openai_server.fail_next("wrong_dim")
    with pytest.raises(BadResponseError, match="48"):
        model.embed(items)


def test_declared_dim_is_not_sent_and_is_verified(openai_server: OpenAIServer, make: Make) -> None:
    openai_server.models["acme-embed"] = 48
    model = make("acme-embed", dim=48)
    assert model.dim == 48 and openai_server.requests == []  # known before any call
    assert model.spec == "openai:acme-embed?dim=48&on_long=error"
    assert model.embed([]).shape == (0, 48)
    items = texts(3)
    np.testing.assert_allclose(
        model.embed(items), expected_matrix(items, "acme-embed", dim=48), atol=1e-6
    )
    (request,) = openai_server.requests
    assert request.dimensions is None  # a server that rejects `dimensions` never sees it
    wrong = make("acme-embed", dim=64)
    with pytest.raises(BadResponseError, match="expected 64 dimensions, got 48"):
        wrong.embed(items)
    assert wrong.dim == 64  # a failed check teaches nothing
    sized = make("acme-embed", dimensions=16)
    assert sized.dim == 16 and sized.spec == "openai:acme-embed?dimensions=16&on_long=error"
    sized.embed(items)
    assert openai_server.requests[-1].dimensions == 16


def test_declared_dim_on_known_models(make: Make) -> None:
    assert make(dim=1536).spec == make().spec  # the table already says so: not in the spec
    assert make(dimensions=256, dim=256).spec == make(dimensions=256).spec
    with pytest.raises(ConfigError, match="contradicts"):
        make(dim=512)
    with pytest.raises(ConfigError, match="contradicts"):
        make(dimensions=256, dim=512)


def test_unknown_width_and_empty_input(openai_server: OpenAIServer, make: Make) -> None:
    openai_server.models["acme-embed"] = 48
    with pytest.raises(UnknownDimensionError):  # (0, dim) needs a dim: say so, send nothing
        make("acme-embed").embed([])
    assert openai_server.requests == []


def test_unknown_model_on_server_is_not_retried(openai_server: OpenAIServer, make: Make) -> None:
    with pytest.raises(BackendError, match="404"):
        make("no-such-model").embed(["a"])
    assert len(openai_server.requests) == 1


def test_float_encoding_for_servers_without_base64(openai_server: OpenAIServer, make: Make) -> None:
    openai_server.reject_base64 = True
    with pytest.raises(BackendError, match="400"):
        make().embed(["a"])
    items = texts(4)
    np.testing.assert_array_equal(
        make(encoding_format="float").embed(items), expected_matrix(items, SMALL)
    )
    assert [r.encoding_format for r in openai_server.requests] == ["base64", "float"]


def test_server_answering_floats_to_a_base64_request(
    openai_server: OpenAIServer, make: Make
) -> None:
    openai_server.float_only = True
    items = texts(3)
    np.testing.assert_array_equal(make().embed(items), expected_matrix(items, SMALL))


LONG = "word " * 9000  # 9000 tokens in cl100k_base: over the 8192 limit


def test_on_long_error_names_rows_before_any_request(
    openai_server: OpenAIServer, make: Make
) -> None:
    model = make()
    for call in (model.embed, model.estimate):
        with pytest.raises(TextTooLongError) as info:
            call(["short", LONG, "short", LONG + "more"])
        assert info.value.positions == [1, 3]
        assert f"{count_tokens(LONG).item()} tokens" in str(info.value)
    assert openai_server.requests == []


def test_on_long_truncate_sends_the_first_8192_tokens(
    openai_server: OpenAIServer, make: Make
) -> None:
    model = make(on_long="truncate", max_concurrency=1)
    with pytest.warns(EmbedkitWarning, match="1 of 2"):
        out = model.embed(["short", LONG])
    sent = openai_server.requests[0].inputs
    assert sent[0] == "short" and LONG.startswith(sent[1])
    assert count_tokens(sent[1]).item() == 8192
    np.testing.assert_array_equal(out, expected_matrix(sent, SMALL))


def test_on_long_chunk_is_token_weighted_mean(openai_server: OpenAIServer, make: Make) -> None:
    long_text = " ".join(f"w{i}" for i in range(12000))  # ~ 24,000 tokens: 3 pieces
    model = make(on_long="chunk", dimensions=64, max_concurrency=1)
    assert model.spec == f"openai:{SMALL}?dimensions=64&on_long=chunk"
    out = model.embed(["short", long_text])
    sent = [t for r in openai_server.requests for t in r.inputs]
    pieces = sent[1:]
    assert sent[0] == "short" and len(pieces) >= 3 and "".join(pieces) == long_text
    sizes = count_tokens(pieces)
    assert sizes.max() <= 8192
    mean = (expected_matrix(pieces, SMALL, 64) * sizes[:, None]).sum(axis=0)
    np.testing.assert_allclose(out[1], mean / np.linalg.norm(mean), atol=1e-5)
    np.testing.assert_allclose(out[0], expected_vector("short", SMALL, 64), atol=1e-6)


def test_requests_obey_input_and_token_limits(openai_server: OpenAIServer, make: Make) -> None:
    model = make(max_concurrency=1)
    model.embed(texts(5000))
    assert [len(r.inputs) for r in openai_server.requests] == [2048, 2048, 904]
    openai_server.reset()
    big = [f"{i} " + "token " * 5000 for i in range(130)]  # ~ 5000 tokens each, 650k in all
    out = model.embed(big)
    np.testing.assert_array_equal(out, expected_matrix(big, SMALL))
    logged = openai_server.requests
    assert all(r.status == 200 and r.tokens <= 300_000 for r in logged)
    assert len(logged) == 3 and [t for r in logged for t in r.inputs] == big


def test_estimate_is_what_embed_spends(openai_server: OpenAIServer, make: Make) -> None:
    items = [*texts(3000), "token " * 8000]
    model = make()
    estimate = model.estimate(items)
    assert openai_server.requests == []
    model.embed(items)
    logged = openai_server.requests
    assert estimate.requests == len(logged) and estimate.tokens == sum(r.tokens for r in logged)
    assert estimate.cost_usd == pytest.approx(estimate.tokens / 1e6 * 0.02)
    assert model.stats.prompt_tokens == estimate.tokens
    chunked = make(on_long="chunk").estimate(["x " * 20000, "y"])
    assert chunked.long_rows == (0,) and chunked.inputs == 4 and chunked.texts == 2
    assert make("acme").estimate(["a"]).cost_usd is None


def test_concurrency_overlaps_requests_and_keeps_order(
    openai_server: OpenAIServer, make: Make
) -> None:
    openai_server.latency = 0.2
    items = texts(800)
    openai_server.fail_next("shuffle", times=2)
    out = make(max_concurrency=4, dimensions=32).embed(items)
    np.testing.assert_allclose(out, expected_matrix(items, SMALL, 32), atol=1e-6)
    logged = openai_server.requests
    assert len(logged) == 4 and _max_overlap(logged) == 4  # all four in flight at once
    openai_server.reset()
    make(max_concurrency=1, dimensions=32).embed(items)
    assert _max_overlap(openai_server.requests) == 1


def _max_overlap(logged: list[Any]) -> int:
    events = sorted([(r.started, 1) for r in logged] + [(r.finished, -1) for r in logged])
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak


def test_tokens_per_minute_limit_holds_requests_back(
    openai_server: OpenAIServer, make: Make
) -> None:
    items = [f"{i} " + "token " * 500 for i in range(12)]  # ~ 6,000 tokens in all
    total = int(count_tokens(items).sum())
    model = make(tpm=total - 60, max_concurrency=4)  # 1 tpm = 1/60 token per second
    started = time.monotonic()
    model.embed(items)
    assert time.monotonic() - started >= 0.5  # the last batch waits for ~60 tokens to refill
    assert all(r.status == 200 for r in openai_server.requests)


def test_spec_and_registry(openai_env: OpenAIServer) -> None:
    model = embedkit.load(f"openai:{SMALL}?dimensions=64&on_long=truncate")
    assert isinstance(model, OpenAIEmbedder)
    assert embedkit.load(model.spec).spec == model.spec
    assert model.embed(["a", "b"]).shape == (2, 64)
    same = embedkit.load({"backend": "openai", "model": SMALL, "dimensions": 64, "timeout": 5})
    assert same.spec == f"openai:{SMALL}?dimensions=64&on_long=error"
    assert openai_env.requests[0].authorization == f"Bearer {openai_env.api_key}"


def test_missing_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        OpenAIEmbedder(SMALL)


@pytest.mark.parametrize(
    "options",
    [
        {"timeout": 0},
        {"max_concurrency": 0},
        {"max_retries": -1},
        {"max_retries": 1.5},
        {"deadline": -1},
        {"encoding_format": "hex"},
        {"on_long": "drop"},
        {"tokenizer": "o200k_base"},
        {"max_input_tokens": 9000},
        {"rpm": 0},
        {"dimensions": 0},
        {"dimensions": True},
    ],
)
def test_bad_options_are_config_errors(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        OpenAIEmbedder(SMALL, api_key="sk-unused", **options)


def test_unknown_model_options_enter_the_spec() -> None:
    model = OpenAIEmbedder("local", api_key="x", tokenizer="o200k_base", max_input_tokens=512)
    assert model.spec == "openai:local?max_input_tokens=512&on_long=error&tokenizer=o200k_base"
    assert model.max_tokens == 512 and model.count_tokens(["hello world"]).tolist() == [2]
