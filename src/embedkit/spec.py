"""Spec strings: ``backend:model?option=value&...``, parsed and formatted.

``format_spec(*parse_spec(s))`` is canonical: options sorted by name, values
percent-encoded where needed, so two equal configurations give equal strings.
Option values read from a string are coerced: ``true``/``false`` -> bool,
``none`` -> None, integers -> int, decimals -> float, anything else stays str.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import parse_qsl, quote, unquote

from embedkit.errors import ConfigError

__all__ = [
    "canonical_spec",
    "coerce_option",
    "format_spec",
    "parse_spec",
    "redact",
    "split_spec",
]

OptionValue = str | int | float | bool | None
_SECRET_FIELD = re.compile(
    r"((?:api_?key|key|token|password|secret|authorization)[\"']?\s*[=:]\s*[\"']?)[^&\s\"',)]+",
    re.IGNORECASE,
)
_KEY_SHAPE = re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_\-]{8,}")


def parse_spec(spec: str) -> tuple[str, str, dict[str, OptionValue]]:
    """Split ``"backend:model?k=v&k2=v2"`` into ``(backend, model, options)``.

    The model part may be empty (``"hashing?dim=256"``) and may itself contain
    ``:`` (URLs, Windows paths); only the first ``:`` separates the backend.
    Option values are coerced by :func:`coerce_option`.
    """
    backend, model, raw = split_spec(spec)
    return backend, model, {key: coerce_option(value) for key, value in raw.items()}


def canonical_spec(spec: str) -> str:
    """``spec`` in canonical form: ``format_spec(*parse_spec(spec))``."""
    return format_spec(*parse_spec(spec))


def redact(text: str) -> str:
    """``text`` with secrets replaced by ``***``: the value of every ``api_key``/``key``/
    ``token``/``password``/``secret`` option or URL field, and anything shaped like an
    API key (``sk-...``). The one redaction rule for every message that quotes a spec."""
    text = _SECRET_FIELD.sub(lambda m: m.group(1) + "***", text)
    return _KEY_SHAPE.sub("***", text)


def split_spec(spec: str) -> tuple[str, str, dict[str, str]]:
    """Like :func:`parse_spec`, with option values left as the strings written."""
    if not isinstance(spec, str) or not spec.strip():
        shown = redact(repr(spec)) if isinstance(spec, str) else type(spec).__name__
        raise ConfigError(f"a model spec must be a non-empty string, got {shown}")
    head, _, query = spec.strip().partition("?")
    backend, _, model = head.partition(":")
    backend = backend.strip().lower()
    if not backend:
        raise ConfigError(f"spec {redact(spec)!r} names no backend; expected 'backend:model'")
    options: dict[str, str] = {}
    try:
        pairs: list[tuple[str, str]] | None = parse_qsl(
            query, keep_blank_values=True, strict_parsing=bool(query)
        )
    except ValueError:  # its message quotes the field, which may be a key: not chained
        pairs = None
    if pairs is None:
        raise ConfigError(f"spec {redact(spec)!r}: options must be written name=value&name=value")
    for key, value in pairs:
        if key in options:
            raise ConfigError(f"option {redact(key)!r} given twice in spec {redact(spec)!r}")
        options[key] = value
    return backend, unquote(model.strip()), options


def format_spec(backend: str, model: str, options: Mapping[str, OptionValue] | None = None) -> str:
    """The canonical spec string; ``parse_spec`` inverts it exactly."""
    text = backend
    if model:
        text += ":" + quote(model, safe="/:@._-+~ ,()[]")
    items = sorted((options or {}).items())
    if items:
        text += "?" + "&".join(f"{k}={quote(_render(v), safe='/:._-,')}" for k, v in items)
    return text


def _render(value: OptionValue) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def coerce_option(value: str) -> OptionValue:
    """``true``/``false`` -> bool, ``none`` -> None, integers -> int, decimals -> float, else str."""
    low = value.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "none":
        return None
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value
