"""What goes over the wire for the OpenAI backend: sending, response checks, error triage.

:class:`Sender` POSTs planned batches through the official client: up to
``concurrency`` at a time, within the shared :class:`~.plan.RateLimiter`, each
through the one retry loop (:class:`Retry`), each answer verified by
:func:`decode_embeddings`; it counts attempts, retries and billed tokens
(:class:`RequestStats`) and learns an unknown model's width from the first answer.

``decode_embeddings(body, n, dim)`` turns a ``/embeddings`` JSON body into a
float32 matrix ``out`` of shape ``(n, dim)`` with ``out[item["index"]] =
item["embedding"]`` (base64 little-endian float32 or a list of floats), and
raises :class:`BadResponseError` unless every index ``0..n-1`` appears exactly
once and every vector is finite, non-zero and ``dim`` wide.

``triage(exc)`` sorts an ``openai`` exception into retry or fail:

* retry: timeouts, connection errors, HTTP 408, 409, 429 and 5xx, honouring
  ``retry-after-ms`` / ``Retry-After`` when the server sends them;
* fail at once: ``insufficient_quota`` (:class:`QuotaExceededError`), any
  other 4xx (:class:`BackendError` with the server's message).
"""

from __future__ import annotations

import base64
import binascii
import contextvars
import email.utils
import json
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from embedkit.backends.openai.plan import RateLimiter
from embedkit.errors import BackendError, BadResponseError, QuotaExceededError

__all__ = [
    "RequestStats",
    "Retry",
    "Sender",
    "Triage",
    "decode_embeddings",
    "parse_retry_after",
    "scrub",
    "triage",
]

RETRY_STATUSES = frozenset({408, 409, 429})


def scrub(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` replaced by ``***``."""
    return text.replace(secret, "***") if secret else text


def decode_embeddings(
    body: bytes, n: int, dim: int | None, where: str
) -> tuple[NDArray[np.float32], int]:
    """``(vectors, prompt_tokens)``: the verified ``(n, dim)`` float32 matrix of a
    response body (see module doc) and its ``usage.prompt_tokens`` (0 if absent).

    ``dim=None`` accepts the width of the first vector. ``where`` names the batch
    in error messages (e.g. ``"rows 2048-4095"``).
    """
    try:
        payload = json.loads(body)
        items = payload["data"]
        if not isinstance(items, list):
            raise TypeError("'data' is not a list")
    except (ValueError, TypeError, KeyError) as exc:
        raise BadResponseError(f"{where}: response is not an embeddings list ({exc})") from exc
    if len(items) != n:
        raise BadResponseError(f"{where}: sent {n} inputs, received {len(items)} embeddings")
    try:
        order = np.asarray([item["index"] for item in items])
        raw = [item["embedding"] for item in items]
    except (TypeError, KeyError) as exc:
        raise BadResponseError(f"{where}: an item lacks 'index' or 'embedding'") from exc
    if order.dtype.kind not in "iu" or not np.array_equal(np.sort(order), np.arange(n)):
        raise BadResponseError(
            f"{where}: the item indices are not 0..{n - 1} once each "
            f"(missing: {sorted(set(range(n)) - set(order.tolist()))[:10]})"
        )
    out = _matrix(raw, where)
    width = dim if dim is not None else out.shape[1]
    if out.shape[1] != width:
        raise BadResponseError(f"{where}: expected {width} dimensions, got {out.shape[1]}")
    placed = np.empty_like(out)
    placed[order] = out  # row k holds the item whose index is k
    out = placed
    not_finite = np.flatnonzero(~np.isfinite(out).all(axis=1))
    if not_finite.size:
        raise BadResponseError(f"{where}: inputs {not_finite[:10].tolist()} have NaN or inf values")
    zero = np.flatnonzero(~out.any(axis=1))
    if zero.size:
        raise BadResponseError(f"{where}: inputs {zero[:10].tolist()} have all-zero vectors")
    usage = payload.get("usage")
    prompt_tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    return out, prompt_tokens if isinstance(prompt_tokens, int) else 0


def _matrix(raw: list[object], where: str) -> NDArray[np.float32]:
    """Rows as sent (base64 little-endian float32 strings or lists of numbers), one width."""
    if raw and all(isinstance(r, str) for r in raw):
        strings: list[str] = raw  # type: ignore[assignment]
        size = len(strings[0])
        if size % 16 == 0 and all(len(r) == size for r in strings) and "=" not in strings[0]:
            # Equal rows of a multiple of 16 characters (12 bytes: 3 floats, no padding)
            # decode as one string: one pass, no Python loop.
            return _base64_floats("".join(strings), where).reshape(len(strings), -1).copy()
        rows = [_base64_floats(r, where) for r in strings]
    elif all(isinstance(r, list) and r for r in raw):
        try:
            rows = [np.asarray(r, dtype=np.float32) for r in raw]  # type: ignore[arg-type]
        except (TypeError, ValueError) as exc:
            raise BadResponseError(f"{where}: an embedding is not a list of numbers") from exc
    else:
        raise BadResponseError(f"{where}: embeddings are missing, empty or of mixed formats")
    widths = sorted({r.size for r in rows if r.ndim == 1} | {-1 for r in rows if r.ndim != 1})
    if len(widths) != 1 or widths[0] < 1:
        raise BadResponseError(f"{where}: embeddings of different widths {widths[:5]}")
    return np.stack(rows)


def _base64_floats(text: str, where: str) -> NDArray[np.float32]:
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadResponseError(f"{where}: embedding is not valid base64") from exc
    if len(data) % 4:
        raise BadResponseError(f"{where}: base64 embedding is not a float32 array")
    return np.frombuffer(data, dtype="<f4").astype(np.float32, copy=False)


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asks to wait (``retry-after-ms``, then ``Retry-After``), or None."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_tz(value)
        if parsed is None:
            return None
        return max(0.0, email.utils.mktime_tz(parsed) - time.time())


@dataclass(frozen=True)
class Triage:
    """How to handle a failed attempt: ``error`` to raise now or after the last retry."""

    retry: bool
    retry_after: float | None
    error: BackendError
    rate_limited: bool = False


def triage(exc: Exception, openai: Any, secret: str | None) -> Triage:
    """Sort an ``openai`` exception (``openai`` is the module) into retry or fail."""
    if isinstance(exc, openai.APITimeoutError):
        return Triage(True, None, BackendError("the request timed out"))
    if isinstance(exc, openai.APIConnectionError):
        return Triage(True, None, BackendError(f"connection error: {scrub(str(exc), secret)}"))
    if not isinstance(exc, openai.APIStatusError):
        return Triage(False, None, BackendError(f"openai client error: {scrub(str(exc), secret)}"))
    status = int(exc.status_code)
    message = scrub(str(getattr(exc, "message", exc)), secret)
    code = getattr(exc, "code", None) or getattr(exc, "type", None)
    if code == "insufficient_quota":
        return Triage(
            False,
            None,
            QuotaExceededError(
                f"the account's quota is exhausted (HTTP {status}, insufficient_quota): add "
                f"credit or raise the limit; retrying will not help. Server said: {message}"
            ),
        )
    retry_after = parse_retry_after(exc.response.headers)
    if status in RETRY_STATUSES or status >= 500:
        error = BackendError(f"HTTP {status}: {message}")
        return Triage(True, retry_after, error, rate_limited=status == 429)
    hint = {
        401: " (check api_key or OPENAI_API_KEY)",
        403: " (the key may lack access to this model)",
        404: " (is the model name right, and base_url an OpenAI-compatible /v1 URL?)",
    }.get(status, "")
    return Triage(False, None, BackendError(f"HTTP {status}{hint}: {message}"))


# ------------------------------------------------------------------------ sending
@dataclass(frozen=True)
class RequestStats:
    """Counters since the embedder was built: HTTP attempts, retries, billed tokens."""

    requests: int = 0
    retries: int = 0
    prompt_tokens: int = 0


@dataclass(frozen=True)
class Retry:
    """The retry policy: ``timeout`` per attempt, at most ``max_retries`` retries, none
    that would end past ``deadline`` seconds after the first attempt; the wait before
    retry k is the server's ``Retry-After``, else ``min(backoff_max, backoff * 2**(k-1))``
    times a random factor in [0.5, 1)."""

    timeout: float
    max_retries: int
    deadline: float | None
    backoff: float
    backoff_max: float


class _Cancelled(Exception):
    """A sibling batch failed; this one stops without sending more."""


Batch = tuple[list[str], range]


class Sender:
    """Sends batches to ``/embeddings`` and returns their verified vectors, rows in order.

    ``request``: the fixed request fields (model, encoding_format, dimensions);
    ``width``: the known output width, or ``None`` until the first answer sets it;
    ``count``: exact token counts, used only when ``limiter`` has a tokens-per-minute limit.
    """

    def __init__(
        self,
        openai: Any,
        client: Any,
        secret: str,
        *,
        request: dict[str, Any],
        retry: Retry,
        limiter: RateLimiter,
        width: int | None,
        count: Callable[[Sequence[str]], NDArray[np.int64]],
    ) -> None:
        self._openai = openai
        self._client = client
        self._secret = secret
        self._request = request
        self.retry = retry
        self.limiter = limiter
        self._count_tokens = count
        self._lock = threading.Lock()
        self._width = width
        self._stats = RequestStats()

    @property
    def width(self) -> int | None:
        with self._lock:
            return self._width

    @property
    def stats(self) -> RequestStats:
        with self._lock:
            return self._stats

    def send(self, batches: list[Batch], concurrency: int) -> NDArray[np.float32]:
        """``(sum of batch sizes, width)`` float32, batch after batch; the first failure
        stops the others before their next attempt and is raised."""
        stop = threading.Event()
        if concurrency == 1 or len(batches) == 1:
            parts = [self._send(batch, rows, stop) for batch, rows in batches]
        else:
            parts = self._send_concurrently(batches, concurrency, stop)
        return np.concatenate(parts)

    def _send_concurrently(
        self, batches: list[Batch], concurrency: int, stop: threading.Event
    ) -> list[NDArray[np.float32]]:
        parts: list[NDArray[np.float32]] = [np.empty(0, np.float32)] * len(batches)
        pool = ThreadPoolExecutor(min(concurrency, len(batches)), "embedkit-openai")
        try:
            futures = {  # each worker runs in a copy of the caller's context (its token counts)
                pool.submit(contextvars.copy_context().run, self._send, b, r, stop): i
                for i, (b, r) in enumerate(batches)
            }
            for future in as_completed(futures):
                parts[futures[future]] = future.result()
        except BaseException:
            stop.set()  # siblings stop before their next attempt or wait
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return parts

    def _send(self, batch: list[str], rows: range, stop: threading.Event) -> NDArray[np.float32]:
        """One batch through the retry loop: ``(len(batch), width)`` verified vectors."""
        where = f"rows {rows.start}-{rows.stop - 1}"
        n_tokens = int(self._count_tokens(batch).sum()) if self.limiter.tpm else 0
        retry = self.retry
        started = time.monotonic()
        attempt = 0
        while True:
            if stop.is_set() or not self.limiter.acquire(n_tokens, stop):
                raise _Cancelled
            left = retry.timeout if retry.deadline is None else retry.deadline - _since(started)
            self._add(requests=1)
            try:
                # The texts go in extra_body, which replaces `input` as sent: the client's
                # per-item type walk over `input` costs ~25 µs per text (0.25 s per 10,000).
                raw = self._client.embeddings.with_raw_response.create(
                    input=[],
                    extra_body={"input": batch},
                    timeout=max(0.001, min(retry.timeout, left)),
                    **self._request,
                )
                return self._decode(raw.content, len(batch), where)
            except self._openai.OpenAIError as exc:
                verdict, upstream = (
                    triage(exc, self._openai, self._secret),
                    _upstream(exc, self._secret),
                )
            # Decided outside the except block: the client's exception (its request holds
            # the key in a header) is neither the cause nor the context of what we raise.
            error = type(verdict.error)(f"{where}: {verdict.error}")
            if not verdict.retry:
                raise error from upstream
            attempt += 1
            delay = verdict.retry_after
            if delay is None:
                delay = min(retry.backoff_max, retry.backoff * 2 ** (attempt - 1))
                delay *= 0.5 + random.random() / 2
            if attempt > retry.max_retries:
                raise BackendError(f"gave up after {attempt} attempts; {error}") from upstream
            if retry.deadline is not None and _since(started) + delay > retry.deadline:
                raise BackendError(
                    f"the next retry (in {delay:.3g} s) would pass the {retry.deadline} s "
                    f"deadline after {attempt} attempts; {error}"
                ) from upstream
            if verdict.rate_limited and verdict.retry_after is not None:
                self.limiter.pause_until(time.monotonic() + delay)
            self._add(retries=1)
            if stop.wait(delay):
                raise _Cancelled

    def _decode(self, body: bytes, n: int, where: str) -> NDArray[np.float32]:
        out, usage = decode_embeddings(body, n, self.width, where)
        with self._lock:
            self._stats = replace(self._stats, prompt_tokens=self._stats.prompt_tokens + usage)
            if self._width is None:
                self._width = out.shape[1]
            elif out.shape[1] != self._width:
                raise BadResponseError(
                    f"{where}: expected {self._width} dimensions, got {out.shape[1]}"
                )
        return out

    def _add(self, requests: int = 0, retries: int = 0) -> None:
        with self._lock:
            self._stats = replace(
                self._stats,
                requests=self._stats.requests + requests,
                retries=self._stats.retries + retries,
            )


class UpstreamError(BackendError):
    """What the ``openai`` client raised, as text with the key scrubbed: the cause of the
    error embedkit raises (the client's own exception holds the key in its request)."""


def _upstream(exc: Exception, secret: str | None) -> UpstreamError:
    status = getattr(exc, "status_code", None)
    head = f"{type(exc).__name__}" + (f" (HTTP {status})" if status is not None else "")
    return UpstreamError(f"{head}: {scrub(str(exc), secret)}")


def _since(start: float) -> float:
    return time.monotonic() - start
