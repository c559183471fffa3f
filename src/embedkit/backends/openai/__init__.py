"""The OpenAI embeddings API and OpenAI-compatible servers: ``openai:<model>``.

``client`` (the embedder: options, identity, token policy hooks, dry run),
``plan`` (request planning, rate limits), ``wire`` (sending with retries,
response checks, error triage), ``tokens`` (offline tiktoken), ``models`` (the
one table of widths, limits, tokenizers and prices).
"""

from embedkit.backends.openai.client import OpenAIEmbedder
from embedkit.backends.openai.models import MODELS, ModelInfo
from embedkit.backends.openai.wire import RequestStats

__all__ = ["MODELS", "ModelInfo", "OpenAIEmbedder", "RequestStats"]
