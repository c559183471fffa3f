"""The ``embedkit`` command: embed a corpus, search it, inspect indexes, list backends.

::

    embedkit embed corpus.txt --out idx/                  # one text per line
    embedkit embed reviews.csv --template "Title: {Summary}; Content: {Text}" --out idx/
    embedkit embed docs.jsonl --column body --out vectors.parquet
    embedkit search idx/ "pet food" "spicy snacks" -k 5 [--json]
    embedkit info idx/
    embedkit models
    embedkit cache [--clear] [--spec SPEC]                # what the embedding cache holds
    embedkit demo                                         # the Lee news corpus, end to end

Exit codes: 0 success; 1 a backend failed (network, server, model); 2 a usage or
input error (bad option, missing file or column, malformed row, existing output);
3 an optional dependency is missing (the message names the ``pip install``);
130 interrupted. User errors print one ``embedkit: error: ...`` line, no traceback.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
import warnings
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from embedkit.errors import (
    BackendError,
    ConfigError,
    EmbedkitError,
    EmbedkitWarning,
    InvalidInputError,
    MissingDependencyError,
)

if TYPE_CHECKING:
    from embedkit.jobs.embed import EmbedJob

__all__ = ["CorpusReader", "main"]

EXIT_OK = 0
EXIT_BACKEND = 1
EXIT_USAGE = 2
EXIT_MISSING = 3
EXIT_INTERRUPTED = 130

DEMO_QUERIES = (
    "bushfires threatening homes near Sydney",
    "peace talks between Israel and the Palestinians",
    "the Taliban and the war in Afghanistan",
    "cricket test match result",
    "interest rates and the economy",
)


class UsageError(ConfigError):
    """A command line that cannot be run as given."""


# -- entry point ---------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    previous = warnings.showwarning
    warnings.showwarning = _show_warning
    try:
        code: int = args.handler(args)
        return code
    except MissingDependencyError as exc:
        return _fail(exc, EXIT_MISSING)
    except BackendError as exc:
        cause = f" (caused by {type(exc.__cause__).__name__})" if exc.__cause__ else ""
        return _fail(f"{exc}{cause}", EXIT_BACKEND)
    except EmbedkitError as exc:
        return _fail(exc, EXIT_USAGE)
    except FileNotFoundError as exc:
        return _fail(f"no such file: {exc.filename}", EXIT_USAGE)
    except (IsADirectoryError, NotADirectoryError, PermissionError) as exc:
        return _fail(f"{exc.strerror}: {exc.filename}", EXIT_USAGE)
    except KeyboardInterrupt:
        return _fail("interrupted (finished batches are in the cache; rerun with --resume)", 130)
    except BrokenPipeError:
        return EXIT_OK  # `embedkit search ... | head`
    finally:
        warnings.showwarning = previous


def _fail(message: object, code: int) -> int:
    print(f"embedkit: error: {message}", file=sys.stderr)
    return code


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    if issubclass(category, EmbedkitWarning):
        print(f"embedkit: warning: {message}", file=sys.stderr)
    else:
        print(warnings.formatwarning(message, category, filename, lineno, line), file=sys.stderr)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="embedkit",
        description="Embed texts with any backend, search them, inspect indexes.",
        epilog="Exit codes: 0 ok, 1 backend failure, 2 usage/input error, "
        "3 missing optional dependency, 130 interrupted.",
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    p = sub.add_parser("embed", help="embed a txt/CSV/JSONL/Parquet file into an index or Parquet")
    p.add_argument("input", help="one text per line (.txt), .csv, .jsonl or .parquet")
    p.add_argument(
        "--out",
        "-o",
        required=True,
        help="an index folder, or a file ending in .parquet (rows + vectors) or .npy (vectors)",
    )
    _model_options(p)
    what = p.add_mutually_exclusive_group()
    what.add_argument("--column", "-c", help="the column/field holding the text (default: text)")
    what.add_argument(
        "--template", "-t", help='build the text from fields, e.g. "Title: {Summary}; {Text}"'
    )
    p.add_argument("--id-column", help="column/field to use as row ids (default: row number)")
    p.add_argument("--format", choices=("auto", "txt", "csv", "jsonl", "parquet"), default="auto")
    p.add_argument(
        "--on-missing",
        choices=("error", "skip"),
        default="error",
        help="rows with a missing or empty field: stop with an error (default) or skip them",
    )
    p.add_argument("--batch-size", type=_positive_int, default=256)
    p.add_argument(
        "--resume",
        action="store_true",
        help="finish an interrupted job: reuse the cache and replace the partial output",
    )
    p.add_argument("--force", action="store_true", help="replace an existing output")
    _cache_options(p)
    _progress_options(p)
    p.set_defaults(handler=_cmd_embed)

    p = sub.add_parser("search", help="search an index (or an embedded Parquet file)")
    p.add_argument("index", help="an index folder or a .parquet file written by `embedkit embed`")
    p.add_argument("queries", nargs="+", metavar="QUERY")
    p.add_argument("-k", type=_positive_int, default=5, help="hits per query (default 5)")
    p.add_argument("--json", action="store_true", help="JSON output instead of a table")
    p.add_argument("--model", help="query model (default: the index's own spec)")
    p.add_argument("--mmap", action="store_true", help="map the vectors instead of reading them")
    p.set_defaults(handler=_cmd_search)

    p = sub.add_parser("info", help="what an index or embedded Parquet file holds")
    p.add_argument("path")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_info)

    p = sub.add_parser("models", help="backends available and the extras they need")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_models)

    p = sub.add_parser("cache", help="where the embedding cache is and what it holds; clear it")
    p.add_argument("--cache", metavar="PATH", help="cache file or folder (default: user cache)")
    p.add_argument("--clear", action="store_true", help="delete entries (all, or --spec's)")
    p.add_argument("--spec", help="only this model spec")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_cache)

    p = sub.add_parser("demo", help="embed gensim's Lee news corpus and search it")
    p.add_argument(
        "--out", default="build/lee-index", help="index folder (default build/lee-index)"
    )
    _model_options(p)
    p.add_argument("-k", type=_positive_int, default=3)
    p.add_argument("--batch-size", type=_positive_int, default=64)
    _cache_options(p)
    _progress_options(p)
    p.set_defaults(handler=_cmd_demo)
    return parser


def _model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        "-m",
        help="model spec, e.g. 'hashing?dim=256' or 'openai:text-embedding-3-small' "
        "(default: $EMBEDKIT_MODEL or sentence-transformers:all-MiniLM-L6-v2)",
    )


def _cache_options(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--cache", metavar="PATH", help="cache file or folder (default: user cache)")
    group.add_argument("--no-cache", action="store_true", help="do not read or write the cache")


def _progress_options(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--progress", dest="progress", action="store_true", default=None)
    group.add_argument("--no-progress", dest="progress", action="store_false")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _cache_arg(args: argparse.Namespace) -> str | bool:
    if args.no_cache:
        return False
    return str(args.cache) if args.cache else True


# -- embed ---------------------------------------------------------------------------
def _cmd_embed(args: argparse.Namespace) -> int:
    from embedkit.jobs.embed import EmbedJob
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
        cache=_cache_arg(args),
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
    skipped = f"; {reader.skipped} rows skipped (missing fields)" if reader.skipped else ""
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
    try:
        if kind == "parquet":
            id_type = {"id": "int64" if reader.id_column is None else "string"}
            with ParquetWriter(partial, job.dim, job.spec, ["id", "text"], types=id_type) as writer:
                for block in job.batches():
                    rows = reader.take(len(block))
                    writer.write(
                        {"id": [r.id for r in rows], "text": [r.text for r in rows]}, block
                    )
        else:
            with NpyWriter(partial, job.dim) as npy:
                for block in job.batches():
                    npy.write(block)
                    reader.take(len(block))
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)


def _embed_to_index(job: EmbedJob, reader: CorpusReader, out: Path) -> None:
    import numpy as np

    from embedkit.search.index import VectorIndex

    blocks = list(job.batches())
    vectors = np.concatenate(blocks) if blocks else np.empty((0, job.dim), np.float32)
    rows = reader.take(len(vectors))
    index = VectorIndex.from_vectors(
        vectors,
        ids=[r.id for r in rows],
        metadata=[r.metadata for r in rows],
        spec=job.spec,
    )
    index.save(out)


# -- reading corpus files -------------------------------------------------------------
@dataclass
class Row:
    """One input record: its ``id``, the ``text`` to embed and the fields kept as metadata."""

    id: str | int
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


class CorpusReader:
    """Stream the records of a txt / CSV / JSONL / Parquet file as texts to embed.

    ``texts()`` yields each record's text and keeps its :class:`Row` until
    :meth:`take` hands it over, so memory holds only rows not yet written.
    Text: the whole line (txt), ``column`` (default ``text``), or ``template``
    filled from the record's fields. Ids: the line number for txt, the 0-based
    record number otherwise, or ``id_column``. Bad records raise
    :class:`~embedkit.errors.InvalidInputError` naming the file and line.
    """

    def __init__(
        self,
        path: Path,
        *,
        fmt: str = "auto",
        column: str | None = None,
        template: str | None = None,
        id_column: str | None = None,
        on_missing: str = "error",
    ) -> None:
        from embedkit.frame import Template

        self.path = path
        self.fmt = _detect_format(path) if fmt == "auto" else fmt
        if self.fmt == "txt" and (column or template or id_column):
            raise UsageError(
                "a .txt corpus has one text per line: --column/--template/--id-column apply to CSV, JSONL and Parquet"
            )
        self.template = Template(template) if template else None
        self.column = column or "text"
        self.id_column = id_column
        self.on_missing = on_missing
        self.skipped = 0
        self._rows: list[Row] = []
        self._seen_ids: set[str | int] = set()
        if self.fmt != "txt":
            self._peek()  # check the columns now, before any model is loaded

    def _peek(self) -> None:
        records = self._records()
        try:
            next(records, None)
        finally:
            records.close()

    def take(self, n: int) -> list[Row]:
        """The first ``n`` rows read and not yet taken (in input order)."""
        out, self._rows = self._rows[:n], self._rows[n:]
        return out

    def texts(self) -> Iterator[str]:
        from embedkit.validation import text_problem

        records = self._txt() if self.fmt == "txt" else self._records()
        for where, number, record in records:
            if self.template is not None:
                text, problem = self.template.fill(record)
            else:
                value = record.get(self.column)
                problem = text_problem(value)
                text = value if isinstance(value, str) else ""
                if problem:
                    problem = f"field {self.column!r}: {problem}"
            if problem:
                if self.on_missing == "skip":
                    self.skipped += 1
                    continue
                raise InvalidInputError(
                    f"{self.path}: {where}: {problem} (use --on-missing skip to leave such rows out)"
                )
            row_id = number if self.id_column is None else record.get(self.id_column)
            if not isinstance(row_id, (str, int)) or isinstance(row_id, bool) or row_id == "":
                raise InvalidInputError(
                    f"{self.path}: {where}: id field {self.id_column!r} is missing"
                )
            if self.id_column is not None:
                if row_id in self._seen_ids:
                    raise InvalidInputError(
                        f"{self.path}: {where}: duplicate id {row_id!r} in {self.id_column!r}; "
                        "ids must be unique (leave out --id-column to number the rows)"
                    )
                self._seen_ids.add(row_id)
            meta = dict(record)
            meta.setdefault("text", text)
            self._rows.append(Row(row_id, text, meta))
            yield text

    def _check_fields(self, fields: Sequence[str]) -> None:
        wanted = self.template.fields if self.template is not None else [self.column]
        if self.id_column is not None:
            wanted = [*wanted, self.id_column]
        missing = [f for f in wanted if f not in fields]
        if missing:
            raise UsageError(
                f"{self.path} has no column {', '.join(map(repr, missing))}; its columns are "
                f"{', '.join(map(repr, fields))} (choose with --column or --template)"
            )

    def _txt(self) -> Iterator[tuple[str, int, dict[str, Any]]]:
        for number, line in _decoded_lines(self.path):
            text = line.rstrip("\r\n")
            if text.strip():
                yield f"line {number}", number, {"text": text}

    def _records(self) -> Generator[tuple[str, int, dict[str, Any]], None, None]:
        if self.fmt == "csv":
            yield from self._csv()
        elif self.fmt == "jsonl":
            yield from self._jsonl()
        else:
            yield from self._parquet()

    def _csv(self) -> Iterator[tuple[str, int, dict[str, Any]]]:
        import csv

        lines = _decoded_lines(self.path)
        reader = csv.reader((line for _, line in lines), strict=True)
        try:
            header = next(reader, None)
            if header is None:
                raise InvalidInputError(f"{self.path} is empty (no header line)")
            self._check_fields(header)
            number = 0
            for record in reader:
                if not record:
                    continue
                if len(record) != len(header):
                    raise InvalidInputError(
                        f"{self.path}: line {reader.line_num}: malformed CSV row with "
                        f"{len(record)} fields, the header has {len(header)}"
                    )
                yield f"line {reader.line_num}", number, dict(zip(header, record, strict=True))
                number += 1
        except csv.Error as exc:
            raise InvalidInputError(
                f"{self.path}: line {reader.line_num}: malformed CSV ({exc})"
            ) from exc

    def _jsonl(self) -> Iterator[tuple[str, int, dict[str, Any]]]:
        number = 0
        checked = False
        for line_no, line in _decoded_lines(self.path):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidInputError(
                    f"{self.path}: line {line_no}: invalid JSON ({exc.msg})"
                ) from exc
            if not isinstance(record, dict):
                raise InvalidInputError(f"{self.path}: line {line_no}: expected a JSON object")
            if not checked:
                self._check_fields(list(record))
                checked = True
            yield f"line {line_no}", number, record
            number += 1

    def _parquet(self) -> Iterator[tuple[str, int, dict[str, Any]]]:
        from embedkit._optional import require

        pq = require("pyarrow.parquet", "data")
        try:
            source = pq.ParquetFile(str(self.path))
        except Exception as exc:  # pyarrow raises its own ArrowInvalid
            raise InvalidInputError(f"{self.path} is not a readable Parquet file ({exc})") from exc
        self._check_fields(source.schema_arrow.names)
        number = 0
        for batch in source.iter_batches(batch_size=4096):
            for record in batch.to_pylist():
                yield f"row {number}", number, record
                number += 1


def _detect_format(path: Path) -> str:
    suffix = path.suffix.lower()
    formats = {
        ".txt": "txt",
        ".cor": "txt",
        ".csv": "csv",
        ".jsonl": "jsonl",
        ".ndjson": "jsonl",
        ".parquet": "parquet",
    }
    if suffix not in formats:
        raise UsageError(
            f"cannot tell the format of {path} from its extension; pass --format txt|csv|jsonl|parquet"
        )
    return formats[suffix]


def _decoded_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` per physical line, decoded as UTF-8 one line at a time."""
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidInputError(
                    f"{path}: line {number} is not valid UTF-8 (byte {exc.start} of the line); "
                    "re-encode the file, e.g. iconv -f latin1 -t utf-8"
                ) from exc
            yield number, text.lstrip("\ufeff") if number == 1 else text


# -- search --------------------------------------------------------------------------
def _cmd_search(args: argparse.Namespace) -> int:
    from embedkit.frame import load_searchable

    index = load_searchable(args.index, mmap=args.mmap)
    if args.model:
        index.use_embedder(args.model)
    results = index.search_batch(list(args.queries), args.k)
    if args.json:
        payload = [
            {
                "query": q,
                "hits": [
                    {"rank": r, "id": h.id, "score": round(h.score, 6), "metadata": h.metadata}
                    for r, h in enumerate(hits, 1)
                ],
            }
            for q, hits in zip(args.queries, results, strict=True)
        ]
        json.dump(payload, sys.stdout, ensure_ascii=False, indent=2)
        print()
        return EXIT_OK
    for q, hits in zip(args.queries, results, strict=True):
        _print_hits(q, hits)
    return EXIT_OK


def _snippet(metadata: Any, width: int = 90) -> str:
    text = ""
    if isinstance(metadata, dict):
        value = metadata.get("text")
        text = value if isinstance(value, str) else json.dumps(metadata, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _print_hits(query: str, hits: Sequence[Any]) -> None:
    print(f"\nquery: {query}")
    print(f"{'rank':>4}  {'score':>6}  {'id':>8}  text")
    for rank, hit in enumerate(hits, 1):
        print(f"{rank:>4}  {hit.score:6.3f}  {hit.id!s:>8}  {_snippet(hit.metadata)}")


# -- info / models -------------------------------------------------------------------
def _cmd_info(args: argparse.Namespace) -> int:
    from embedkit.frame import describe

    info = describe(args.path)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        width = max(len(k) for k in info)
        for key, value in info.items():
            print(f"{key:<{width}}  {value}")
    return EXIT_OK


def _cmd_models(args: argparse.Namespace) -> int:
    from embedkit.registry import available_backends

    rows: list[dict[str, Any]] = []
    for name, backend in available_backends().items():
        missing = [m for m in backend.requires if not _importable(m)]
        hint = f"pip install 'embedkit[{backend.extra}]'" if missing and backend.extra else ""
        if isinstance(backend.target, str) and not _importable(backend.target.partition(":")[0]):
            missing.append(backend.target.partition(":")[0])  # the backend's own module
        rows.append(
            {
                "backend": name,
                "available": not missing,
                "extra": backend.extra,
                "missing": missing,
                "install": hint,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    print(f"{'backend':<24} {'status':<10} {'extra':<10} missing")
    for row in rows:
        status = "ok" if row["available"] else "missing"
        extra = row["extra"] or "-"
        detail = ", ".join(row["missing"]) + (f"  ({row['install']})" if row["install"] else "")
        print(f"{row['backend']:<24} {status:<10} {extra:<10} {detail}")
    return EXIT_OK


def _cmd_cache(args: argparse.Namespace) -> int:
    from embedkit.jobs.cache import EmbeddingCache

    cache = EmbeddingCache(args.cache)
    if args.clear:
        before = cache.count(args.spec)
        cache.clear(args.spec)
        print(f"deleted {before} entries from {cache.path}", file=sys.stderr)
    specs = cache.specs()
    if args.spec is not None:
        specs = {args.spec: specs.get(args.spec, 0)}
    size = sum(p.stat().st_size for p in cache.path.parent.glob(cache.path.name + "*"))
    if args.json:
        print(json.dumps({"path": str(cache.path), "bytes": size, "specs": specs}, indent=2))
        return EXIT_OK
    print(f"cache  {cache.path} ({size / 2**20:.1f} MB)")
    for spec, count in specs.items():
        print(f"{count:>10}  {spec}")
    return EXIT_OK


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


# -- demo ----------------------------------------------------------------------------
def _cmd_demo(args: argparse.Namespace) -> int:
    from embedkit._optional import require
    from embedkit.jobs.embed import EmbedJob
    from embedkit.registry import load
    from embedkit.search.index import VectorIndex

    datapath = require("gensim.test.utils", "gensim").datapath
    corpus = Path(datapath("lee_background.cor"))
    articles = [line.strip() for line in _read_lines(corpus) if line.strip()]
    started = time.perf_counter()
    model = load(args.model)
    print(f"model: {model.spec} (dim {model.dim}), loaded in {time.perf_counter() - started:.1f}s")
    print(f"corpus: {len(articles)} news articles from {corpus}")
    started = time.perf_counter()
    job = EmbedJob(
        articles,
        model,
        cache=_cache_arg(args),
        batch_size=args.batch_size,
        progress=args.progress,
        desc="embedding Lee corpus",
    )
    import numpy as np

    vectors = np.concatenate(list(job.batches()))
    seconds = time.perf_counter() - started
    print(
        f"embedded {len(articles)} articles in {seconds:.1f}s "
        f"({job.stats.cached} from the cache, {job.stats.computed} computed)"
    )
    index = VectorIndex.from_vectors(
        vectors,
        ids=list(range(1, len(articles) + 1)),
        metadata=[{"text": a} for a in articles],
        spec=model.spec,
    )
    folder = index.save(args.out)
    reloaded = VectorIndex.load(folder, embedder=model)
    print(f"index: {len(reloaded)} rows saved to {folder} and reloaded (ids are line numbers)")
    for query, hits in zip(
        DEMO_QUERIES, reloaded.search_batch(list(DEMO_QUERIES), args.k), strict=True
    ):
        _print_hits(query, hits)
    return EXIT_OK


def _read_lines(path: Path) -> Iterator[str]:
    with open(path, encoding="utf-8") as fh:
        yield from fh
