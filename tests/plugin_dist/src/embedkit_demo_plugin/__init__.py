"""A third-party backend: hashing of each text reversed (enough to be distinct)."""

from __future__ import annotations

from typing import Any

from embedkit.backends.hashing import HashingEmbedder


class ReverseHashingEmbedder(HashingEmbedder):
    backend = "reverse-hashing"

    def _embed(self, texts: list[str]) -> Any:
        return super()._embed([t[::-1] for t in texts])
