"""The one table of known OpenAI embedding models: width, input limit, tokenizer, price.

Prices are the standard (non-batch) API prices in USD per million input tokens, as
published with the text-embedding-3 launch on 2024-01-25 and unchanged when this
table was written. Check OpenAI's pricing page before relying on them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_ENCODING", "DEFAULT_MAX_TOKENS", "MODELS", "PRICES_AS_OF", "ModelInfo"]

PRICES_AS_OF = "2024-01-25"
# For models not in MODELS (OpenAI-compatible servers), unless the options say otherwise:
DEFAULT_MAX_TOKENS = 8192
DEFAULT_ENCODING = "cl100k_base"


@dataclass(frozen=True)
class ModelInfo:
    """A known model: native width, tokens per input, tokenizer, ``dimensions`` support, price."""

    dim: int
    max_tokens: int
    encoding: str
    flexible_dimensions: bool
    usd_per_million_tokens: float | None = None


MODELS: dict[str, ModelInfo] = {
    "text-embedding-3-small": ModelInfo(1536, 8192, "cl100k_base", True, 0.02),
    "text-embedding-3-large": ModelInfo(3072, 8192, "cl100k_base", True, 0.13),
    "text-embedding-ada-002": ModelInfo(1536, 8192, "cl100k_base", False, 0.10),
}
