"""Progress bars for long operations: tqdm (notebook-aware), on only when someone watches.

``progress=None`` (the default everywhere) shows a bar when stderr is a terminal or
the code runs in a Jupyter kernel, and nothing otherwise (logs, CI, pipes).
``progress=True`` forces a bar (and needs tqdm: ``pip install 'embedkit[data]'``),
``progress=False`` turns it off. ``EMBEDKIT_PROGRESS=0`` / ``1`` overrides the
automatic choice for a whole session.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from embedkit._closing import Closing
from embedkit._optional import require

__all__ = ["Progress", "progress_enabled"]

ENV_VAR = "EMBEDKIT_PROGRESS"


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    get_ipython = getattr(shell, "get_ipython", None)
    ip = get_ipython() if callable(get_ipython) else None
    return type(ip).__name__ == "ZMQInteractiveShell"


def progress_enabled(progress: bool | None) -> bool:
    """Whether to draw a bar for this ``progress`` setting (see the module docstring)."""
    if progress is not None:
        return bool(progress)
    env = os.environ.get(ENV_VAR, "").strip().lower()
    if env in ("0", "false", "no", "off"):
        return False
    if env in ("1", "true", "yes", "on"):
        return True
    stream = sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)()) or _in_notebook()


class Progress(Closing):
    """A context manager around ``tqdm.auto.tqdm`` that does nothing when disabled."""

    def __init__(
        self, total: int | None, desc: str, *, enabled: bool | None = None, unit: str = "text"
    ) -> None:
        self._bar: Any = None
        if not progress_enabled(enabled):
            return
        try:
            tqdm_auto = require("tqdm.auto", "data")
        except ImportError:
            if enabled:  # asked for explicitly: say what is missing
                raise
            return
        self._bar = tqdm_auto.tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True)

    @property
    def active(self) -> bool:
        return self._bar is not None

    def update(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
