"""Small parts of the sentence-transformers backend shared by its modules."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from embedkit.errors import OutOfVocabularyError

__all__ = ["TokenVectors", "quiet"]


@dataclass(frozen=True)
class TokenVectors:
    """Contextual vectors of one text: ``vectors[i]`` belongs to ``tokens[i]``.

    ``tokens`` are the model's word pieces (special tokens included), ``vectors``
    is float32 ``(len(tokens), dim)``, and ``spans[i]`` is the ``(start, end)``
    character range of token i in the text (``(0, 0)`` for special tokens).
    """

    tokens: list[str]
    vectors: NDArray[np.float32]
    spans: list[tuple[int, int]]

    def vector_of(self, word: str) -> NDArray[np.float32]:
        """Mean contextual vector of the word pieces that spell ``word`` (first match).

        Raises :class:`~embedkit.errors.OutOfVocabularyError` (a ``KeyError``) if no
        run of pieces spells it.
        """
        pieces = [t.removeprefix("##").lower() for t in self.tokens]
        target = word.lower()
        for start in range(len(pieces)):
            text = ""
            for end in range(start, len(pieces)):
                text += pieces[end]
                if text == target:
                    found: NDArray[np.float32] = self.vectors[start : end + 1].mean(axis=0)
                    return found
                if not target.startswith(text):
                    break
        raise OutOfVocabularyError(
            f"{word!r} is not among the tokens {self.tokens}", [(0, f"{word!r}")]
        )


@contextmanager
def quiet(logger_name: str) -> Iterator[None]:
    """Only errors from the logger ``logger_name`` while the block runs."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
