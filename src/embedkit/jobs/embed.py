"""The embedding pipeline around any backend: batches, the cache (= checkpoint), progress, streaming.

One entry point for every backend::

    embed(texts, model) -> float32 (len(texts), dim)

``texts`` is validated (every bad row named, see :mod:`embedkit.validation`),
cut into batches of ``batch_size``; each batch is looked up in the cache
(:mod:`embedkit.jobs.cache`, keyed by ``model.spec`` + ``sha256(text)``), only the
missing, distinct texts go to the backend, and the new vectors are committed to
the cache before the next batch starts. So a job that dies (an exception, a
SIGKILL) loses at most the batch in flight, and running it again embeds only
what is missing; the result equals that of a clean run.

For corpora larger than memory, :func:`embed_to_npy` and :class:`ParquetWriter`
write each batch to disk as it is made, so peak memory is one batch, not the corpus.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from embedkit.errors import BadResponseError, ConfigError, EmbedkitWarning, InvalidInputError
from embedkit.jobs.cache import EmbeddingCache, default_cache_path, text_key
from embedkit.jobs.progress import Progress
from embedkit.jobs.writers import NpyWriter
from embedkit.protocol import Embedder
from embedkit.registry import load
from embedkit.validation import check_texts, text_problem

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "EmbedJob",
    "JobStats",
    "embed",
    "embed_to_npy",
    "open_cache",
]

DEFAULT_BATCH_SIZE = 256
Matrix = NDArray[np.float32]
ModelLike = Embedder | str | Mapping[str, Any] | None
CacheOption = EmbeddingCache | str | os.PathLike[str] | bool | None


_DEFAULT_CACHES: dict[Path, EmbeddingCache] = {}


def open_cache(cache: CacheOption) -> EmbeddingCache | None:
    """``True``/``None`` -> the default cache; ``False`` -> no cache; a path -> that file."""
    if cache is False:
        return None
    if cache is True or cache is None:
        path = default_cache_path()
        if path not in _DEFAULT_CACHES:  # one per location and process: connections are reused
            _DEFAULT_CACHES[path] = EmbeddingCache(path)
        return _DEFAULT_CACHES[path]
    if isinstance(cache, EmbeddingCache):
        return cache
    if isinstance(cache, (str, os.PathLike)):
        return EmbeddingCache(cache)
    raise ConfigError(f"cache must be a bool, a path or an EmbeddingCache, got {cache!r}")


@dataclass
class JobStats:
    """What a job did, row counts: ``rows = cached + computed + duplicates``.

    ``cached``: answered by the cache; ``computed``: distinct texts sent to the
    backend; ``duplicates``: repeats of a text computed in the same batch;
    ``long_rows``: rows over the model's token limit, truncated or chunked by its
    ``on_long`` policy (of those computed in this run).
    """

    rows: int = 0
    cached: int = 0
    computed: int = 0
    duplicates: int = 0
    long_rows: list[int] = field(default_factory=list)


class EmbedJob:
    """Embed ``texts`` batch by batch; iterate :meth:`batches` for the vectors in order.

    ``texts`` may be a sequence (validated as a whole before any work) or any
    iterable (validated batch by batch; earlier batches are already cached when
    a bad row is met). ``total`` sizes the progress bar of an unsized iterable.
    """

    def __init__(
        self,
        texts: Iterable[str],
        model: ModelLike = None,
        *,
        cache: CacheOption = True,
        batch_size: int = DEFAULT_BATCH_SIZE,
        progress: bool | None = None,
        total: int | None = None,
        desc: str = "embedding",
    ) -> None:
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        if isinstance(texts, str):
            texts = [texts]
        self.validated = isinstance(texts, Sequence)
        if self.validated:
            texts = check_texts(texts)  # type: ignore[arg-type]
        self.texts = texts
        self.embedder = load(model)
        self.spec = self.embedder.spec
        self.dim = int(self.embedder.dim)
        self.cache = open_cache(cache)
        self.batch_size = batch_size
        self.progress = progress
        self.total = len(texts) if isinstance(texts, Sized) else total
        self.desc = desc
        self.stats = JobStats()

    def batches(self) -> Iterator[Matrix]:
        """Float32 ``(b, dim)`` blocks; their concatenation is the ``(n, dim)`` result."""
        with Progress(self.total, self.desc, enabled=self.progress) as bar:
            for offset, batch in _chunked(self.texts, self.batch_size):
                vectors = self._embed_batch(batch, offset)
                self.stats.rows += len(batch)
                bar.update(len(batch))
                yield vectors
        long_rows = self.stats.long_rows
        if long_rows:
            policy = getattr(self.embedder, "on_long", "truncate")
            warnings.warn(
                f"{len(long_rows)} of the {self.stats.computed} texts embedded exceed "
                f"{getattr(self.embedder, 'max_tokens', '?')} tokens and were "
                f"{'truncated' if policy == 'truncate' else 'split into chunks'} "
                f"(rows {_preview(long_rows)})",
                EmbedkitWarning,
                stacklevel=2,
            )

    def _embed_batch(self, batch: list[Any], offset: int) -> Matrix:
        if not self.validated:
            bad = [(offset + i, why) for i, t in enumerate(batch) if (why := text_problem(t))]
            if bad:
                raise InvalidInputError(
                    f"{len(bad)} inputs cannot be embedded (the {offset} rows before them are "
                    "done" + (" and cached" if self.cache else "") + ")",
                    bad,
                )
        if self.cache is None:
            out = self._call_backend(batch, [[offset + i] for i in range(len(batch))])
            self.stats.computed += len(batch)
            return out
        keys = [text_key(t) for t in batch]
        out, found = self.cache.get(self.spec, self.dim, keys)
        missing = np.flatnonzero(~found)
        self.stats.cached += len(batch) - missing.size
        if missing.size == 0:
            return out
        first: dict[str, list[int]] = {}  # distinct missing text -> all its rows in the batch
        for i in missing.tolist():
            first.setdefault(batch[i], []).append(i)
        todo = list(first)
        new = self._call_backend(todo, [[offset + i for i in first[t]] for t in todo])
        slot = {t: j for j, t in enumerate(todo)}
        for i in missing.tolist():
            out[i] = new[slot[batch[i]]]
        self.cache.put(self.spec, [keys[first[t][0]] for t in todo], new)
        self.stats.computed += len(todo)
        self.stats.duplicates += missing.size - len(todo)
        return out

    def _count_long(self, texts: list[str], rows: list[list[int]]) -> None:
        limit = getattr(self.embedder, "max_tokens", None)
        counter = getattr(self.embedder, "count_tokens", None)
        if limit is None or counter is None or getattr(self.embedder, "on_long", None) == "error":
            return
        counts = np.asarray(counter(texts))
        long = np.flatnonzero(counts > int(limit)).tolist()
        self.stats.long_rows += sorted(row for i in long for row in rows[i])

    def _call_backend(self, texts: list[str], rows: list[list[int]]) -> Matrix:
        """Embed distinct ``texts``; ``rows[i]`` lists every job row that holds ``texts[i]``."""
        try:
            self._count_long(texts, rows)
            with warnings.catch_warnings():  # the job warns once, with job rows, at the end
                warnings.simplefilter("ignore", EmbedkitWarning)
                out = np.asarray(self.embedder.embed(texts), dtype=np.float32)
        except InvalidInputError as exc:  # positions within this call -> rows of the job
            raise type(exc)(
                f"{len(exc.rows)} inputs rejected by {self.spec}",
                sorted((row, why) for i, why in exc.rows if 0 <= i < len(rows) for row in rows[i]),
            ) from exc
        if out.shape != (len(texts), self.dim):
            raise BadResponseError(
                f"{self.spec} returned shape {out.shape} for {len(texts)} texts, "
                f"expected ({len(texts)}, {self.dim})"
            )
        bad = np.flatnonzero(~np.isfinite(out).all(axis=1))
        if bad.size:
            raise BadResponseError(
                f"{self.spec} returned NaN or infinity for rows "
                f"{', '.join(str(rows[i][0]) for i in bad[:10])}"
            )
        return out


def _preview(rows: list[int], limit: int = 10) -> str:
    ordered = sorted(rows)
    text = ", ".join(map(str, ordered[:limit]))
    return text + (f", ... ({len(ordered)} in all)" if len(ordered) > limit else "")


def _chunked(items: Iterable[Any], size: int) -> Iterator[tuple[int, list[Any]]]:
    if isinstance(items, Sequence):
        for start in range(0, len(items), size):
            yield start, list(items[start : start + size])
        return
    batch: list[Any] = []
    start = 0
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield start, batch
            start += size
            batch = []
    if batch:
        yield start, batch


def embed(
    texts: Iterable[str],
    model: ModelLike = None,
    *,
    cache: CacheOption = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool | None = None,
) -> Matrix:
    """Embed ``texts`` with ``model`` (a spec, a config dict or an Embedder; ``None``:
    :func:`embedkit.load`'s default) through the cache. Float32 ``(n, dim)``.

    ``cache``: ``True`` (default location, see :mod:`embedkit.jobs.cache`), ``False``
    (off), a file path, or an :class:`~embedkit.jobs.cache.EmbeddingCache`.
    ``progress``: ``None`` = a bar only when a person watches (terminal or notebook).
    """
    job = EmbedJob(texts, model, cache=cache, batch_size=batch_size, progress=progress)
    if job.total is None:
        blocks = list(job.batches())
        if not blocks:
            return np.empty((0, job.dim), dtype=np.float32)
        return np.concatenate(blocks)
    out = np.empty((job.total, job.dim), dtype=np.float32)
    at = 0
    for block in job.batches():
        out[at : at + len(block)] = block
        at += len(block)
    return out


# -- streaming to disk ---------------------------------------------------------------
def embed_to_npy(
    texts: Iterable[str],
    path: str | os.PathLike[str],
    model: ModelLike = None,
    *,
    cache: CacheOption = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool | None = None,
    total: int | None = None,
) -> JobStats:
    """Embed ``texts`` into the ``.npy`` file ``path`` block by block (bounded memory).

    ``numpy.load(path, mmap_mode="r")`` gives the float32 ``(n, dim)`` result.
    """
    job = EmbedJob(texts, model, cache=cache, batch_size=batch_size, progress=progress, total=total)
    with NpyWriter(path, job.dim) as writer:
        for block in job.batches():
            writer.write(block)
    return job.stats
