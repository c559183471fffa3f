"""Question -> passages: the retrieval half of RAG, over chunks of long documents.

:class:`PassageIndex` cuts documents into chunks by the model's tokens
(:mod:`embedkit.search.chunks`), embeds the chunks through the one job path and
keeps them in a :class:`~embedkit.search.index.VectorIndex` (one row per chunk;
its metadata holds the chunk: ``doc_id``, ``chunk``, ``start``, ``end``, ``text``,
``tokens``).
A question is embedded by the model's ``embed_query`` where it has one (E5, prompted
sentence-transformers models) and compared with every chunk by cosine similarity::

    score(q, chunk) = cos(embed_query(q), embed(chunk.text))
    search(q, k, per_doc=1)  -> the best chunk of each of the k best documents,
                                documents ranked by their best chunk
    search(q, k, per_doc=m)  -> up to m chunks per document, grouped by document
    search(q, k, per_doc=None) -> the k best chunks, whatever their documents

Each result is a :class:`Passage`; ``document[p.start:p.end] == p.text``. Saved, a
passage index is an index folder (:mod:`embedkit._folder`) that
:meth:`PassageIndex.load` reads back; :func:`format_context` turns passages into the
context string a prompt takes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedkit.errors import ConfigError, CorruptFileError
from embedkit.jobs.cache import CacheOption
from embedkit.jobs.embed import DEFAULT_BATCH_SIZE, ModelLike
from embedkit.protocol import embed_queries
from embedkit.search.chunks import Chunk, Chunker
from embedkit.search.index import Hit, VectorIndex
from embedkit.search.rows import Id
from embedkit.search.store import VectorStore

__all__ = ["Passage", "PassageIndex", "chunk_metadata", "format_context"]

FIELDS = ("doc_id", "chunk", "start", "end", "text", "tokens")


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk: ``document(doc_id)[start:end] == text``; ``chunk`` is its
    position among the document's chunks; ``score`` its cosine with the question."""

    doc_id: Id
    score: float
    text: str
    start: int
    end: int
    chunk: int


class PassageIndex:
    """Chunks of documents in a :class:`VectorIndex`, searched by question (module docstring)."""

    def __init__(self, index: VectorIndex) -> None:
        """Wrap an index whose rows are chunks (built by :meth:`from_chunks`); a
        :class:`ConfigError` names the first row whose metadata is not a chunk."""
        self.index = index
        self._chunks = [_chunk_of(meta, row) for row, meta in enumerate(index.metadata)]
        self._by_id = dict(zip(index.ids, self._chunks, strict=True))

    @classmethod
    def from_documents(
        cls,
        documents: Sequence[str],
        model: ModelLike = None,
        ids: Sequence[Id] | None = None,
        *,
        size: int | None = None,
        overlap: int = 0,
        cache: CacheOption = True,
        batch_size: int = DEFAULT_BATCH_SIZE,
        progress: bool | None = None,
        store: str | VectorStore = "exact",
    ) -> PassageIndex:
        """Chunk ``documents`` (``size``/``overlap`` in the model's tokens, see
        :class:`~embedkit.search.chunks.Chunker`), embed the chunks and index them."""
        chunker = Chunker(model, size=size, overlap=overlap)
        return cls.from_chunks(
            chunker.chunk_documents(documents, ids),
            chunker.model,
            cache=cache,
            batch_size=batch_size,
            progress=progress,
            store=store,
        )

    @classmethod
    def from_chunks(
        cls,
        chunks: Sequence[Chunk],
        model: ModelLike = None,
        *,
        cache: CacheOption = True,
        batch_size: int = DEFAULT_BATCH_SIZE,
        progress: bool | None = None,
        store: str | VectorStore = "exact",
    ) -> PassageIndex:
        """Embed ready :class:`Chunk` s with ``model`` (the one that cut them) and index them."""
        bad = [i for i, c in enumerate(chunks) if not isinstance(c, Chunk)]
        if isinstance(chunks, (str, bytes)) or bad:
            raise ConfigError(f"chunks must be a sequence of Chunk (not at positions {bad[:5]})")
        index = VectorIndex.from_texts(
            [c.text for c in chunks],
            model,
            metadata=chunk_metadata(chunks),
            cache=cache,
            batch_size=batch_size,
            progress=progress,
            store=store,
        )
        return cls(index)

    def __len__(self) -> int:
        """The number of chunks."""
        return len(self._chunks)

    def __repr__(self) -> str:
        docs = len({c.doc_id for c in self._chunks})
        return f"<PassageIndex chunks={len(self)} documents={docs} spec={self.index.spec!r}>"

    @property
    def chunks(self) -> list[Chunk]:
        return list(self._chunks)

    def search(self, question: str, k: int = 5, *, per_doc: int | None = 1) -> list[Passage]:
        """The passages of the ``k`` documents best matching ``question`` (module docstring)."""
        if not isinstance(question, str):
            raise ConfigError(f"question must be a str, got {type(question).__name__}")
        return self.search_batch([question], k, per_doc=per_doc)[0]

    def search_batch(
        self, questions: Sequence[str], k: int = 5, *, per_doc: int | None = 1
    ) -> list[list[Passage]]:
        """:meth:`search` for each question; each question is embedded once."""
        if isinstance(questions, str) or not all(isinstance(q, str) for q in questions):
            raise ConfigError("questions must be a sequence of str")
        _count("k", k, 0)
        if per_doc is not None:
            _count("per_doc", per_doc, 1)
        if not questions or not len(self) or k == 0:
            return [[] for _ in questions]
        vectors = embed_queries(self.index.embedder, list(questions))
        if per_doc is None:
            return [[self._passage(h) for h in row] for row in self.index.search_batch(vectors, k)]
        out: list[list[Passage]] = []
        for vector in vectors:
            wanted = min(len(self), k * per_doc * 4)
            while True:  # widen until k documents are found or every chunk was seen
                (hits,) = self.index.search_batch(vector[None, :], wanted)
                grouped = self._group(hits, k, per_doc)
                if len(grouped) == k or wanted == len(self):
                    break
                wanted = min(len(self), wanted * 4)
            out.append([self._passage(h) for group in grouped for h in group])
        return out

    def _passage(self, hit: Hit) -> Passage:
        c = self._by_id[hit.id]
        return Passage(c.doc_id, hit.score, c.text, c.start, c.end, c.index)

    def _group(self, hits: list[Hit], k: int, per_doc: int) -> list[list[Hit]]:
        """Hits (best first) grouped by document: the ``k`` best documents, ``per_doc`` each."""
        groups: dict[Id, list[Hit]] = {}
        for hit in hits:
            doc = self._by_id[hit.id].doc_id
            group = groups.get(doc)
            if group is None:
                if len(groups) == k:
                    continue
                groups[doc] = group = []
            if len(group) < per_doc:
                group.append(hit)
        return list(groups.values())

    # -- persistence --------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the index folder (vectors, chunk rows as metadata) atomically."""
        return self.index.save(path)

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], embedder: ModelLike = None, *, verify: bool = True
    ) -> PassageIndex:
        """Read a folder written by :meth:`save`; :class:`CorruptFileError` if its rows are
        not chunks."""
        index = VectorIndex.load(path, embedder, verify=verify)
        try:
            return cls(index)
        except ConfigError as exc:
            raise CorruptFileError(f"{path}: {exc}") from exc


def format_context(
    passages: Sequence[Passage],
    template: str = "[{n}] {text}",
    separator: str = "\n\n",
) -> str:
    """``separator.join(template.format(n=i + 1, **fields of passage i))``: the passages as
    one context string for a prompt. ``template`` may use ``{n}``, ``{doc_id}``,
    ``{score}``, ``{text}``, ``{start}``, ``{end}`` and ``{chunk}``."""
    if not isinstance(template, str) or not isinstance(separator, str):
        raise ConfigError("template and separator must be strings")
    bad = [i for i, p in enumerate(passages) if not isinstance(p, Passage)]
    if isinstance(passages, (str, bytes)) or bad:
        raise ConfigError(f"passages must be a sequence of Passage (not at positions {bad[:5]})")
    try:
        return separator.join(
            template.format(n=i + 1, **p.__dict__) for i, p in enumerate(passages)
        )
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"bad template {template!r}: {exc!r}") from exc


def chunk_metadata(chunks: Sequence[Chunk]) -> list[dict[str, Any]]:
    """One metadata row per chunk, as a passage index stores it (``FIELDS``)."""
    return [{f: getattr(c, "index" if f == "chunk" else f) for f in FIELDS} for c in chunks]


def _chunk_of(meta: object, row: int) -> Chunk:
    """The chunk a row's metadata describes, checked (the files of a saved index may be edited)."""
    if not isinstance(meta, dict) or set(meta) != set(FIELDS):
        raise ConfigError(f"row {row} is not a chunk: its metadata must hold {FIELDS}")
    doc, text = meta["doc_id"], meta["text"]
    numbers = [meta[f] for f in ("chunk", "start", "end", "tokens")]
    if not isinstance(text, str) or isinstance(doc, bool) or not isinstance(doc, (str, int)):
        raise ConfigError(f"row {row}: doc_id must be a str or int and text a str")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in numbers):
        raise ConfigError(f"row {row}: chunk, start, end and tokens must be integers >= 0")
    index, start, end, tokens = numbers
    if end - start != len(text):
        raise ConfigError(f"row {row}: end - start != len(text)")
    return Chunk(doc, index, text, start, end, tokens)


def _count(name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)
