"""Long documents cut into chunks by the model's own tokens, each knowing where it came from.

A :class:`Chunk` is a run of whole tokens of one document, with its document id and
its character offsets into the original text::

    document[chunk.start:chunk.end] == chunk.text
    count_tokens([chunk.text])[0] == chunk.tokens <= size

``size`` is counted as the model counts (:meth:`~embedkit.protocol.TokenLimited.count_tokens`:
prompt and special tokens included where the model counts them), so ``size=max_tokens``
means every chunk fits the model's window and nothing is truncated. It defaults to
``min(256, max_tokens)`` and may not exceed ``max_tokens``.

Token positions come from the model (:class:`~embedkit.protocol.TokenSpans`: the
sentence-transformers tokenizer's offset mapping, tiktoken's token offsets, the
hashing tokenizer's matches). A model that cannot say where its tokens are (E5,
word vectors) is cut at the CJK-aware word positions of
:func:`~embedkit.words.tokenize.word_spans`, and every chunk is still measured with
its own ``count_tokens``; a model with no tokenizer at all counts those positions.

Rules: a chunk starts and ends on a token (surrounding whitespace is left out); a
cut that would split a word (no space between two tokens, neither of them CJK) moves back to the word's
start when that keeps at least 7/8 of the chunk. The last ``overlap`` tokens of a
chunk open the next one (``0 <= overlap`` < the text tokens a chunk holds):
consecutive chunks share at most ``overlap`` tokens (the next chunk starts on a word
where it can, so sometimes fewer), every token of the document is in at least one
chunk, and with ``overlap=0`` the chunks tile the tokens in order. An empty or
whitespace-only document (one with no tokens) has no chunks.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from embedkit.errors import ConfigError, InvalidInputError
from embedkit.jobs.embed import ModelLike
from embedkit.protocol import Embedder, TokenLimited, TokenSpans
from embedkit.registry import load
from embedkit.search.rows import Id, check_ids
from embedkit.validation import text_problem
from embedkit.words.tokenize import CJK_CHARS, word_spans

__all__ = ["DEFAULT_SIZE", "Chunk", "Chunker", "chunk_documents", "clean_spans"]

DEFAULT_SIZE = 256
Span = tuple[int, int]
Count = Callable[[str], int]
_CJK = re.compile(f"[{CJK_CHARS}]")


@dataclass(frozen=True)
class Chunk:
    """Chunk ``index`` (from 0) of document ``doc_id``: ``document[start:end] == text``,
    ``tokens`` as the model counts them."""

    doc_id: Id
    index: int
    text: str
    start: int
    end: int
    tokens: int


class Chunker:
    """Cuts texts into :class:`Chunk` s of at most ``size`` tokens of ``model``."""

    def __init__(
        self, model: ModelLike = None, *, size: int | None = None, overlap: int = 0
    ) -> None:
        self.model: Embedder = load(model)
        limit = _limit(self.model)
        self._count = _counter(self.model) or (lambda text: len(self.spans(text)))
        self.overhead = self._count("")  # prompt and special tokens around any text
        if size is None:
            size = DEFAULT_SIZE if limit is None else min(DEFAULT_SIZE, limit)
        self.size = _integer("size", size, 1)
        self.overlap = _integer("overlap", overlap, 0)
        if limit is not None and self.size > limit:
            raise ConfigError(
                f"size={self.size} exceeds the model's limit of {limit} tokens: "
                "chunks would be truncated"
            )
        self.budget = self.size - self.overhead  # tokens of text a chunk may hold
        if self.budget < 1:
            raise ConfigError(
                f"size={self.size} leaves no room for text beside the {self.overhead} "
                "tokens (prompt, special tokens) the model adds to every input"
            )
        if self.overlap >= self.budget:
            raise ConfigError(
                f"overlap={self.overlap} must be less than the {self.budget} tokens of "
                f"text a chunk of size={self.size} holds"
            )

    def __repr__(self) -> str:
        return f"<Chunker size={self.size} overlap={self.overlap} model={self.model.spec!r}>"

    def count(self, text: str) -> int:
        """Tokens of ``text`` as the model counts them (what ``size`` bounds)."""
        return self._count(text)

    def spans(self, text: str) -> list[Span]:
        """Token positions in ``text`` (the model's own where it has them), cleaned: in
        order, not overlapping, not empty, whitespace trimmed (:func:`clean_spans`)."""
        found = self.model.token_spans(text) if isinstance(self.model, TokenSpans) else None
        return clean_spans(text, word_spans(text) if found is None else found)

    def chunk(self, text: str, doc_id: Id = 0) -> list[Chunk]:
        """The chunks of one document (see the module docstring), in order."""
        problem = _document_problem(text)
        if problem is not None:
            raise InvalidInputError(f"document {doc_id!r} cannot be chunked", [(0, problem)])
        spans = self.spans(text)
        out: list[Chunk] = []
        i, n, last = 0, len(spans), 0  # last: where the previous chunk ended
        while i < n:
            end, tokens = self._fit(text, spans, i, doc_id)
            if end <= last:  # the overlap left no room for a new token: no overlap here
                i = last
                end, tokens = self._fit(text, spans, i, doc_id)
            snapped = _snap_back(text, spans, i, end, last + 1)
            if snapped != end:  # re-counted: a tokenizer may merge differently at the cut
                fewer = self._count(text[spans[i][0] : spans[snapped - 1][1]])
                if fewer <= self.size:
                    end, tokens = snapped, fewer
            a, b = spans[i][0], spans[end - 1][1]
            out.append(Chunk(doc_id, len(out), text[a:b], a, b, tokens))
            if end >= n:
                break
            i, last = _next_start(text, spans, i, end, self.overlap), end
        return out

    def chunk_documents(
        self, documents: Sequence[str], ids: Sequence[Id] | None = None
    ) -> list[Chunk]:
        """Every document's chunks, in document order; ``ids`` default to positions.

        Raises :class:`~embedkit.errors.InvalidInputError` naming every document that is
        not a text (``None``, NaN, bytes, numbers) before any work; empty documents
        have no chunks.
        """
        if isinstance(documents, (str, bytes)) or not isinstance(documents, Sequence):
            raise ConfigError(
                f"documents must be a sequence of texts, got {type(documents).__name__}"
            )
        doc_ids = check_ids(None if ids is None else list(ids), len(documents), 0, {})
        bad = [(i, why) for i, doc in enumerate(documents) if (why := _document_problem(doc))]
        if bad:
            raise InvalidInputError(f"{len(bad)} of {len(documents)} documents are not texts", bad)
        return [c for doc, d in zip(documents, doc_ids, strict=True) for c in self.chunk(doc, d)]

    def _fit(self, text: str, spans: list[Span], i: int, doc_id: Id) -> tuple[int, int]:
        """``(end, count)``: the largest ``end`` such that tokens ``i:end`` count at most
        ``size``, and their count."""
        n = len(spans)
        lo, lo_used, hi = i, 0, min(n, i + self.budget)  # lo: known to fit (i: nothing yet)
        while True:  # grow while it fits (positions that hold less than a token each)
            used = self._count(text[spans[i][0] : spans[hi - 1][1]])
            if used > self.size:
                break
            lo, lo_used = hi, used
            if hi == n or used == self.size:
                return lo, lo_used
            hi = min(n, hi + self.size - used)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            used = self._count(text[spans[i][0] : spans[mid - 1][1]])
            lo, lo_used, hi = (mid, used, hi) if used <= self.size else (lo, lo_used, mid)
        if lo == i:
            a, b = spans[i]
            raise ConfigError(
                f"document {doc_id!r}: the token at characters {a}:{b} alone takes more "
                f"than size={self.size} tokens"
            )
        return lo, lo_used


def chunk_documents(
    documents: Sequence[str],
    model: ModelLike = None,
    ids: Sequence[Id] | None = None,
    *,
    size: int | None = None,
    overlap: int = 0,
) -> list[Chunk]:
    """``Chunker(model, size=size, overlap=overlap).chunk_documents(documents, ids)``."""
    return Chunker(model, size=size, overlap=overlap).chunk_documents(documents, ids)


def clean_spans(text: str, spans: Sequence[Span]) -> list[Span]:
    """``spans`` clipped to ``text``, whitespace trimmed, empty ones dropped, and
    overlapping or out-of-order ones merged into their predecessor."""
    out: list[Span] = []
    for raw_a, raw_b in spans:
        a, b = max(0, int(raw_a)), min(len(text), int(raw_b))
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if a >= b:
            continue
        if out and a < out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _document_problem(value: object) -> str | None:
    """Why ``value`` cannot be chunked; empty and whitespace-only texts can (no chunks)."""
    if isinstance(value, str) and not value.strip():
        return None
    return text_problem(value)


def _splits_word(text: str, spans: list[Span], j: int) -> bool:
    """Whether a cut before token ``j`` splits a word: no space between tokens ``j - 1``
    and ``j``, and neither side of the cut is a CJK character (each of those is a word)."""
    at = spans[j][0]
    return at == spans[j - 1][1] and not _CJK.match(text, at) and not _CJK.match(text, at - 1)


def _snap_back(text: str, spans: list[Span], i: int, end: int, least: int) -> int:
    """``end`` moved back to a word start if it would split a word and the chunk keeps 7/8
    of its tokens (and ends at ``least`` or later)."""
    if end >= len(spans) or not _splits_word(text, spans, end):
        return end
    floor = max(i + max(1, (end - i) * 7 // 8), least)
    for j in range(end - 1, floor - 1, -1):
        if not _splits_word(text, spans, j):
            return j
    return end


def _next_start(text: str, spans: list[Span], i: int, end: int, overlap: int) -> int:
    """Where the chunk after ``i:end`` starts: ``overlap`` tokens back, then on a word."""
    start = max(end - overlap, i + 1)
    while start < end and _splits_word(text, spans, start):
        start += 1
    return start


def _limit(model: Embedder) -> int | None:
    return model.max_tokens if isinstance(model, TokenLimited) else None


def _counter(model: Embedder) -> Count | None:
    """One text -> its token count by the model; ``None`` if it has no tokenizer."""
    if not isinstance(model, TokenLimited):
        return None
    try:
        model.count_tokens([""])
    except ConfigError:  # a backend without a tokenizer
        return None
    return lambda text: int(np.asarray(model.count_tokens([text]))[0])


def _integer(name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < low:
        raise ConfigError(f"{name} must be >= {low}, got {value}")
    return int(value)
