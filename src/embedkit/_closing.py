"""``Closing``: the one ``with``-statement mixin for objects that have ``close()``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TypeVar

__all__ = ["Closing"]

_T = TypeVar("_T", bound="Closing")


class Closing(ABC):
    """``with obj: ...`` returns ``obj`` and calls ``obj.close()`` on the way out."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self: _T) -> _T:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
