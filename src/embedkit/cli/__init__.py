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
    embedkit compare hashing sentence-transformers:all-MiniLM-L6-v2 --data reviews.csv  # models x tasks

Exit codes: 0 success; 1 a backend failed (network, server, model); 2 a usage or
input error (bad option, missing file or column, malformed row, existing output);
3 an optional dependency is missing (the message names the ``pip install``);
130 interrupted. User errors print one ``embedkit: error: ...`` line, no traceback.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from typing import TextIO

from embedkit.cli.compare import add_parser as add_compare
from embedkit.cli.embed import cmd_demo, cmd_embed
from embedkit.cli.inspect import cmd_cache, cmd_info, cmd_models, cmd_search
from embedkit.cli.options import (
    EXIT_BACKEND,
    EXIT_INTERRUPTED,
    EXIT_MISSING,
    EXIT_OK,
    EXIT_USAGE,
    cache_options,
    model_options,
    positive_int,
    progress_options,
)
from embedkit.errors import (
    BackendError,
    EmbedkitError,
    EmbedkitWarning,
    MissingDependencyError,
    StorageError,
)
from embedkit.spec import redact

__all__ = ["main"]


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
    except StorageError as exc:  # a locked, read-only or full place: not the user's input
        return _fail(exc, EXIT_BACKEND)
    except EmbedkitError as exc:
        return _fail(exc, EXIT_USAGE)
    except FileNotFoundError as exc:
        return _fail(f"no such file: {exc.filename}", EXIT_USAGE)
    except (IsADirectoryError, NotADirectoryError, PermissionError) as exc:
        return _fail(f"{exc.strerror}: {exc.filename}", EXIT_USAGE)
    except KeyboardInterrupt:
        return _fail(
            "interrupted (finished batches are in the cache; rerun with --resume)", EXIT_INTERRUPTED
        )
    except BrokenPipeError:
        return EXIT_OK  # `embedkit search ... | head`
    finally:
        warnings.showwarning = previous


def _fail(message: object, code: int) -> int:
    print(f"embedkit: error: {redact(str(message))}", file=sys.stderr)
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
    model_options(p)
    what = p.add_mutually_exclusive_group()
    what.add_argument("--column", "-c", help="the column/field holding the text (default: text)")
    what.add_argument(
        "--template", "-t", help='build the text from fields, e.g. "Title: {Summary}; {Text}"'
    )
    p.add_argument("--id-column", help="column/field to use as row ids (default: row number)")
    p.add_argument("--format", choices=("auto", "txt", "csv", "jsonl", "parquet"), default="auto")
    p.add_argument(
        "--on-missing",
        choices=("error", "drop"),
        default="error",
        help="rows with a missing or empty field: stop with an error (default) or drop them",
    )
    p.add_argument("--batch-size", type=positive_int, default=256)
    p.add_argument(
        "--resume",
        action="store_true",
        help="finish an interrupted job: reuse the cache and replace the partial output",
    )
    p.add_argument("--force", action="store_true", help="replace an existing output")
    cache_options(p)
    progress_options(p)
    p.set_defaults(handler=cmd_embed)

    p = sub.add_parser("search", help="search an index (or an embedded Parquet file)")
    p.add_argument("index", help="an index folder or a .parquet file written by `embedkit embed`")
    p.add_argument("queries", nargs="+", metavar="QUERY")
    p.add_argument("-k", type=positive_int, default=5, help="hits per query (default 5)")
    p.add_argument("--json", action="store_true", help="JSON output instead of a table")
    p.add_argument("--model", help="query model (default: the index's own spec)")
    p.add_argument("--mmap", action="store_true", help="map the vectors instead of reading them")
    p.set_defaults(handler=cmd_search)

    p = sub.add_parser("info", help="what an index or embedded Parquet file holds")
    p.add_argument("path")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_info)

    p = sub.add_parser("models", help="backends available and the extras they need")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_models)

    p = sub.add_parser("cache", help="where the embedding cache is and what it holds; clear it")
    p.add_argument("--cache", metavar="PATH", help="cache file or folder (default: user cache)")
    p.add_argument("--clear", action="store_true", help="delete entries (all, or --spec's)")
    p.add_argument("--spec", help="only this model spec")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_cache)

    p = sub.add_parser("demo", help="embed gensim's Lee news corpus and search it")
    p.add_argument(
        "--out", default="build/lee-index", help="index folder (default build/lee-index)"
    )
    model_options(p)
    p.add_argument("-k", type=positive_int, default=3)
    p.add_argument("--batch-size", type=positive_int, default=64)
    cache_options(p)
    progress_options(p)
    p.set_defaults(handler=cmd_demo)
    add_compare(sub)
    return parser
