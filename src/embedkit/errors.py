"""The embedkit exception tree.

Every error embedkit raises on purpose derives from :class:`EmbedkitError`, and
mixes in the builtin that idiomatic code already catches::

    EmbedkitError
    ├── ConfigError (ValueError)               bad spec, option or config dict
    │   ├── UnknownBackendError                 no backend of that name
    │   ├── UnknownDimensionError               a server model's width, before its first call
    │   └── UsageError                          a command line that cannot run as given
    ├── MissingDependencyError (ImportError)    optional extra not installed
    ├── InvalidInputError (ValueError)          bad texts; ``.rows`` names them
    │   ├── TextTooLongError                    over the model's limit (on_long="error")
    │   └── OutOfVocabularyError (KeyError)     words without a vector (on_oov="error")
    ├── DimensionMismatchError (ValueError)     vectors of the wrong width
    ├── ModelMismatchError (ValueError)         vectors from another model/spec
    ├── CorruptFileError (ValueError)           a saved file fails its checks
    ├── StorageError (OSError)                  a file or cache cannot be used: locked,
    │                                           read-only, disk full (not corrupt)
    └── BackendError (RuntimeError)             a backend failed; original as __cause__
        ├── BadResponseError                    a server answered with wrong data
        └── QuotaExceededError                  billing quota exhausted: retrying won't help

Backends translate their library's exceptions at the boundary with
``raise BackendError(...) from exc``.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "BackendError",
    "BadResponseError",
    "ConfigError",
    "CorruptFileError",
    "DimensionMismatchError",
    "EmbedkitError",
    "EmbedkitWarning",
    "InvalidInputError",
    "MissingDependencyError",
    "ModelMismatchError",
    "OutOfVocabularyError",
    "QuotaExceededError",
    "StorageError",
    "TextTooLongError",
    "UnknownBackendError",
    "UnknownDimensionError",
    "UsageError",
]


class EmbedkitError(Exception):
    """Root of every error embedkit raises on purpose."""


class ConfigError(EmbedkitError, ValueError):
    """A spec string, option or config dict that cannot be used."""


class UnknownBackendError(ConfigError):
    """No backend is registered under the requested name."""


class UnknownDimensionError(ConfigError):
    """The width of a server-side model is not known until its first response."""


class UsageError(ConfigError):
    """A command line that cannot be run as given."""


class MissingDependencyError(EmbedkitError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""


class InvalidInputError(EmbedkitError, ValueError):
    """Some input texts are unusable.

    ``rows`` holds ``(position, reason)`` pairs for every offending row, so that a
    caller can drop or fix exactly those rows.
    """

    def __init__(self, message: str, rows: Sequence[tuple[int, str]] = ()) -> None:
        self.rows: list[tuple[int, str]] = list(rows)
        super().__init__(_with_rows(message, self.rows))

    @property
    def positions(self) -> list[int]:
        """Positions of the offending rows, in input order."""
        return [i for i, _ in self.rows]


class TextTooLongError(InvalidInputError):
    """Texts over the model's token limit under ``on_long="error"``."""


class OutOfVocabularyError(InvalidInputError, KeyError):
    """Words without a vector; ``rows`` holds ``(position, word)`` for each of them."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class DimensionMismatchError(EmbedkitError, ValueError):
    """Vectors whose width differs from what the index or model expects."""


class ModelMismatchError(EmbedkitError, ValueError):
    """Vectors produced by a different model (spec) than the one expected."""


class CorruptFileError(EmbedkitError, ValueError):
    """A saved file is truncated, altered or not in the expected format."""


class StorageError(EmbedkitError, OSError):
    """A file or the cache cannot be used as asked (locked, read-only, disk full).

    The data itself is fine: retry later, free space or choose another location.
    The original ``OSError``/``sqlite3`` error is chained as ``__cause__``.
    """


class BackendError(EmbedkitError, RuntimeError):
    """A backend failed; the original exception is chained as ``__cause__``."""


class BadResponseError(BackendError):
    """A server returned data that fails verification (count, dim, NaN, order)."""


class QuotaExceededError(BackendError):
    """The account's quota is exhausted; retrying will not help."""


def _with_rows(message: str, rows: Sequence[tuple[int, str]], limit: int = 10) -> str:
    if not rows:
        return message
    shown = ", ".join(f"{i} ({why})" for i, why in rows[:limit])
    more = f", ... and {len(rows) - limit} more" if len(rows) > limit else ""
    return f"{message}: rows {shown}{more}"


class EmbedkitWarning(UserWarning):
    """Base of the warnings embedkit emits (e.g. texts truncated under on_long="truncate")."""
