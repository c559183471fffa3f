"""``embedkit embed`` and ``embedkit demo``: a corpus file through the job path into an output."""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from embedkit.cli.inspect import print_hits
from embedkit.cli.options import EXIT_OK, cache_arg
from embedkit.errors import UsageError

if TYPE_CHECKING:
    from embedkit.jobs.embed import EmbedJob
    from embedkit.jobs.readers import CorpusReader

__all__ = ["DEMO_QUERIES", "cmd_demo", "cmd_embed"]

DEMO_QUERIES = (
    "bushfires threatening homes near Sydney",
    "peace talks between Israel and the Palestinians",
    "the Taliban and the war in Afghanistan",
    "cricket test match result",
    "interest rates and the economy",
)


def cmd_embed(args: argparse.Namespace) -> int:
    from embedkit.jobs.embed import EmbedJob
    from embedkit.jobs.readers import CorpusReader
    from embedkit.registry import load

    source = Path(args.input)
    if not source.is_file():
        raise UsageError(f"input {source} does not exist or is not a file")
    out = Path(args.out)
    kind = _output_kind(out)
    if out.exists() and not (args.force or args.resume):
        raise UsageError(
            f"{out} already exists; pass --force to replace it, or --resume to finish an "
            "interrupted job from the cache"
        )
    if args.resume and args.no_cache:
        raise UsageError("--resume needs the cache (it is the checkpoint); drop --no-cache")
    reader = CorpusReader(
        source,
        fmt=args.format,
        column=args.column,
        template=args.template,
        id_column=args.id_column,
        on_missing=args.on_missing,
    )
    model = load(args.model)
    job = EmbedJob(
        reader.texts(),
        model,
        cache=cache_arg(args),
        batch_size=args.batch_size,
        progress=args.progress,
        desc=f"embedding {source.name}",
    )
    if args.resume and job.cache is not None:
        print(f"resuming with the cache {job.cache.path}", file=sys.stderr)
    started = time.perf_counter()
    if kind == "index":
        _embed_to_index(job, reader, out)
    else:
        _embed_to_file(job, reader, out, kind)
    stats = job.stats
    seconds = time.perf_counter() - started
    dupes = f", {stats.duplicates} repeated texts" if stats.duplicates else ""
    skipped = f"; {reader.dropped} rows dropped (missing fields)" if reader.dropped else ""
    print(
        f"embedded {stats.rows} rows with {job.spec} (dim {job.dim}) into {out} in "
        f"{seconds:.1f}s: {stats.cached} from the cache, {stats.computed} computed"
        f"{dupes}{skipped}",
        file=sys.stderr,
    )
    return EXIT_OK


def _output_kind(out: Path) -> str:
    suffix = out.suffix.lower()
    if suffix == ".parquet":
        return "parquet"
    if suffix == ".npy":
        return "npy"
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} is a file; an index output must be a folder")
    return "index"


def _embed_to_file(job: EmbedJob, reader: CorpusReader, out: Path, kind: str) -> None:
    """Stream to ``out + ".partial"``, renamed to ``out`` only once complete."""
    import os

    from embedkit.jobs.writers import NpyWriter, ParquetWriter

    partial = out.with_name(out.name + ".partial")
    blocks = job.batches()
    first = next(blocks, None)  # a server model knows its width after its first answer
    try:
        if kind == "parquet":
            head = reader.take(len(first.rows)) if first else []
            # one type per column: ints stay ints (1 and "1" are different ids)
            ints = all(isinstance(r.id, int) for r in head)
            id_type = {"id": "int64" if ints else "string"}
            with ParquetWriter(partial, job.dim, job.spec, ["id", "text"], types=id_type) as writer:
                for block in itertools.chain([first] if first else [], blocks):
                    rows = head if block is first else reader.take(len(block.rows))
                    ids, texts = [r.id for r in rows], [r.text for r in rows]
                    writer.write({"id": ids, "text": texts}, block.vectors)
        else:
            with NpyWriter(partial, job.dim) as npy:
                for block in itertools.chain([first] if first else [], blocks):
                    npy.write(block.vectors)
                    reader.take(len(block.rows))
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)


def _embed_to_index(job: EmbedJob, reader: CorpusReader, out: Path) -> Path:
    """Stream the job into the index folder ``out``, swapped in once complete."""
    from embedkit.search.writer import IndexWriter

    blocks = job.batches()
    first = next(blocks, None)  # a server model knows its width after its first answer
    with IndexWriter(out, job.dim, job.spec) as writer:
        for block in itertools.chain([first] if first else [], blocks):
            rows = reader.take(len(block.rows))
            writer.add(block.vectors, [r.id for r in rows], [r.metadata for r in rows])
        return writer.commit()


def cmd_demo(args: argparse.Namespace) -> int:
    from embedkit._optional import require
    from embedkit.jobs.embed import EmbedJob
    from embedkit.jobs.readers import CorpusReader
    from embedkit.registry import load
    from embedkit.search.index import VectorIndex

    datapath = require("gensim.test.utils", "gensim").datapath
    corpus = Path(datapath("lee_background.cor"))
    started = time.perf_counter()
    model = load(args.model)
    print(f"model: {model.spec} (dim {model.dim}), loaded in {time.perf_counter() - started:.1f}s")
    reader = CorpusReader(corpus, fmt="txt")
    started = time.perf_counter()
    job = EmbedJob(
        reader.texts(),
        model,
        cache=cache_arg(args),
        batch_size=args.batch_size,
        progress=args.progress,
        desc="embedding Lee corpus",
    )
    folder = _embed_to_index(job, reader, Path(args.out))
    seconds = time.perf_counter() - started
    print(f"corpus: {job.stats.rows} news articles from {corpus}")
    print(
        f"embedded {job.stats.rows} articles in {seconds:.1f}s "
        f"({job.stats.cached} from the cache, {job.stats.computed} computed)"
    )
    reloaded = VectorIndex.load(folder, embedder=model)
    print(f"index: {len(reloaded)} rows saved to {folder} and reloaded (ids are line numbers)")
    for query, hits in zip(
        DEMO_QUERIES, reloaded.search_batch(list(DEMO_QUERIES), args.k), strict=True
    ):
        print_hits(query, hits)
    return EXIT_OK
