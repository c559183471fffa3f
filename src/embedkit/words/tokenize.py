"""Word tokenisation used identically at training and at embedding time.

A tokenizer is a callable ``str -> list[str]`` with a ``name`` that goes into a
model's spec, so that vectors trained with one tokenizer are never queried with
another. Built-in names (:func:`get_tokenizer`):

* ``"words"``       Unicode-aware ``\\w+`` runs, lower-cased (the default), except that
  every Chinese/Japanese character is a token of its own (see below);
* ``"words-cased"`` the same without lower-casing;
* ``"jieba"``       Chinese word segmentation with jieba (``pip install 'embedkit[zh]'``),
  keeping tokens that contain a word character, lower-casing Latin letters.

CJK policy of ``words``, with no extra dependency: Chinese and Japanese are written
without spaces, so a ``\\w+`` run would be a whole clause (``我喜欢学习中文``) that
never matches another. Han ideographs (CJK Unified Ideographs with extensions A-G,
compatibility ideographs, ``々〆〇``), Hiragana and Katakana (full and half width)
are therefore one token per character, and n-grams over the tokens (the hashing
backend's ``ngrams=2``) are character n-grams: ``"这个产品很好"`` ->
``这 个 产 品 很 好`` (+ bigrams ``这个 个产 产品 ...``). Latin letters and digits next to
them stay words (``"iPhone手机"`` -> ``iphone 手 机``). Korean is written with spaces
between words, so Hangul runs stay words. For real word segmentation use ``jieba``
(Chinese) or register a tokenizer (e.g. a Japanese or Korean morphological analyser).

None of them downloads anything. :func:`register_tokenizer` adds your own under a
name, so that models trained with it can be saved and reloaded by that name.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from embedkit._optional import require
from embedkit.errors import ConfigError

__all__ = [
    "JiebaTokenizer",
    "Tokenizer",
    "WordTokenizer",
    "get_tokenizer",
    "register_tokenizer",
    "simple_token_spans",
    "simple_tokenize",
    "word_spans",
]

# Scripts written without spaces: one token per character (Han, Hiragana, Katakana).
CJK_CHARS = (
    "\u3005-\u3007\u3040-\u309f\u30a0-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
    "\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003134f"
)
_WORD = re.compile(rf"(?=\w)[{CJK_CHARS}]|[^\W{CJK_CHARS}]+")
_NON_SPACE = re.compile(rf"[{CJK_CHARS}]|[^\s{CJK_CHARS}]+")


def simple_tokenize(text: str, lowercase: bool = True) -> list[str]:
    """``\\w+`` runs of ``text``, each CJK character on its own, lower-cased if asked.

    ``"Don't stop" -> ["don", "t", "stop"]``; ``"很好!OK" -> ["很", "好", "ok"]``.
    """
    return _WORD.findall(text.lower() if lowercase else text)


def simple_token_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` in ``text`` of each token :func:`simple_tokenize` finds.

    ``[text[a:b].lower() for a, b in spans] == simple_tokenize(text)`` except where
    lower-casing changes a character's length (``"İ"``).
    """
    return [m.span() for m in _WORD.finditer(text)]


def word_spans(text: str) -> list[tuple[int, int]]:
    """Runs of non-space characters, each CJK character on its own (punctuation and emoji
    included): the fallback token positions of a model that cannot say where its own are."""
    return [m.span() for m in _NON_SPACE.finditer(text)]


class Tokenizer(Protocol):
    @property
    def name(self) -> str: ...

    def __call__(self, text: str) -> list[str]: ...


@dataclass(frozen=True)
class WordTokenizer:
    """Unicode ``\\w+`` tokenizer; ``name`` is ``"words"`` or ``"words-cased"``."""

    lowercase: bool = True

    @property
    def name(self) -> str:
        return "words" if self.lowercase else "words-cased"

    def __call__(self, text: str) -> list[str]:
        return simple_tokenize(text, self.lowercase)


@dataclass(frozen=True)
class JiebaTokenizer:
    """Chinese segmentation by jieba (precise mode); punctuation and spaces dropped."""

    name: str = "jieba"

    def __call__(self, text: str) -> list[str]:
        jieba = require("jieba", "zh")
        if not getattr(jieba, "_embedkit_quiet", False):
            import logging

            jieba.setLogLevel(logging.WARNING)
            setattr(jieba, "_embedkit_quiet", True)  # noqa: B010
        return [t.lower() for t in jieba.lcut(text) if _WORD.search(t)]


_BUILTIN: dict[str, Callable[[], Tokenizer]] = {
    "words": WordTokenizer,
    "words-cased": lambda: WordTokenizer(lowercase=False),
    "jieba": JiebaTokenizer,
}


_registered: dict[str, Callable[[], Tokenizer]] = {}


def register_tokenizer(name: str, factory: Callable[[], Tokenizer]) -> None:
    """Make ``get_tokenizer(name)`` return ``factory()``; ``factory().name`` must be ``name``."""
    if not isinstance(name, str) or not name or name in _BUILTIN:
        raise ConfigError(f"cannot register a tokenizer as {name!r} (empty or built-in)")
    made = factory()
    if made.name != name:
        raise ConfigError(f"the factory makes a tokenizer named {made.name!r}, not {name!r}")
    _registered[name] = factory


def get_tokenizer(name: str | Tokenizer) -> Tokenizer:
    """The tokenizer called ``name`` (or ``name`` itself if it is already a tokenizer)."""
    if not isinstance(name, str):
        return name
    factory = _BUILTIN.get(name) or _registered.get(name)
    if factory is None:
        known = sorted([*_BUILTIN, *_registered])
        raise ConfigError(
            f"unknown tokenizer {name!r}; choose from {known} or register_tokenizer() it"
        )
    return factory()
