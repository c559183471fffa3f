"""``python -m embedkit ...``: the same as the ``embedkit`` command."""

from __future__ import annotations

from embedkit.cli import main

raise SystemExit(main())
