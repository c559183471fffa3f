"""The one text->vectors path: validation, the on_long policy, batches, the cache, progress.

Every way into vectors goes through :class:`EmbedJob`: :func:`embed`,
:func:`embed_to_npy`, ``VectorIndex.from_texts``/``add``, ``embed_frame``, the CLI::

    embed(texts, model) -> float32 (len(texts), dim)

``texts`` is validated (every bad row named, see :mod:`embedkit.validation`) and
cut into batches of ``batch_size``. Each batch is looked up in the cache
(:mod:`embedkit.jobs.cache`, keyed by ``model.spec`` + ``sha256(text)``); only the
missing, distinct texts go to the backend, and their vectors are committed to the
cache before the next batch starts. So a job that dies (an exception, a SIGKILL)
loses at most the batch in flight, and running it again embeds only what is
missing; the result equals that of a clean run.

Long texts: the model's ``on_long`` policy runs inside the backend
(:meth:`~embedkit.protocol.BaseEmbedder.embed_detailed`), with tokens counted once.
A job may ask for another policy (``on_long=``: the model is rebuilt from its
spec with it), or ``"drop"``: rows over the limit are left out of the output and
listed in ``stats.dropped``. With ``count_tokens=True`` (implied by ``"drop"``)
every row is counted once, cache hits included, and each :class:`Block` carries
the counts.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence, Sized
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import numpy as np
from numpy.typing import NDArray

from embedkit.errors import (
    ConfigError,
    EmbedkitWarning,
    InvalidInputError,
    UnknownDimensionError,
)
from embedkit.jobs.cache import CacheOption, open_cache, text_key
from embedkit.jobs.progress import Progress
from embedkit.jobs.writers import NpyWriter
from embedkit.protocol import (
    BaseEmbedder,
    Counts,
    Embedder,
    TokenLimited,
    check_on_long,
    checked_matrix,
    over_limit,
    preview,
)
from embedkit.registry import load
from embedkit.validation import check_texts, nfc, text_problem

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "Block",
    "EmbedJob",
    "JobStats",
    "embed",
    "embed_to_npy",
]

DEFAULT_BATCH_SIZE = 256
Matrix = NDArray[np.float32]
ModelLike = Embedder | str | Mapping[str, Any] | None
JobOnLong = Literal["error", "truncate", "chunk", "drop"]


@dataclass
class JobStats:
    """What a job did, in rows: ``rows = cached + computed + duplicates + len(dropped)``.

    ``cached``: answered by the cache; ``computed``: distinct texts sent to the
    backend; ``duplicates``: repeats of a text computed in the same batch;
    ``long_rows``: rows over the model's token limit that were truncated or chunked
    (those computed in this run, or every such row when tokens are counted);
    ``dropped``: rows left out under ``on_long="drop"``; ``over_limit``: row -> token
    count of every counted row over the limit.
    """

    rows: int = 0
    cached: int = 0
    computed: int = 0
    duplicates: int = 0
    long_rows: list[int] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)
    over_limit: dict[int, int] = field(default_factory=dict)


class Block(NamedTuple):
    """One batch of output: ``vectors[i]`` is the vector of input row ``rows[i]``.

    ``vectors``: float32 ``(b, dim)``; ``rows``: int64 ``(b,)``, increasing;
    ``counts``: int64 ``(b,)`` token counts when the job counts them (exact with
    ``count_tokens=True``; else ``-1`` where a text is known to be within the limit),
    otherwise ``None``.
    """

    vectors: Matrix
    rows: NDArray[np.int64]
    counts: Counts | None


class EmbedJob:
    """Embed ``texts`` batch by batch; iterate :meth:`batches` for the blocks, in order.

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
        on_long: JobOnLong | None = None,
        count_tokens: bool = False,
    ) -> None:
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        if on_long not in (None, "error", "truncate", "chunk", "drop"):
            raise ConfigError(
                f"on_long must be 'error', 'truncate', 'chunk' or 'drop', got {on_long!r}"
            )
        if isinstance(texts, str):
            texts = [texts]
        if isinstance(texts, (bytes, Mapping)) or _is_frame(texts):
            raise ConfigError(
                f"texts must be a sequence or iterable of str, not {type(texts).__name__}"
                + ("; pass a column, e.g. df['text']" if _is_frame(texts) else "")
            )
        self.validated = isinstance(texts, Sequence)
        if self.validated:
            texts = check_texts(texts)  # type: ignore[arg-type]
        self.texts = texts
        # "error" and "drop" are enforced here, on counted rows; "truncate" and "chunk"
        # change vectors, so the model itself must apply them (and its spec say so)
        enforced = on_long in ("error", "drop")
        self.embedder = load(model) if enforced else with_policy(model, on_long)
        self.spec = self.embedder.spec
        self.batch_size = batch_size
        self.progress = progress
        self.total = len(texts) if isinstance(texts, Sized) else total
        self.desc = desc
        self.drop = on_long == "drop"
        limited = self.embedder if isinstance(self.embedder, TokenLimited) else None
        self.limit: int | None = None if limited is None else limited.max_tokens
        # counted for the policy where there is a limit; for the caller wherever the
        # model has a tokenizer (a table's n_tokens column), limit or not
        self.count = (enforced and self.limit is not None) or (
            count_tokens and _has_tokenizer(self.embedder)
        )
        self.exact = count_tokens
        own = limited.on_long if limited is not None else None
        self.policy: str | None = on_long if enforced else own
        self._counts: Counts | None = None
        if self.count and self.validated:  # every row counted once, before any work
            self._counts = self._count(self.texts)  # type: ignore[arg-type]
        self.cache = open_cache(cache)
        self.stats = JobStats()
        self._dim: int | None = None

    def _count(self, texts: list[str]) -> Counts:
        """Exact counts when asked for (``count_tokens=True``); for the policy alone, exact
        only where a cheap bound could exceed the limit (``-1`` elsewhere)."""
        if not self.exact and isinstance(self.embedder, BaseEmbedder):
            counts = self.embedder.token_counts(texts)
        else:
            counts = np.asarray(self.embedder.count_tokens(texts), dtype=np.int64)  # type: ignore[attr-defined]
        if self.limit is not None:
            over_limit(counts, self.limit, str(self.policy))  # raises under "error"
        return counts

    @property
    def dim(self) -> int:
        """The output width (a server model learns it from its first response)."""
        if self._dim is None:
            self._dim = int(self.embedder.dim)
        return self._dim

    def _known_dim(self) -> int | None:
        try:
            return self.dim
        except UnknownDimensionError:
            return None

    def batches(self) -> Iterator[Block]:
        """The output, block by block (see :class:`Block`); rows dropped by policy are absent."""
        with Progress(self.total, self.desc, enabled=self.progress) as bar:
            for offset, batch in _chunked(self.texts, self.batch_size):
                block = self._embed_batch(batch, offset)
                self.stats.rows += len(batch)
                bar.update(len(batch))
                yield block
        if self.stats.long_rows:
            counted = self.stats.rows if self.count else self.stats.computed
            warnings.warn(
                f"{len(self.stats.long_rows)} of the {counted} texts embedded exceed "
                f"{self.limit} tokens and were "
                f"{'truncated' if self.policy == 'truncate' else 'split into chunks'} "
                f"(rows {preview(sorted(self.stats.long_rows))})",
                EmbedkitWarning,
                stacklevel=2,
            )

    def _embed_batch(self, batch: list[Any], offset: int) -> Block:
        if not self.validated:
            bad = [(offset + i, why) for i, t in enumerate(batch) if (why := text_problem(t))]
            if bad:
                raise InvalidInputError(
                    f"{len(bad)} inputs cannot be embedded (the {offset} rows before them are "
                    "done" + (" and cached" if self.cache else "") + ")",
                    bad,
                )
            batch = [nfc(t) for t in batch]
        rows = np.arange(offset, offset + len(batch), dtype=np.int64)
        counts: Counts | None = None
        if self.count:
            counts = self._count(batch) if self._counts is None else self._counts[rows]
            over = counts > self.limit if self.limit is not None else np.zeros(len(rows), bool)
            self.stats.over_limit.update(
                zip(rows[over].tolist(), counts[over].tolist(), strict=True)
            )
            if self.drop and over.any():
                self.stats.dropped += rows[over].tolist()
                keep = np.flatnonzero(~over)
                batch, rows, counts = [batch[i] for i in keep], rows[keep], counts[keep]
            elif over.any():
                self.stats.long_rows += rows[over].tolist()
        vectors = self._lookup_and_compute(batch, rows, counts)
        return Block(vectors, rows, counts)

    def _lookup_and_compute(
        self, batch: list[str], rows: NDArray[np.int64], counts: Counts | None
    ) -> Matrix:
        dim = self._known_dim()
        if self.cache is None or dim is None or not batch:
            if not batch:
                return np.empty((0, dim or 0), np.float32)
            out = self._call_backend(batch, [[int(r)] for r in rows], counts)
            self.stats.computed += len(batch)
            if self.cache is not None:
                self.cache.put(self.spec, [text_key(t) for t in batch], out)
            return out
        keys = [text_key(t) for t in batch]
        out, found = self.cache.get(self.spec, dim, keys)
        missing = np.flatnonzero(~found)
        self.stats.cached += len(batch) - missing.size
        if missing.size == 0:
            return out
        first: dict[str, list[int]] = {}  # distinct missing text -> its positions in the batch
        for i in missing.tolist():
            first.setdefault(batch[i], []).append(i)
        todo = list(first)
        at = [first[t][0] for t in todo]
        new = self._call_backend(
            todo,
            [[int(rows[i]) for i in first[t]] for t in todo],
            None if counts is None else counts[at],
        )
        slot = {t: j for j, t in enumerate(todo)}
        for i in missing.tolist():
            out[i] = new[slot[batch[i]]]
        self.cache.put(self.spec, [keys[i] for i in at], new)
        self.stats.computed += len(todo)
        self.stats.duplicates += missing.size - len(todo)
        return out

    def _call_backend(
        self, texts: list[str], rows: list[list[int]], counts: Counts | None
    ) -> Matrix:
        """Embed distinct ``texts``; ``rows[i]`` lists every job row that holds ``texts[i]``."""
        try:
            if isinstance(self.embedder, BaseEmbedder):
                result = self.embedder.embed_detailed(texts, counts=counts)
                if not self.count:
                    self.stats.long_rows += [r for i in result.long.tolist() for r in rows[i]]
                return result.vectors
            out = self.embedder.embed(texts)
        except InvalidInputError as exc:  # positions within this call -> rows of the job
            raise type(exc)(
                f"{len(exc.rows)} inputs rejected by {self.spec}",
                sorted((row, why) for i, why in exc.rows if 0 <= i < len(rows) for row in rows[i]),
            ) from exc
        return checked_matrix(out, len(texts), lambda: self.dim, self.spec)


def with_policy(model: ModelLike, on_long: str | None) -> Embedder:
    """``load(model)``, rebuilt with ``on_long`` when that differs from its own policy."""
    embedder = load(model)
    if on_long is None or not isinstance(embedder, TokenLimited) or embedder.max_tokens is None:
        return embedder
    if embedder.on_long == check_on_long(on_long):
        return embedder
    if model is None or isinstance(model, (str, Mapping)):
        return load(model, on_long=on_long)
    raise ConfigError(
        f"{embedder.spec} applies on_long={embedder.on_long!r}, not {on_long!r}; build the "
        f"model with on_long={on_long!r} or pass its spec"
    )


def _is_frame(obj: object) -> bool:
    return type(obj).__name__ == "DataFrame"


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
    if job.total is None:  # an unsized iterable: keep the blocks, then join them
        blocks = [block.vectors for block in job.batches()]
        return np.concatenate(blocks) if blocks else np.empty((0, job.dim), np.float32)
    out: Matrix | None = None
    for block in job.batches():
        if out is None:
            out = np.empty((job.total, job.dim), dtype=np.float32)
        out[block.rows] = block.vectors
    return out if out is not None else np.empty((0, job.dim), np.float32)


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
    blocks = job.batches()
    first = next(blocks, None)  # a server model knows its width after the first block
    with NpyWriter(path, job.dim) as writer:
        if first is not None:
            writer.write(first.vectors)
        for block in blocks:
            writer.write(block.vectors)
    return job.stats


def _has_tokenizer(model: object) -> bool:
    """Whether ``model`` counts tokens (``BaseEmbedder``'s own ``count_tokens`` refuses)."""
    if isinstance(model, BaseEmbedder):
        return type(model).count_tokens is not BaseEmbedder.count_tokens
    return isinstance(model, TokenLimited)
