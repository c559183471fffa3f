"""Standard intrinsic evaluations of word vectors, batched, with gensim's exact rules.

* :func:`evaluate_analogies` -- the Google analogy format (``questions-words.txt``:
  ``": section"`` lines, then ``a b c d`` lines meaning a : b :: c : d). Only the first
  ``limit`` words take part; a question with a word outside them counts as
  OOV (skipped, or wrong with ``dummy4unknown``). The answer is the best of
  ``N[i] · normalize(N[b] - N[a] + N[c])`` over those words, ``a``, ``b``, ``c`` left out
  (3CosAdd). Case-insensitive matching upper-cases everything, and a word with
  several case variants takes the vector of its first (most frequent) one.
  ``accuracy = correct / (correct + incorrect)``.
* :func:`evaluate_word_pairs` -- WordSim-353 / SimLex-999 style files
  (``word1<TAB>word2<TAB>score``, ``#`` comments): Pearson and Spearman correlation
  between the human scores and ``cos(word1, word2)``, and the OOV share in percent.

Both follow gensim's ``KeyedVectors.evaluate_word_analogies`` /
``evaluate_word_pairs`` rule for rule, so the numbers are equal on the same
vectors, but all questions are answered by blocked matrix products at once.

Lines that cannot be read as a question or a pair (gensim logs and skips them) are
skipped too, but never silently: their line numbers (from 1) are in the result's
``malformed`` field and an :class:`~embedkit.errors.EmbedkitWarning` gives their
count. Blank lines and ``#`` comments (word pairs) are not malformed.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from embedkit.errors import ConfigError, CorruptFileError, EmbedkitWarning
from embedkit.search.kernels import TopK

__all__ = [
    "AnalogyResult",
    "AnalogySection",
    "WordPairsResult",
    "evaluate_analogies",
    "evaluate_word_pairs",
    "pearson",
    "spearman",
]

TOP_N = 5  # gensim looks at the 5 best answers and takes the first that is not an input


class Vectors(Protocol):
    """What the evaluations read of a :class:`~embedkit.words.vectors.WordVectors`."""

    @property
    def words(self) -> list[str]: ...

    @property
    def normed(self) -> NDArray[np.float32]: ...

    def __len__(self) -> int: ...

    def analogy_ids(
        self, a: ArrayLike, b: ArrayLike, c: ArrayLike, k: int, *, limit: int | None = None
    ) -> TopK: ...


@dataclass(frozen=True)
class AnalogySection:
    """One section of an analogy file: questions answered right and wrong."""

    name: str
    correct: int
    incorrect: int

    @property
    def accuracy(self) -> float:
        total = self.correct + self.incorrect
        return self.correct / total if total else 0.0


@dataclass(frozen=True)
class AnalogyResult:
    """``accuracy`` over evaluated questions; ``oov`` questions had a word outside the vocabulary.

    ``oov_ratio`` is ``oov / questions * 100`` (percent, as gensim logs it).
    """

    accuracy: float
    sections: list[AnalogySection]
    correct: int
    incorrect: int
    oov: int
    questions: int
    malformed: list[int] = field(default_factory=list)

    @property
    def oov_ratio(self) -> float:
        return 100.0 * self.oov / self.questions if self.questions else 0.0


@dataclass(frozen=True)
class WordPairsResult:
    """Pearson r, Spearman rho (no p-values) and the OOV share in percent.

    ``malformed``: line numbers (from 1) of lines that were not ``word1 word2 score``.
    """

    pearson: float
    spearman: float
    oov_ratio: float
    pairs: int
    oov: int
    malformed: list[int] = field(default_factory=list)


def _vocab(
    words: Vectors, limit: int, case_insensitive: bool
) -> tuple[dict[str, int], Callable[[str], str]]:
    key: Callable[[str], str] = str.upper if case_insensitive else str
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigError(f"limit must be an integer >= 1 (the first words kept), got {limit!r}")
    n = min(limit, len(words))
    names = words.words[:n]  # reversed: the first (most frequent) case variant wins
    return dict(zip(map(key, reversed(names)), range(n - 1, -1, -1), strict=True)), key


def _lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, str]]:
    """``(line number from 1, text)`` of a UTF-8 file; a line that is not UTF-8 is corrupt."""
    with open(path, "rb") as fh:
        for line_no, raw in enumerate(fh, 1):
            try:
                yield line_no, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise CorruptFileError(f"{path} line {line_no} is not UTF-8: {exc}") from exc


def _warn_malformed(path: str | os.PathLike[str], malformed: Sequence[int], what: str) -> None:
    if malformed:
        shown = ", ".join(map(str, malformed[:10])) + (", ..." if len(malformed) > 10 else "")
        warnings.warn(
            f"{path}: skipped {len(malformed)} malformed lines that are not {what} "
            f"(lines {shown}); see the result's .malformed",
            EmbedkitWarning,
            stacklevel=3,
        )


def evaluate_analogies(
    words: Vectors,
    path: str | os.PathLike[str],
    *,
    limit: int = 300_000,
    case_insensitive: bool = True,
    dummy4unknown: bool = False,
) -> AnalogyResult:
    """Accuracy on an analogy file (see the module docstring)."""
    ok, key = _vocab(words, limit, case_insensitive)
    names: list[str] = []
    section_of: list[int] = []
    quads: list[tuple[str, str, str, str]] = []
    malformed: list[int] = []
    dummy = [0]
    oov = questions = 0
    for line_no, line in _lines(path):
        if line.startswith(": "):
            names.append(line.lstrip(": ").strip())
            dummy.append(0)
            continue
        if not names:
            raise CorruptFileError(f"missing section header before line {line_no} in {path}")
        fields = [key(w) for w in line.split()]
        if len(fields) != 4:
            if fields:
                malformed.append(line_no)
            continue
        questions += 1
        if any(w not in ok for w in fields):
            oov += 1
            dummy[len(names)] += int(dummy4unknown)
            continue
        section_of.append(len(names) - 1)
        quads.append((fields[0], fields[1], fields[2], fields[3]))
    _warn_malformed(path, malformed, "'a b c d' questions")
    if questions == 0:
        raise CorruptFileError(f"{path} holds no analogy questions")
    correct = np.zeros(len(names), dtype=np.int64)
    asked = np.zeros(len(names), dtype=np.int64)
    if quads:
        ids = np.asarray([[ok[w] for w in q[:3]] for q in quads], dtype=np.int64)
        vocab = words.words
        # the best answer first: k = 1 keeps the search fast (its work grows with k)
        rows = words.analogy_ids(ids[:, 0], ids[:, 1], ids[:, 2], 1, limit=limit).indices.tolist()
        again = [q for q, row in enumerate(rows) if not row or key(vocab[row[0]]) in quads[q][:3]]
        if again:  # a case variant of an input word: gensim looks on among its TOP_N
            sub = ids[again]
            more = words.analogy_ids(sub[:, 0], sub[:, 1], sub[:, 2], TOP_N, limit=limit)
            for q, row in zip(again, more.indices.tolist(), strict=True):
                rows[q] = row
        for q, (quad, row) in enumerate(zip(quads, rows, strict=True)):
            predicted = None
            for i in row:  # fewer than TOP_N only in a tiny vocabulary
                predicted = key(vocab[i])
                if predicted not in quad[:3]:
                    break
            correct[section_of[q]] += int(predicted == quad[3])
            asked[section_of[q]] += 1
    sections = [
        AnalogySection(name, int(correct[s]), int(asked[s] - correct[s]) + dummy[s + 1])
        for s, name in enumerate(names)
    ]
    right = sum(s.correct for s in sections)
    wrong = sum(s.incorrect for s in sections)
    total = right + wrong
    accuracy = right / total if total else 0.0
    return AnalogyResult(accuracy, sections, right, wrong, oov, questions, malformed)


def evaluate_word_pairs(
    words: Vectors,
    path: str | os.PathLike[str],
    *,
    delimiter: str = "\t",
    limit: int = 300_000,
    case_insensitive: bool = True,
    dummy4unknown: bool = False,
) -> WordPairsResult:
    """Correlation with human similarity scores (see the module docstring)."""
    ok, key = _vocab(words, limit, case_insensitive)
    gold: list[float] = []
    pairs: list[tuple[int, int]] = []
    malformed: list[int] = []
    oov = 0
    for line_no, line in _lines(path):
        if not line.strip() or line.startswith("#"):
            continue
        try:
            a, b, score = (key(w) for w in line.split(delimiter))
            value = float(score)
        except ValueError:
            malformed.append(line_no)
            continue
        if a not in ok or b not in ok:
            oov += 1
            if dummy4unknown:
                gold.append(value)
                pairs.append((-1, -1))
            continue
        gold.append(value)
        pairs.append((ok[a], ok[b]))
    _warn_malformed(path, malformed, f"'word1{delimiter!r}word2{delimiter!r}score' pairs")
    if not gold:
        raise CorruptFileError(f"{path} has no usable word pair within the vocabulary")
    ids = np.asarray(pairs, dtype=np.int64)
    known = ids[:, 0] >= 0
    model = np.zeros(len(pairs), dtype=np.float32)
    normed = words.normed
    model[known] = np.einsum("ij,ij->i", normed[ids[known, 0]], normed[ids[known, 1]])
    human = np.asarray(gold, dtype=np.float64)
    evaluated = len(gold) if dummy4unknown else len(gold) + oov
    return WordPairsResult(
        pearson(human, model),
        spearman(human, model),
        100.0 * oov / evaluated,
        len(gold),
        oov,
        malformed,
    )


def pearson(x: NDArray[np.floating], y: NDArray[np.floating]) -> float:
    """Pearson's r of two equal-length 1-D arrays (computed in float64)."""
    a = np.asarray(x, dtype=np.float64) - np.mean(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64) - np.mean(y, dtype=np.float64)
    denom = np.sqrt((a @ a) * (b @ b))
    return float(a @ b / denom) if denom > 0 else float("nan")


def spearman(x: NDArray[np.floating], y: NDArray[np.floating]) -> float:
    """Spearman's rho: Pearson's r of the ranks (ties get their average rank)."""
    return pearson(_rank(np.asarray(x)), _rank(np.asarray(y)))


def _rank(x: NDArray[np.floating]) -> NDArray[np.float64]:
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], len(x)]
    average = (starts + ends - 1) / 2.0 + 1.0
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.repeat(average, ends - starts)
    return ranks
