"""``embedkit search``, ``info``, ``models`` and ``cache``: look at what is there."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections.abc import Sequence
from typing import Any

from embedkit.cli.options import EXIT_OK

__all__ = ["cmd_cache", "cmd_info", "cmd_models", "cmd_search", "print_hits"]


def cmd_search(args: argparse.Namespace) -> int:
    from embedkit.outputs import load_searchable

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
        print_hits(q, hits)
    return EXIT_OK


def _snippet(metadata: Any, width: int = 90) -> str:
    text = ""
    if isinstance(metadata, dict):
        value = metadata.get("text")
        text = value if isinstance(value, str) else json.dumps(metadata, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def print_hits(query: str, hits: Sequence[Any]) -> None:
    print(f"\nquery: {query}")
    print(f"{'rank':>4}  {'score':>6}  {'id':>8}  text")
    for rank, hit in enumerate(hits, 1):
        print(f"{rank:>4}  {hit.score:6.3f}  {hit.id!s:>8}  {_snippet(hit.metadata)}")


def cmd_info(args: argparse.Namespace) -> int:
    from embedkit.outputs import describe

    info = describe(args.path)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        width = max(len(k) for k in info)
        for key, value in info.items():
            print(f"{key:<{width}}  {value}")
    return EXIT_OK


def cmd_models(args: argparse.Namespace) -> int:
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


def cmd_cache(args: argparse.Namespace) -> int:
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
