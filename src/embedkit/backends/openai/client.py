"""OpenAI (and OpenAI-compatible) embeddings: ``openai:text-embedding-3-small?dimensions=256``.

What one ``embed(texts)`` call does, in order:

1. rejects empty, whitespace-only, None, NaN and non-str rows, naming them
   (before any request: the API would answer 400);
2. applies ``on_long`` to texts over the model's token limit (default
   ``"error"``: raise naming the rows; ``"truncate"``; ``"chunk"``), counting
   tokens offline with tiktoken (:mod:`embedkit.backends.openai.tokens`);
3. plans requests with :func:`~embedkit.backends.openai.plan.plan_requests`
   (<= 2048 inputs, <= 300,000 tokens each, order kept, each text sent once);
4. sends up to ``max_concurrency`` requests at a time through the official
   ``openai`` client (its own retries switched off: this is the one retry
   layer), within optional ``rpm`` / ``tpm`` limits shared by all threads;
5. retries timeouts, connection errors, 408/409/429/5xx with capped exponential
   backoff and jitter, honouring ``retry-after-ms`` / ``Retry-After``, until
   ``max_retries`` or ``deadline`` (seconds per batch) runs out; fails at once
   on other 4xx and on ``insufficient_quota``;
6. verifies each response (count, ``index`` placement, width, finite, non-zero)
   and returns ``out[i] = embedding(texts[i])``, float32 ``(n, dim)``.

The API key (``api_key`` or ``OPENAI_API_KEY``) and ``base_url`` (or
``OPENAI_BASE_URL``) are deployment settings, not model identity: neither is in
``spec`` (a gateway or proxy serving the same model returns the same vectors;
a cache keyed by spec stays valid across them). Give models on custom servers
distinct names.
"""

from __future__ import annotations

import itertools
import os
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from embedkit._optional import require
from embedkit.backends.openai import tokens
from embedkit.backends.openai.models import DEFAULT_MAX_TOKENS, MODELS, PRICES_AS_OF
from embedkit.backends.openai.plan import (
    MAX_TOKENS_PER_REQUEST,
    Estimate,
    RateLimiter,
    plan_requests,
)
from embedkit.backends.openai.wire import decode_embeddings, triage
from embedkit.errors import BackendError, BadResponseError, ConfigError, TextTooLongError
from embedkit.protocol import BaseEmbedder, Matrix, OnLong, check_on_long
from embedkit.spec import OptionValue
from embedkit.validation import check_texts

__all__ = ["OpenAIEmbedder", "RequestStats"]


PROBE_TEXT = "dimension probe"


@dataclass(frozen=True)
class RequestStats:
    """Counters since the embedder was built: HTTP attempts, retries, billed tokens."""

    requests: int = 0
    retries: int = 0
    prompt_tokens: int = 0


class _Cancelled(Exception):
    """A sibling batch failed; this one stops without sending more."""


class OpenAIEmbedder(BaseEmbedder):
    """``openai:<model>``; see the module docstring for the whole life of a call."""

    backend = "openai"

    def __init__(
        self,
        model: str = "text-embedding-3-small",
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        dimensions: int | None = None,
        on_long: OnLong = "error",
        timeout: float = 60.0,
        max_retries: int = 6,
        deadline: float | None = 600.0,
        max_concurrency: int = 4,
        rpm: int | None = None,
        tpm: int | None = None,
        encoding_format: str = "base64",
        max_input_tokens: int | None = None,
        tokenizer: str | None = None,
        backoff: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        self.model = model or "text-embedding-3-small"
        self.info = MODELS.get(self.model)
        self.on_long = check_on_long(on_long)
        self.dimensions = self._check_dimensions(dimensions)
        self.timeout = _number("timeout", timeout)
        self.max_retries = _integer("max_retries", max_retries, zero=True)
        self.deadline = None if deadline is None else _number("deadline", deadline)
        self.max_concurrency = _integer("max_concurrency", max_concurrency)
        self.backoff = _number("backoff", backoff, zero=True)
        self.backoff_max = _number("backoff_max", backoff_max, zero=True)
        if encoding_format not in ("base64", "float"):
            raise ConfigError(
                f"encoding_format must be 'base64' or 'float', got {encoding_format!r}"
            )
        self.encoding_format = encoding_format
        self.encoding, self._max_tokens = self._check_tokenizer(tokenizer, max_input_tokens)
        self._limiter = RateLimiter(rpm, tpm)
        self._openai = require("openai", "openai")
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        if not key:
            raise ConfigError("no OpenAI API key: pass api_key=... or set OPENAI_API_KEY")
        self._secret = key
        try:
            self._client = self._openai.OpenAI(
                api_key=key, base_url=base_url, timeout=self.timeout, max_retries=0
            )
        except self._openai.OpenAIError as exc:
            raise ConfigError(f"cannot create the OpenAI client: {exc}") from None
        self.base_url = str(self._client.base_url)
        self._lock = threading.Lock()
        self._learned_dim: int | None = None
        self._stats = RequestStats()

    # ----------------------------------------------------------------- options
    def _check_dimensions(self, dimensions: int | None) -> int | None:
        if dimensions is None:
            return None
        value = _integer("dimensions", dimensions)
        if self.info is not None and not self.info.flexible_dimensions:
            raise ConfigError(
                f"{self.model} does not support the dimensions option "
                f"(only text-embedding-3 models do); it always returns {self.info.dim}"
            )
        if self.info is not None and value > self.info.dim:
            raise ConfigError(f"dimensions must be in 1..{self.info.dim} for {self.model}")
        return value

    def _check_tokenizer(self, tokenizer: str | None, max_input: int | None) -> tuple[str, int]:
        if self.info is not None and tokenizer not in (None, self.info.encoding):
            raise ConfigError(f"{self.model} uses {self.info.encoding}; tokenizer cannot change")
        encoding = tokenizer or (self.info.encoding if self.info else "cl100k_base")
        if encoding not in tokens.ENCODINGS:
            raise ConfigError(f"tokenizer must be one of {sorted(tokens.ENCODINGS)}")
        ceiling = self.info.max_tokens if self.info else MAX_TOKENS_PER_REQUEST
        limit = self.info.max_tokens if self.info else DEFAULT_MAX_TOKENS
        if max_input is not None:
            limit = _integer("max_input_tokens", max_input)
            if limit > ceiling:
                raise ConfigError(f"max_input_tokens must be at most {ceiling} for {self.model}")
        return encoding, limit

    # ---------------------------------------------------------------- identity
    @property
    def dim(self) -> int:
        """Output width; for an unknown model without ``dimensions``, learned from the
        first response (one tiny probe request if asked before any call)."""
        known = self._known_dim()
        if known is None:
            self._embed([PROBE_TEXT])
            known = self._known_dim()
        assert known is not None
        return known

    def _known_dim(self) -> int | None:
        if self.dimensions is not None:
            return self.dimensions
        return self.info.dim if self.info is not None else self._learned_dim

    def _spec_parts(self) -> tuple[str, dict[str, OptionValue]]:
        options: dict[str, OptionValue] = {"on_long": self.on_long}
        if self.dimensions is not None:
            options["dimensions"] = self.dimensions
        if self._max_tokens != (self.info.max_tokens if self.info else DEFAULT_MAX_TOKENS):
            options["max_input_tokens"] = self._max_tokens
        if self.info is None and self.encoding != "cl100k_base":
            options["tokenizer"] = self.encoding
        return self.model, options

    def __repr__(self) -> str:
        dim = self._known_dim()
        return f"<{type(self).__name__} {self.spec} dim={'?' if dim is None else dim}>"

    @property
    def stats(self) -> RequestStats:
        """A snapshot of the request counters (see :class:`RequestStats`)."""
        with self._lock:
            return self._stats

    # ----------------------------------------------------------------- tokens
    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    def count_tokens(self, texts: Sequence[str]) -> NDArray[np.int64]:
        """Exact tiktoken counts, as the API bills them: shape ``(len(texts),)``."""
        return tokens.count_tokens(texts, self.encoding)

    def _truncate(self, text: str) -> str:
        ids = tokens.get_encoding(self.encoding).encode_ordinary(text)
        if len(ids) <= self._max_tokens:
            return text
        return self._pieces(ids, self._max_tokens)[0][0]

    def _chunk(self, text: str) -> list[tuple[str, int]]:
        ids = tokens.get_encoding(self.encoding).encode_ordinary(text)
        pieces = self._pieces(ids, len(ids))
        kept = [(p, n) for p, n in pieces if p.strip()]
        return kept or pieces[:1]

    def _pieces(self, ids: list[int], upto: int) -> list[tuple[str, int]]:
        """``ids[:upto]`` cut into texts of at most ``max_tokens`` tokens each, as
        ``(piece, n_tokens)``; cuts fall on token starts and are re-counted,
        since BPE may merge differently at a cut."""
        enc = tokens.get_encoding(self.encoding)
        decoded, offsets = enc.decode_with_offsets(ids)
        offsets.append(len(decoded))
        window = self._max_tokens
        while True:
            cuts = [*range(0, upto, window), upto]
            texts = [decoded[offsets[a] : offsets[b]] for a, b in itertools.pairwise(cuts)]
            counts = tokens.count_tokens(texts, self.encoding)
            if int(counts.max()) <= self._max_tokens and all(texts):
                return list(zip(texts, counts.tolist(), strict=True))
            window -= max(1, window // 100)
            if window < 1:
                raise ConfigError(
                    f"cannot cut a text into pieces of at most {self._max_tokens} tokens"
                )

    def embed(self, texts: Sequence[str] | str) -> Matrix:
        """``(len(texts), dim)`` float32, ``out[i]`` the embedding of ``texts[i]``.

        Tokens are counted exactly only when some text could be over the limit
        (UTF-8 length > ``max_tokens``; no token is shorter than one byte).
        """
        items = check_texts(texts)
        if items and int(self._costs(items, exact_over=False).max()) <= self._max_tokens:
            return self._checked(self._embed(items), len(items))
        return super().embed(items)

    def _costs(self, texts: Sequence[str], exact_over: bool = True) -> NDArray[np.int64]:
        """Upper bounds of the token counts: UTF-8 length, exact where that exceeds the limit."""
        costs = np.fromiter(
            (len(t.encode("utf-8", "surrogatepass")) for t in texts), np.int64, len(texts)
        )
        over = np.flatnonzero(costs > self._max_tokens)
        if exact_over and over.size:
            costs[over] = self.count_tokens([texts[int(i)] for i in over])
        return costs

    # -------------------------------------------------------------- dry run
    def estimate(self, texts: Sequence[str] | str) -> Estimate:
        """Requests, tokens and cost that ``embed(texts)`` would spend; sends nothing.

        Raises :class:`TextTooLongError` where ``embed`` would (``on_long="error"``).
        """
        items = check_texts(texts)
        counts = self.count_tokens(items)
        long_rows = np.flatnonzero(counts > self._max_tokens)
        if long_rows.size and self.on_long == "error":
            raise TextTooLongError(
                f"{long_rows.size} of {len(items)} texts exceed {self._max_tokens} tokens "
                "(on_long='error'; use on_long='truncate' or 'chunk')",
                [(int(i), f"{int(counts[i])} tokens") for i in long_rows],
            )
        inputs: list[str] = []
        long = set(long_rows.tolist())
        for i, text in enumerate(items):
            if i not in long:
                inputs.append(text)
            elif self.on_long == "truncate":
                inputs.append(self._truncate(text))
            else:
                inputs += [piece for piece, _ in self._chunk(text)]
        n_tokens = int(self.count_tokens(inputs).sum())
        price = self.info.usd_per_million_tokens if self.info else None
        return Estimate(
            model=self.model,
            texts=len(items),
            inputs=len(inputs),
            tokens=n_tokens,
            requests=len(self._plan(self._costs(inputs))),
            cost_usd=None if price is None else n_tokens / 1e6 * price,
            price_per_million_usd=price,
            prices_as_of=PRICES_AS_OF,
            long_rows=tuple(int(i) for i in long_rows),
        )

    def _plan(self, costs: NDArray[np.int64]) -> list[range]:
        budget = MAX_TOKENS_PER_REQUEST
        if self._limiter.tpm is not None:
            budget = min(budget, max(self._limiter.tpm, self._max_tokens))
        return plan_requests(
            costs,
            max_tokens=budget,
            max_input_tokens=self._max_tokens,
            parallelism=self.max_concurrency,
        )

    # ---------------------------------------------------------------- sending
    def _embed(self, texts: list[str]) -> NDArray[np.float32]:
        batches = self._plan(self._costs(texts))
        stop = threading.Event()
        jobs = [(texts[b.start : b.stop], b) for b in batches]
        if self.max_concurrency == 1 or len(jobs) == 1:
            parts = [self._send(batch, rows, stop) for batch, rows in jobs]
        else:
            parts = self._send_concurrently(jobs, stop)
        return np.concatenate(parts)

    def _send_concurrently(
        self, jobs: list[tuple[list[str], range]], stop: threading.Event
    ) -> list[NDArray[np.float32]]:
        parts: list[NDArray[np.float32]] = [np.empty(0, np.float32)] * len(jobs)
        pool = ThreadPoolExecutor(min(self.max_concurrency, len(jobs)), "embedkit-openai")
        try:
            futures = {pool.submit(self._send, b, r, stop): i for i, (b, r) in enumerate(jobs)}
            for future in as_completed(futures):
                parts[futures[future]] = future.result()
        except BaseException:
            stop.set()  # siblings stop before their next attempt or wait
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return parts

    def _send(self, batch: list[str], rows: range, stop: threading.Event) -> NDArray[np.float32]:
        """One batch through the retry loop: ``(len(batch), dim)`` verified vectors."""
        where = f"rows {rows.start}-{rows.stop - 1}"
        n_tokens = int(self.count_tokens(batch).sum()) if self._limiter.tpm else 0
        options: dict[str, Any] = {"model": self.model, "encoding_format": self.encoding_format}
        if self.dimensions is not None:
            options["dimensions"] = self.dimensions
        started = time.monotonic()
        attempt = 0
        while True:
            if stop.is_set() or not self._limiter.acquire(n_tokens, stop):
                raise _Cancelled
            left = self.timeout if self.deadline is None else self.deadline - _since(started)
            self._count(requests=1)
            try:
                # The texts go in extra_body, which replaces `input` as sent: the client's
                # per-item type walk over `input` costs ~25 µs per text (0.25 s per 10,000).
                raw = self._client.embeddings.with_raw_response.create(
                    input=[],
                    extra_body={"input": batch},
                    timeout=max(0.001, min(self.timeout, left)),
                    **options,
                )
                return self._decode(raw.content, len(batch), where)
            except self._openai.OpenAIError as exc:
                verdict = triage(exc, self._openai, self._secret)
                error = type(verdict.error)(f"{where}: {verdict.error}")
                if not verdict.retry:
                    raise error from exc
                attempt += 1
                delay = verdict.retry_after
                if delay is None:
                    delay = min(self.backoff_max, self.backoff * 2 ** (attempt - 1))
                    delay *= 0.5 + random.random() / 2
                if attempt > self.max_retries:
                    raise BackendError(f"gave up after {attempt} attempts; {error}") from exc
                if self.deadline is not None and _since(started) + delay > self.deadline:
                    raise BackendError(
                        f"the next retry (in {delay:.3g} s) would pass the {self.deadline} s "
                        f"deadline after {attempt} attempts; {error}"
                    ) from exc
                if verdict.rate_limited and verdict.retry_after is not None:
                    self._limiter.pause_until(time.monotonic() + delay)
                self._count(retries=1)
                if stop.wait(delay):
                    raise _Cancelled from exc

    def _decode(self, body: bytes, n: int, where: str) -> NDArray[np.float32]:
        out, usage = decode_embeddings(body, n, self._known_dim(), where)
        with self._lock:
            self._stats = replace(self._stats, prompt_tokens=self._stats.prompt_tokens + usage)
            known = self._known_dim()
            if known is None:
                self._learned_dim = out.shape[1]
            elif out.shape[1] != known:
                raise BadResponseError(f"{where}: expected {known} dimensions, got {out.shape[1]}")
        return out

    def _count(self, requests: int = 0, retries: int = 0) -> None:
        with self._lock:
            self._stats = replace(
                self._stats,
                requests=self._stats.requests + requests,
                retries=self._stats.retries + retries,
            )


def _since(start: float) -> float:
    return time.monotonic() - start


def _number(name: str, value: object, zero: bool = False) -> float:
    """``value`` as a float if it is a real number > 0 (>= 0 with ``zero``), else ConfigError."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if number and (value > 0 or (zero and value == 0)):  # type: ignore[operator]
        return float(value)  # type: ignore[arg-type]
    raise ConfigError(f"{name} must be a number {'>= 0' if zero else '> 0'}, got {value!r}")


def _integer(name: str, value: object, zero: bool = False) -> int:
    """``value`` as an int if it is a whole number > 0 (>= 0 with ``zero``), else ConfigError."""
    if isinstance(value, (int, float)) and float(value).is_integer():
        return int(_number(name, value, zero))
    raise ConfigError(f"{name} must be an integer {'>= 0' if zero else '> 0'}, got {value!r}")
