"""Word tokenisation used identically at training and at embedding time.

The default is Unicode-aware: a token is a run of letters, digits or
underscores (``\\w+`` under Python's Unicode rules), optionally lower-cased.
It never downloads anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["WordTokenizer", "simple_tokenize"]

_WORD = re.compile(r"\w+", re.UNICODE)


def simple_tokenize(text: str, lowercase: bool = True) -> list[str]:
    """``\\w+`` runs of ``text``, lower-cased if asked: ``"Don't stop" -> ["don", "t", "stop"]``."""
    return _WORD.findall(text.lower() if lowercase else text)


@dataclass(frozen=True)
class WordTokenizer:
    """A configurable word tokenizer; ``name`` identifies it inside a model's spec."""

    lowercase: bool = True

    @property
    def name(self) -> str:
        return "words" if self.lowercase else "words-cased"

    def __call__(self, text: str) -> list[str]:
        return simple_tokenize(text, self.lowercase)
