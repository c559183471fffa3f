"""Input validation shared by every backend: what counts as a usable text.

Policy (declared, tested): each input must be a ``str`` that is not empty or
whitespace-only and is valid Unicode (no lone surrogates such as ``"\\ud800"``).
``None``, ``float('nan')`` (pandas' missing cell), numbers, bytes and other
objects are rejected -- never coerced to ``"nan"`` or ``"None"``. All offending
rows are reported at once, before any backend work.

Accepted texts are normalised to Unicode NFC, for every backend: ``"café"``
typed with a combining accent (NFD) and with a precomposed ``é`` (NFC) are the
same text, get the same vector and share one cache entry.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable

from embedkit.errors import InvalidInputError

__all__ = ["check_texts", "nfc", "text_problem"]


def text_problem(value: object) -> str | None:
    """Why ``value`` is not an embeddable text, or ``None`` if it is fine."""
    if isinstance(value, str):
        if not value.strip():
            return "empty string" if not value else "whitespace-only"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "lone surrogate (not valid Unicode)"
        return None
    if value is None:
        return "None (missing value)"
    if isinstance(value, float) and math.isnan(value):
        return "NaN (missing value)"
    if type(value).__name__ in ("NAType", "NaTType"):
        return "NA (missing value)"
    return f"not a string ({type(value).__name__})"


def check_texts(texts: Iterable[object] | str) -> list[str]:
    """Return ``texts`` as a list of ``str``, or raise for every bad row.

    A bare ``str`` is one text (the result then has one row). Raises
    :class:`~embedkit.errors.InvalidInputError` whose ``rows`` lists
    ``(position, reason)`` for every rejected input.
    """
    if isinstance(texts, str):
        texts = [texts]
    elif isinstance(texts, bytes):
        raise InvalidInputError("texts must be str, not bytes; decode them first")
    items = list(texts)
    bad = [(i, why) for i, value in enumerate(items) if (why := text_problem(value)) is not None]
    if bad:
        raise InvalidInputError(f"{len(bad)} of {len(items)} inputs cannot be embedded", bad)
    return [nfc(t) for t in items]  # type: ignore[arg-type]


def nfc(text: str) -> str:
    """``text`` in Unicode normal form C (cheap when it already is)."""
    return text if unicodedata.is_normalized("NFC", text) else unicodedata.normalize("NFC", text)
