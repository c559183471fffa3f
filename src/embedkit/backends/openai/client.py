"""OpenAI (and OpenAI-compatible) embeddings: ``openai:text-embedding-3-small?dimensions=256``.

What one ``embed(texts)`` call does, in order:

1. rejects empty, whitespace-only, None, NaN and non-str rows, naming them
   (before any request: the API would answer 400);
2. applies ``on_long`` to texts over the model's token limit (default
   ``"error"``: raise naming the rows; ``"truncate"``; ``"chunk"``) in
   :meth:`~embedkit.protocol.BaseEmbedder.embed_detailed`, counting tokens
   offline with tiktoken (:mod:`embedkit.backends.openai.tokens`) only for texts
   whose UTF-8 length (an upper bound of their count) passes the limit;
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

``dim`` never sends anything: a known model's width comes from the model table
(:mod:`embedkit.backends.openai.models`) or ``dimensions``; another model's from
``dimensions=N`` (sent to the server), ``dim=N`` (declared only, for servers
that reject the ``dimensions`` field; checked against every response), or the
first response. Before that, ``dim`` raises :class:`UnknownDimensionError`.

The API key (``api_key`` or ``OPENAI_API_KEY``) and ``base_url`` (or
``OPENAI_BASE_URL``) are deployment settings, not model identity: neither is in
``spec`` (a gateway or proxy serving the same model returns the same vectors;
a cache keyed by spec stays valid across them). Give models on custom servers
distinct names.
"""

from __future__ import annotations

import contextvars
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
from numpy.typing import NDArray

from embedkit._optional import require
from embedkit.backends.openai import tokens
from embedkit.backends.openai.models import (
    DEFAULT_ENCODING,
    DEFAULT_MAX_TOKENS,
    MODELS,
    PRICES_AS_OF,
)
from embedkit.backends.openai.plan import (
    MAX_TOKENS_PER_REQUEST,
    Estimate,
    RateLimiter,
    plan_requests,
)
from embedkit.backends.openai.wire import RequestStats, Retry, Sender
from embedkit.errors import ConfigError, UnknownDimensionError
from embedkit.protocol import BaseEmbedder, Counts, Embedded, OnLong, check_on_long, over_limit
from embedkit.spec import OptionValue
from embedkit.validation import check_texts

__all__ = ["OpenAIEmbedder", "RequestStats"]

# Exact counts taken during one embed/estimate call, by text: the policy counts a text once,
# and request planning (and the tpm limiter) reuse that count instead of running tiktoken again.
_COUNTED: contextvars.ContextVar[dict[str, int] | None] = contextvars.ContextVar(
    "embedkit_openai_counted", default=None
)


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
        dim: int | None = None,
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
        self.declared_dim = self._check_declared_dim(dim)
        retry = Retry(
            timeout=_number("timeout", timeout),
            max_retries=_integer("max_retries", max_retries, zero=True),
            deadline=None if deadline is None else _number("deadline", deadline),
            backoff=_number("backoff", backoff, zero=True),
            backoff_max=_number("backoff_max", backoff_max, zero=True),
        )
        self.max_concurrency = _integer("max_concurrency", max_concurrency)
        if encoding_format not in ("base64", "float"):
            raise ConfigError(
                f"encoding_format must be 'base64' or 'float', got {encoding_format!r}"
            )
        self.encoding_format = encoding_format
        self.encoding, self._max_tokens = self._check_tokenizer(tokenizer, max_input_tokens)
        limiter = RateLimiter(rpm, tpm)
        openai = require("openai", "openai")
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        if not key:
            raise ConfigError("no OpenAI API key: pass api_key=... or set OPENAI_API_KEY")
        try:
            client = openai.OpenAI(
                api_key=key, base_url=base_url, timeout=retry.timeout, max_retries=0
            )
        except openai.OpenAIError as exc:
            raise ConfigError(f"cannot create the OpenAI client: {exc}") from None
        self.base_url = str(client.base_url)
        request: dict[str, Any] = {"model": self.model, "encoding_format": encoding_format}
        if self.dimensions is not None:
            request["dimensions"] = self.dimensions  # `dim` is never sent
        known = self.dimensions or (self.info.dim if self.info else None) or self.declared_dim
        self._sender = Sender(
            openai,
            client,
            key,
            request=request,
            retry=retry,
            limiter=limiter,
            width=known,
            count=self.count_tokens,
        )

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

    def _check_declared_dim(self, dim: int | None) -> int | None:
        """``dim=N``: the width an unknown model returns, never sent (``None`` where known)."""
        if dim is None:
            return None
        value = _integer("dim", dim)
        known = self.dimensions or (self.info.dim if self.info is not None else None)
        if known is not None and value != known:
            raise ConfigError(f"dim={value} contradicts the known width {known} of {self.model}")
        return None if known is not None else value

    def _check_tokenizer(self, tokenizer: str | None, max_input: int | None) -> tuple[str, int]:
        if self.info is not None and tokenizer not in (None, self.info.encoding):
            raise ConfigError(f"{self.model} uses {self.info.encoding}; tokenizer cannot change")
        encoding = tokenizer or (self.info.encoding if self.info else DEFAULT_ENCODING)
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
        """Output width, without I/O (see the module doc); :class:`UnknownDimensionError`
        for a model of unknown width before its first response."""
        width = self._sender.width
        if width is None:
            raise UnknownDimensionError(
                f"the width of {self.model!r} is not known before its first response: pass "
                "dimensions=N (sent to the server), dim=N (declared only, for servers that "
                "do not take the dimensions field), or embed once first"
            )
        return width

    def _spec_parts(self) -> tuple[str, dict[str, OptionValue]]:
        options: dict[str, OptionValue] = {"on_long": self.on_long}
        if self.dimensions is not None:
            options["dimensions"] = self.dimensions
        if self.declared_dim is not None:
            options["dim"] = self.declared_dim
        if self._max_tokens != (self.info.max_tokens if self.info else DEFAULT_MAX_TOKENS):
            options["max_input_tokens"] = self._max_tokens
        if self.info is None and self.encoding != DEFAULT_ENCODING:
            options["tokenizer"] = self.encoding
        return self.model, options

    def __repr__(self) -> str:
        width = self._sender.width
        return f"<{type(self).__name__} {self.spec} dim={'?' if width is None else width}>"

    @property
    def stats(self) -> RequestStats:
        """A snapshot of the request counters (see :class:`RequestStats`)."""
        return self._sender.stats

    # ----------------------------------------------------------------- tokens
    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    def count_tokens(self, texts: Sequence[str]) -> Counts:
        """Exact tiktoken counts, as the API bills them: shape ``(len(texts),)``.

        Within one ``embed``/``estimate`` call each distinct text is tokenized once.
        """
        memo = _COUNTED.get()
        if memo is None:
            return tokens.count_tokens(texts, self.encoding)
        todo = list(dict.fromkeys(t for t in texts if t not in memo))
        if todo:
            memo.update(zip(todo, tokens.count_tokens(todo, self.encoding).tolist(), strict=True))
        return np.fromiter((memo[t] for t in texts), np.int64, len(texts))

    def _token_bounds(self, texts: Sequence[str]) -> Counts:
        """UTF-8 lengths: no tiktoken token is shorter than one byte, so no count exceeds them.

        :meth:`BaseEmbedder.token_counts` runs tiktoken only where this passes ``max_tokens``.
        """
        return np.fromiter(
            (len(t.encode("utf-8", "surrogatepass")) for t in texts), np.int64, len(texts)
        )

    def _costs(self, texts: Sequence[str]) -> Counts:
        """What batches are planned with: the exact count where the UTF-8 bound passes
        the limit (:meth:`token_counts`), the bound elsewhere."""
        counts = self.token_counts(texts)
        return np.where(counts >= 0, counts, self._token_bounds(texts))

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Character ranges of ``text``'s tiktoken tokens (:func:`tokens.spans`)."""
        return tokens.spans(text, self.encoding)

    def _truncate(self, text: str) -> str:
        return tokens.cut(
            text, self._max_tokens, self.encoding, first_only=True, count=self.count_tokens
        )[0][0]

    def _chunk(self, text: str) -> list[tuple[str, int]]:
        pieces = tokens.cut(text, self._max_tokens, self.encoding, count=self.count_tokens)
        kept = [(p, n) for p, n in pieces if p.strip()]
        return kept or pieces[:1]

    @contextmanager
    def _counting_once(
        self, texts: Sequence[str] | str = (), counts: Counts | None = None
    ) -> Iterator[None]:
        """Remember exact counts for the length of one call (seeded with known ``counts``)."""
        memo: dict[str, int] = dict(_COUNTED.get() or {})
        listed = isinstance(texts, Sequence) and not isinstance(texts, str)
        if counts is not None and listed and len(texts) == len(counts):
            pairs = zip(texts, counts.tolist(), strict=True)
            memo.update((t, c) for t, c in pairs if c >= 0 and isinstance(t, str))
        token = _COUNTED.set(memo)
        try:
            yield
        finally:
            _COUNTED.reset(token)

    # --------------------------------------------------------- embed, dry run
    def embed_detailed(
        self,
        texts: Sequence[str] | str,
        *,
        counts: Counts | None = None,
        query: bool = False,
    ) -> Embedded:
        """:meth:`BaseEmbedder.embed_detailed`; the counts it takes also plan the requests."""
        with self._counting_once(texts, counts):
            return super().embed_detailed(texts, counts=counts, query=query)

    def estimate(self, texts: Sequence[str] | str) -> Estimate:
        """Requests, tokens and cost that ``embed(texts)`` would spend; sends nothing.

        Raises :class:`~embedkit.errors.TextTooLongError` where ``embed`` would
        (``on_long="error"``): the same counts, the same decision, the same error.
        """
        with self._counting_once():
            return self._estimate(check_texts(texts))

    def _estimate(self, items: list[str]) -> Estimate:
        counts = self.token_counts(items)  # as embed counts: tiktoken only where UTF-8 could pass
        long_rows = over_limit(counts, self._max_tokens, self.on_long)  # raises as embed does
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

    def _plan(self, costs: Counts) -> list[range]:
        budget = MAX_TOKENS_PER_REQUEST
        tpm = self._sender.limiter.tpm
        if tpm is not None:
            budget = min(budget, max(tpm, self._max_tokens))
        return plan_requests(
            costs,
            max_tokens=budget,
            max_input_tokens=self._max_tokens,
            parallelism=self.max_concurrency,
        )

    def _embed(self, texts: list[str]) -> NDArray[np.float32]:
        batches = self._plan(self._costs(texts))  # each text in exactly one batch, in order
        return self._sender.send(
            [(texts[b.start : b.stop], b) for b in batches], self.max_concurrency
        )


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
