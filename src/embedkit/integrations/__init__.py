"""Adapters to other libraries' interfaces, each an optional extra imported on first use.

* :mod:`embedkit.integrations.langchain` -- ``EmbedkitEmbeddings``, LangChain's
  ``Embeddings`` over any embedkit model (``pip install 'embedkit[langchain]'``).

``from embedkit.integrations import EmbedkitEmbeddings`` works too; nothing is
imported until a name is asked for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from embedkit.integrations.langchain import EmbedkitEmbeddings

__all__ = ["EmbedkitEmbeddings"]

_LAZY = {"EmbedkitEmbeddings": "embedkit.integrations.langchain"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'embedkit.integrations' has no attribute {name!r}")
