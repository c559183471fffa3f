"""Import an optional dependency or raise an error naming the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from embedkit.errors import MissingDependencyError


def require(module: str, extra: str) -> ModuleType:
    """Import ``module``; if it is missing, raise :class:`MissingDependencyError`.

    The message names the command that fixes it: ``pip install 'embedkit[extra]'``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{module!r} is required for this feature; install it with "
            f"pip install 'embedkit[{extra}]'"
        ) from exc
