"""Tokens and ELMo's character ids.

ELMo reads tokens, each as the UTF-8 bytes of the token (cut to ``max_chars - 2``
bytes) between a begin-of-word and an end-of-word mark, padded to ``max_chars``
(50 in every published model). Ids, as in AllenNLP's ``ELMoCharacterMapper``:
bytes ``0..255``, ``256`` begin of sentence, ``257`` end of sentence, ``258``
begin of word, ``259`` end of word, ``260`` padding; every id is then shifted by
+1, so that ``0`` marks a padded (absent) token. A sentence is ``<S> tokens </S>``,
where ``<S>`` is the ids ``[bow, 256, eow, pad, ...]`` and ``</S>`` the same with 257.

Tokenizers (the published models were trained on tokenized English, case kept):

* ``"punct"`` (default): ``\\w+`` runs and every other non-space character on its
  own (``"don't stop!"`` -> ``don ' t stop !``); Chinese/Japanese characters one
  token each, as the house tokenizer (:mod:`embedkit.words.tokenize`) does;
* ``"whitespace"``: split on whitespace only, for text that is already tokenized
  (use it to feed the models exactly the tokens of your own tokenizer, e.g. Moses).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from embedkit.errors import ConfigError
from embedkit.words.tokenize import CJK_CHARS

__all__ = ["TOKENIZERS", "char_ids", "token_spans"]

BOS, EOS, BOW, EOW, PAD = 256, 257, 258, 259, 260
TOKENIZERS = ("punct", "whitespace")
_PATTERNS = {
    "punct": re.compile(rf"(?=\w)[{CJK_CHARS}]|[^\W{CJK_CHARS}]+|[^\w\s]"),
    "whitespace": re.compile(r"\S+"),
}


def token_spans(text: str, tokenizer: str) -> list[tuple[int, int]]:
    """``(start, end)`` character ranges of the tokens of ``text``, in order."""
    pattern = _PATTERNS.get(tokenizer)
    if pattern is None:
        raise ConfigError(f"ELMo tokenizer must be one of {TOKENIZERS}, got {tokenizer!r}")
    return [m.span() for m in pattern.finditer(text)]


def _marker(char: int, max_chars: int) -> list[int]:
    ids = [PAD] * max_chars
    ids[0], ids[1], ids[2] = BOW, char, EOW
    return ids


def _word(token: str, max_chars: int) -> list[int]:
    data = token.encode("utf-8", "ignore")[: max_chars - 2]
    ids = [PAD] * max_chars
    ids[0] = BOW
    ids[1 : len(data) + 1] = list(data)
    ids[len(data) + 1] = EOW
    return ids


def char_ids(sentences: Sequence[Sequence[str]], max_chars: int) -> NDArray[np.int64]:
    """Shifted character ids of a batch, sentence marks included.

    ``out[b, t]`` (int64, shape ``(len(sentences), 2 + max_len, max_chars)``) holds
    ``<S>`` at ``t = 0``, token ``t - 1`` of sentence ``b`` for ``1 <= t <= n_b``,
    ``</S>`` at ``t = n_b + 1`` and zeros after it, every id + 1.
    """
    longest = max((len(s) for s in sentences), default=0)
    out = np.zeros((len(sentences), longest + 2, max_chars), dtype=np.int64)
    bos, eos = _marker(BOS, max_chars), _marker(EOS, max_chars)
    for b, sentence in enumerate(sentences):
        rows = [bos, *(_word(token, max_chars) for token in sentence), eos]
        out[b, : len(rows)] = np.asarray(rows, dtype=np.int64) + 1
    return out
