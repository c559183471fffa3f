"""Shared pieces of the command line: exit codes and the options several commands take."""

from __future__ import annotations

import argparse

__all__ = [
    "EXIT_BACKEND",
    "EXIT_INTERRUPTED",
    "EXIT_MISSING",
    "EXIT_OK",
    "EXIT_USAGE",
    "cache_arg",
    "cache_options",
    "model_options",
    "positive_int",
    "progress_options",
]

EXIT_OK = 0
EXIT_BACKEND = 1
EXIT_USAGE = 2
EXIT_MISSING = 3
EXIT_INTERRUPTED = 130


def model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        "-m",
        help="model spec, e.g. 'hashing?dim=256' or 'openai:text-embedding-3-small' "
        "(default: $EMBEDKIT_MODEL or sentence-transformers:all-MiniLM-L6-v2)",
    )


def cache_options(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--cache", metavar="PATH", help="cache file or folder (default: user cache)")
    group.add_argument("--no-cache", action="store_true", help="do not read or write the cache")


def progress_options(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--progress", dest="progress", action="store_true", default=None)
    group.add_argument("--no-progress", dest="progress", action="store_false")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def cache_arg(args: argparse.Namespace) -> str | bool:
    if args.no_cache:
        return False
    return str(args.cache) if args.cache else True


# -- embed ---------------------------------------------------------------------------
