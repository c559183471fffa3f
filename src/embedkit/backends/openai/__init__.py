"""The OpenAI embeddings API and OpenAI-compatible servers: ``openai:<model>``.

``client`` (the embedder), ``plan`` (request planning, rate limits), ``wire``
(response checks, error triage), ``tokens`` (offline tiktoken), ``models`` (the
one table of widths, limits and prices).
"""

from embedkit.backends.openai.client import OpenAIEmbedder, RequestStats
from embedkit.backends.openai.models import MODELS, ModelInfo

__all__ = ["MODELS", "ModelInfo", "OpenAIEmbedder", "RequestStats"]
