"""A real OpenAI-compatible embeddings server for tests: HTTP on 127.0.0.1, ephemeral port.

It speaks ``POST /v1/embeddings`` as OpenAI does (float and base64 output,
``dimensions`` for text-embedding-3 models, ``usage``), enforces OpenAI's limits
with HTTP 400 (empty input, > 2048 inputs, an input > 8192 tokens, > 300,000
tokens per request, ``dimensions`` on a model without it), answers 401 to a
wrong key and 404 to an unknown model, and misbehaves on request.

Pytest fixtures (``pytest_plugins = ["openai_server"]`` in conftest.py, or
``pytest -p openai_server``)::

    def test_retry(openai_server):                 # a fresh server per test
        model = embedkit.load(
            "openai:text-embedding-3-small",
            base_url=openai_server.base_url, api_key=openai_server.api_key,
        )
        openai_server.fail_next("rate_limit", retry_after=0.01)
        out = model.embed(["a", "b"])
        assert [r.status for r in openai_server.requests] == [429, 200]
        assert np.allclose(out[1], expected_vector("b", "text-embedding-3-small"))

    def test_env(openai_env):                      # same, with OPENAI_API_KEY and
        embedkit.load("openai:text-embedding-3-small").embed(["a"])  # OPENAI_BASE_URL set

Vectors are a deterministic function of (model, text): :func:`expected_vector`
gives the unit vector the server returns, so tests can check that every row
landed in its place. ``dimensions=d`` returns the first ``d`` components,
re-normalised, like text-embedding-3.

:class:`OpenAIServer` API (all thread-safe):

* ``base_url``, ``api_key`` -- what the client needs (``api_key = None``: no auth);
* ``requests`` -- :class:`LoggedRequest` per request in arrival order (``inputs``,
  ``model``, ``dimensions``, ``encoding_format``, ``status`` (0: dropped),
  ``fault``, ``tokens``, ``started`` / ``finished``); ``ok_requests`` the 200s;
* ``fail_next(kind, times=1, **params)`` -- the next valid requests misbehave
  (kinds and params in :data:`FAULTS`); ``chaos(rate, kinds, seed, **params)``
  -- from now on at random; ``reset()`` -- clear log and faults;
* ``latency`` (seconds per answer), ``models`` (name -> width; add yours),
  ``float_only``, ``reject_base64`` -- plain attributes;
* ``wait_idle()`` -- until requests a client gave up on have finished.

Run standalone for benchmarks: ``python tests/openai_server.py --latency 0.05``
prints the base URL; ``GET /_stats`` returns the request counts as JSON.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import random
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from embedkit.backends.openai.models import DEFAULT_ENCODING, DEFAULT_MAX_TOKENS
from embedkit.backends.openai.models import MODELS as MODEL_TABLE
from embedkit.backends.openai.plan import MAX_INPUTS_PER_REQUEST, MAX_TOKENS_PER_REQUEST
from embedkit.backends.openai.tokens import get_encoding

__all__ = [
    "DEFAULT_API_KEY",
    "FAULTS",
    "MODELS",
    "LoggedRequest",
    "OpenAIServer",
    "expected_matrix",
    "expected_vector",
    "openai_env",
    "openai_server",
]

DEFAULT_API_KEY = "sk-test-embedkit-server"
# OpenAI's facts come from embedkit's one model table and request limits (the tests
# pin their values literally, so a wrong table cannot hide behind this server).
MODELS = {name: info.dim for name, info in MODEL_TABLE.items()}  # name -> native width
FLEXIBLE = frozenset(name for name, info in MODEL_TABLE.items() if info.flexible_dimensions)
MAX_INPUTS = MAX_INPUTS_PER_REQUEST
MAX_REQUEST_TOKENS = MAX_TOKENS_PER_REQUEST
CACHE_ROWS = 200_000  # per-text token counts and vectors the server remembers

FAULTS = {
    "rate_limit": "429 rate_limit_exceeded; params retry_after (s), retry_after_ms",
    "insufficient_quota": "429 insufficient_quota (not a rate limit: must not be retried)",
    "server_error": "5xx; params status (default 500), retry_after (s)",
    "bad_request": "a 4xx that must not be retried; params status (default 400), message",
    "hang": "sleep past the client's timeout, then drop the connection; param seconds (default 2)",
    "drop": "close the connection without any response",
    "shuffle": "200 with the items in random order (indices still right)",
    "missing": "200 with the last item left out",
    "duplicate": "200 with the last item's index replaced by the first's",
    "nan": "200 with a NaN in the first vector",
    "zero": "200 with the first vector all zeros",
    "wrong_dim": "200 with vectors one component short",
}


def expected_vector(text: str, model: str, dimensions: int | None = None) -> NDArray[np.float32]:
    """The unit vector the server returns for ``text``: shape ``(dimensions or dim,)``."""
    row: NDArray[np.float32] = expected_matrix([text], model, dimensions, MODELS.get(model))[0]
    return row


def expected_matrix(
    texts: Sequence[str], model: str, dimensions: int | None = None, dim: int | None = None
) -> NDArray[np.float32]:
    """``out[i] = expected_vector(texts[i], model, dimensions)``; ``dim`` is the model's native width.

    Components are shake_256(model + "\\n" + text) bytes as int8, truncated to
    ``dimensions``, then scaled to unit length.
    """
    width = dim or MODELS[model]
    raw = b"".join(
        hashlib.shake_256(f"{model}\n{t}".encode("utf-8", "surrogatepass")).digest(width)
        for t in texts
    )
    out = np.frombuffer(raw, dtype=np.int8).reshape(len(texts), width).astype(np.float32)
    out = out[:, : dimensions or width]
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return (out / np.where(norms > 0, norms, 1.0)).astype(np.float32, copy=False)


@dataclass
class LoggedRequest:
    """One request as the server saw it; ``status`` is 0 for a dropped connection."""

    path: str
    model: str | None
    inputs: list[str]
    encoding_format: str | None
    dimensions: int | None
    authorization: str
    status: int = 0
    fault: str | None = None
    tokens: int = 0
    started: float = 0.0
    finished: float = 0.0


@dataclass
class _Fault:
    kind: str
    params: dict[str, Any] = field(default_factory=dict)


class _Reject(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, kind: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.kind = kind or "invalid_request_error"
        self.headers: dict[str, str] = {}


class OpenAIServer:
    """The server; a context manager. Attributes tests may set at any time:

    ``latency`` (seconds slept before each answer), ``float_only`` (answer floats even
    when base64 is asked), ``reject_base64`` (400 when base64 is asked), ``models``
    (name -> native width; add custom models here), ``api_key`` (``None``: no auth).
    """

    def __init__(
        self, api_key: str | None = DEFAULT_API_KEY, latency: float = 0.0, port: int = 0
    ) -> None:
        self.api_key = api_key
        self.latency = latency
        self.float_only = False
        self.reject_base64 = False
        self.models: dict[str, int] = dict(MODELS)
        self._lock = threading.Lock()
        self._log: list[LoggedRequest] = []
        self._faults: deque[_Fault] = deque()
        self._active = 0
        self._token_cache: dict[tuple[str, str], int] = {}
        self._vector_cache: dict[tuple[str, int | None, str], bytes] = {}
        self._chaos: tuple[float, tuple[str, ...], random.Random, dict[str, Any]] | None = None
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    # ----------------------------------------------------------------- control
    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``, what ``base_url=`` / ``OPENAI_BASE_URL`` take."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    @property
    def requests(self) -> list[LoggedRequest]:
        """Every embeddings request so far, in arrival order (a copy; entries still being
        served have ``status == 0`` until they finish: see :meth:`wait_idle`)."""
        with self._lock:
            return list(self._log)

    @property
    def ok_requests(self) -> list[LoggedRequest]:
        """The requests answered with HTTP 200."""
        return [r for r in self.requests if r.status == 200]

    def fail_next(self, kind: str, times: int = 1, **params: Any) -> None:
        """Make the next ``times`` requests misbehave as ``kind`` (see :data:`FAULTS`)."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; known: {sorted(FAULTS)}")
        with self._lock:
            self._faults.extend(_Fault(kind, params) for _ in range(times))

    def chaos(self, rate: float, kinds: Sequence[str], seed: int = 0, **params: Any) -> None:
        """From now on each request fails with probability ``rate`` as one of ``kinds``."""
        unknown = set(kinds) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}")
        with self._lock:
            self._chaos = (rate, tuple(kinds), random.Random(seed), params) if rate > 0 else None

    def reset(self) -> None:
        """Forget the log, queued faults and chaos."""
        with self._lock:
            self._log.clear()
            self._faults.clear()
            self._chaos = None

    def start(self) -> OpenAIServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- serving
    def _next_fault(self) -> _Fault | None:
        with self._lock:
            if self._faults:
                return self._faults.popleft()
            if self._chaos is not None:
                rate, kinds, rng, params = self._chaos
                if rng.random() < rate:
                    return _Fault(rng.choice(kinds), dict(params))
        return None

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Block until no request is being served (e.g. hung ones a client gave up on)."""
        end = time.monotonic() + timeout
        while self._active and time.monotonic() < end:
            time.sleep(0.01)
        if self._active:
            raise TimeoutError(f"{self._active} requests still in progress after {timeout} s")

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "requests": len(self._log),
                "ok": sum(r.status == 200 for r in self._log),
                "inputs_ok": sum(len(r.inputs) for r in self._log if r.status == 200),
            }

    def handle(
        self, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes | None]:
        """``(status, headers, body)`` for one request; body ``None`` drops the connection."""
        entry = LoggedRequest(path, None, [], None, None, headers.get("authorization", ""))
        entry.started = time.monotonic()
        with self._lock:
            self._log.append(entry)
            self._active += 1
        try:
            payload = self._answer(entry, headers, body)
        except _Reject as rej:
            entry.status = rej.status
            error = {"message": str(rej), "type": rej.kind, "param": None, "code": rej.code}
            reply = json.dumps({"error": error}).encode()
            return rej.status, {"content-type": "application/json", **rej.headers}, reply
        finally:
            entry.finished = time.monotonic()
            with self._lock:
                self._active -= 1
        if payload is None:
            return 0, {}, None
        entry.status = 200
        return 200, {"content-type": "application/json"}, payload

    def _answer(self, entry: LoggedRequest, headers: dict[str, str], body: bytes) -> bytes | None:
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            given = headers.get("authorization", "").removeprefix("Bearer ")
            masked = given[:3] + "*" * max(0, len(given) - 7) + given[-4:] if given else "none"
            raise _Reject(401, f"Incorrect API key provided: {masked}.", "invalid_api_key")
        try:
            request = json.loads(body)
        except ValueError as exc:
            raise _Reject(400, "We could not parse the JSON body of your request.") from exc
        if isinstance(request, dict):  # log what was asked, even if it is then refused
            raw = request.get("input")
            entry.inputs = [raw] if isinstance(raw, str) else list(raw or [])
            entry.model = request.get("model")
            entry.encoding_format = request.get("encoding_format")
            entry.dimensions = request.get("dimensions")
        model, inputs, fmt, dimensions = self._parse(request)
        entry.tokens = self._check_tokens(inputs, model)
        fault = self._next_fault()  # valid requests only: a 400 does not use up a fault
        entry.fault = fault.kind if fault else None
        if self.latency:
            time.sleep(self.latency)
        if fault is not None:
            early = self._early_fault(fault)
            if early == "drop":
                return None
        usage = {"prompt_tokens": entry.tokens, "total_tokens": entry.tokens}
        tail = f'],"model":{json.dumps(model)},"usage":{json.dumps(usage)}}}'.encode()
        if fault is None and fmt == "base64" and not self.float_only:  # the fast, common path
            encoded = self._base64_rows(model, inputs, dimensions)
            data = b",".join(
                b'{"object":"embedding","index":%d,"embedding":"%s"}' % (i, row)
                for i, row in enumerate(encoded)
            )
            return b'{"object":"list","data":[' + data + tail
        vectors = expected_matrix(inputs, model, dimensions, self.models[model])
        items = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
        if fault is not None:
            items = _corrupt(items, fault.kind)
        encode = (lambda v: v.tolist()) if fmt == "float" or self.float_only else _b64
        data_list = [{**item, "embedding": encode(item["embedding"])} for item in items]
        return b'{"object":"list","data":' + json.dumps(data_list).encode()[:-1] + tail

    def _base64_rows(self, model: str, inputs: list[str], dimensions: int | None) -> list[bytes]:
        """Base64 of each input's vector, remembered (the server's own cost stays small)."""
        cache = self._vector_cache
        keys = [(model, dimensions, t) for t in inputs]
        rows = [cache.get(k) for k in keys]
        todo = [i for i, row in enumerate(rows) if row is None]
        if todo:
            vectors = expected_matrix(
                [inputs[i] for i in todo], model, dimensions, self.models[model]
            )
            fresh = {
                keys[i]: base64.b64encode(v.astype("<f4").tobytes())
                for i, v in zip(todo, vectors, strict=True)
            }
            if len(cache) > CACHE_ROWS:
                cache.clear()
            cache.update(fresh)
            rows = [row if row is not None else fresh[k] for row, k in zip(rows, keys, strict=True)]
        return rows  # type: ignore[return-value]

    def _parse(self, request: Any) -> tuple[str, list[str], str, int | None]:
        if not isinstance(request, dict) or "model" not in request or "input" not in request:
            raise _Reject(400, "you must provide a model and an input parameter")
        model = request["model"]
        if model not in self.models:
            raise _Reject(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                "model_not_found",
            )
        raw = request["input"]
        inputs = [raw] if isinstance(raw, str) else raw
        if not isinstance(inputs, list) or not all(isinstance(t, str) for t in inputs):
            raise _Reject(400, "'$.input' is invalid: this server takes strings only.")
        if not inputs or any(t == "" for t in inputs):
            raise _Reject(400, "'$.input' is invalid. Please check the API reference.")
        if len(inputs) > MAX_INPUTS:
            raise _Reject(
                400, f"'$.input' is invalid: at most {MAX_INPUTS} inputs, got {len(inputs)}."
            )
        fmt = request.get("encoding_format", "float")
        if fmt not in ("float", "base64"):
            raise _Reject(400, f"'{fmt}' is not one of ['float', 'base64'] - 'encoding_format'")
        if fmt == "base64" and self.reject_base64:
            raise _Reject(400, "encoding_format 'base64' is not supported by this server")
        dimensions = request.get("dimensions")
        if dimensions is not None:
            if model in MODELS and model not in FLEXIBLE:
                raise _Reject(400, "This model does not support specifying dimensions.")
            if not isinstance(dimensions, int) or not 1 <= dimensions <= self.models[model]:
                raise _Reject(400, f"dimensions must be in 1..{self.models[model]}")
        return model, inputs, fmt, dimensions

    def _check_tokens(self, inputs: list[str], model: str) -> int:
        known = MODEL_TABLE.get(model)
        limit = known.max_tokens if known else DEFAULT_MAX_TOKENS
        name = known.encoding if known else DEFAULT_ENCODING
        enc = get_encoding(name)
        cache = self._token_cache
        if len(cache) > CACHE_ROWS:
            cache.clear()
        counts = []
        for text in inputs:
            n = cache.get((name, text))
            if n is None:
                n = cache[name, text] = len(enc.encode_ordinary(text))
            counts.append(n)
        for i, n in enumerate(counts):
            if n > limit:
                raise _Reject(
                    400,
                    f"This model's maximum context length is {limit} tokens, however "
                    f"you requested {n} tokens ({n} in your prompt; input {i}). Please reduce "
                    "your prompt.",
                )
        total = sum(counts)
        if total > MAX_REQUEST_TOKENS:
            raise _Reject(
                400, f"Requested {total} tokens, max {MAX_REQUEST_TOKENS} tokens per request"
            )
        return total

    def _early_fault(self, fault: _Fault) -> str | None:
        kind, p = fault.kind, fault.params
        if kind == "hang":
            time.sleep(float(p.get("seconds", 2.0)))
            return "drop"
        if kind == "drop":
            return "drop"
        if kind == "insufficient_quota":
            raise _Reject(
                429,
                "You exceeded your current quota, please check your plan and billing details.",
                "insufficient_quota",
                "insufficient_quota",
            )
        if kind in ("rate_limit", "server_error", "bad_request"):
            default = {"rate_limit": 429, "server_error": 500, "bad_request": 400}[kind]
            status = int(p.get("status", default))
            code = "rate_limit_exceeded" if kind == "rate_limit" else None
            message = str(p.get("message", f"injected {kind} (HTTP {status})"))
            rej = _Reject(status, message, code, "requests")
            if "retry_after" in p:
                rej.headers["retry-after"] = str(p["retry_after"])
            if "retry_after_ms" in p:
                rej.headers["retry-after-ms"] = str(p["retry_after_ms"])
            raise rej
        return None


def _b64(vector: NDArray[np.float32]) -> str:
    return base64.b64encode(vector.astype("<f4").tobytes()).decode()


def _corrupt(items: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    if kind == "shuffle":
        random.Random(len(items)).shuffle(items)
        if len(items) > 1 and items[0]["index"] == 0:
            items.reverse()
    elif kind == "missing":
        items = items[:-1]
    elif kind == "duplicate" and len(items) > 1:
        items[-1] = {**items[-1], "index": items[0]["index"]}
    elif kind == "nan":
        items[0]["embedding"] = items[0]["embedding"].copy()
        items[0]["embedding"][0] = np.nan
    elif kind == "zero":
        items[0]["embedding"] = np.zeros_like(items[0]["embedding"])
    elif kind == "wrong_dim":
        items = [{**item, "embedding": item["embedding"][:-1]} for item in items]
    return items


def _handler_for(server: OpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body leave at once: no 40 ms delayed-ACK stall

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", 0))
            body = self.rfile.read(length)
            if not self.path.rstrip("/").endswith("/embeddings"):
                self._reply(
                    404,
                    {"content-type": "application/json"},
                    b'{"error": {"message": "not found"}}',
                )
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, reply_headers, reply = server.handle(self.path, headers, body)
            if reply is None:
                self.close_connection = True
                return
            self._reply(status, reply_headers, reply)

        def do_GET(self) -> None:
            if self.path.rstrip("/").endswith("/_stats"):
                self._reply(
                    200, {"content-type": "application/json"}, json.dumps(server.stats()).encode()
                )
            else:
                self._reply(404, {}, b"")

        def _reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the request log is server.requests

    return Handler


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    """A fresh :class:`OpenAIServer` on 127.0.0.1 for one test, stopped afterwards."""
    with OpenAIServer() as server:
        yield server


@pytest.fixture
def openai_env(openai_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch) -> OpenAIServer:
    """``openai_server`` with ``OPENAI_API_KEY`` and ``OPENAI_BASE_URL`` pointing at it."""
    assert openai_server.api_key is not None
    monkeypatch.setenv("OPENAI_API_KEY", openai_server.api_key)
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)
    return openai_server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    args = parser.parse_args()
    server = OpenAIServer(args.api_key, args.latency, args.port).start()
    print(server.base_url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
