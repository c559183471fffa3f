"""Static word vectors: one API for Word2Vec, GloVe and fastText vectors.

A :class:`WordVectors` holds ``words[i]`` and its vector ``vectors[i]`` (float32,
``(n, dim)``), optionally corpus ``counts[i]`` and a ``subword`` function that
builds vectors for out-of-vocabulary words (fastText). Rows are kept in the
given order (by convention most frequent first, which :meth:`WordVectors.limit`
and the evaluations' ``limit`` rely on).

Array contracts (``N = normalize(vectors)``, computed once and kept):

* ``similarity(a, b) = N[a] · N[b]`` (0.0 when either vector is zero);
* ``most_similar(q, k)``: the ``k`` rows with the largest ``N[i] · q / ||q||``,
  best first, the query words themselves excluded;
* ``analogy(a, b, c)`` (a : b :: c : ?):
  3CosAdd ranks ``N[i] · normalize(N[b] - N[a] + N[c])``;
  3CosMul ranks ``s_b(i) s_c(i) / (s_a(i) + 1e-6)`` with ``s_x(i) = (1 + N[i] · N[x]) / 2``;
  ``a``, ``b`` and ``c`` are never answers;
* ``doesnt_match(words)``: the word whose ``N`` row has the lowest dot product
  with ``normalize(mean(N[words]))``.

Searches run on the one exact kernel (:func:`embedkit.search.kernels.search`, ties
to the lower row) via :mod:`embedkit.words.ranking`; the batched variants answer
many queries in one blocked product. Where fewer than ``k`` rows remain once the
query words are left out, fewer results come back (never padding).

Saved form (:meth:`WordVectors.save`): an :mod:`embedkit._folder` folder of kind
``"words"`` (every file's size and sha256 in the manifest, atomic swap, no pickle),
``meta`` = ``{"count": n, "dim": dim}``, files ``vectors.npy`` (float32 ``(n, dim)``,
mapped by ``load(mmap=True)``), ``vocab.json`` (the words in row order) and
``counts.npy`` (int64, when known). ``StaticEmbedder.save`` adds its settings and
pooling weights in the same single write (:mod:`embedkit.words.saved`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from embedkit import _folder
from embedkit.errors import (
    ConfigError,
    CorruptFileError,
    DimensionMismatchError,
    InvalidInputError,
    OutOfVocabularyError,
)
from embedkit.search.kernels import TopK, normalize
from embedkit.search.topk import as_matrix
from embedkit.words.evaluate import (
    AnalogyResult,
    WordPairsResult,
    evaluate_analogies,
    evaluate_word_pairs,
)
from embedkit.words.ranking import Neighbor, cosmul, search_excluding

__all__ = ["KIND", "Neighbor", "OutOfVocabularyError", "Subword", "WordVectors"]

KIND = "words"  # the embedkit folder kind of saved vectors and static embedders
Subword = Callable[[Sequence[str]], NDArray[np.float32]]
AnalogyMethod = Literal["add", "mul"]
LookupOOV = Literal["error", "zero"]


class WordVectors:
    """Words and their static vectors; see the module docstring for the formulas."""

    def __init__(
        self,
        words: Sequence[str],
        vectors: ArrayLike,
        *,
        counts: ArrayLike | None = None,
        subword: Subword | None = None,
    ) -> None:
        matrix = _as_float32(vectors)
        if matrix.ndim != 2:
            raise DimensionMismatchError(f"vectors must be 2-D (n, dim), got shape {matrix.shape}")
        self.words: list[str] = list(map(str, words))
        if len(self.words) != matrix.shape[0]:
            raise DimensionMismatchError(
                f"{len(self.words)} words but {matrix.shape[0]} vector rows"
            )
        self._index: dict[str, int] = dict(zip(self.words, range(len(self.words)), strict=True))
        if len(self._index) != len(self.words):
            first: dict[str, int] = {}
            duplicates = [
                (i, f"duplicate of row {first[w]}: {w!r}")
                for i, w in enumerate(self.words)
                if first.setdefault(w, i) != i
            ]
            raise InvalidInputError("the vocabulary repeats words", duplicates)
        self._vectors: NDArray[np.float32] = matrix
        self._counts: NDArray[np.int64] | None = None
        if counts is not None:
            c = np.asarray(counts, dtype=np.int64)
            if c.shape != (len(self.words),):
                raise DimensionMismatchError(
                    f"counts must have shape ({len(self.words)},), got {c.shape}"
                )
            self._counts = c
        self.subword = subword
        self._normed: NDArray[np.float32] | None = None

    # -- basic access ----------------------------------------------------------------
    @property
    def dim(self) -> int:
        return int(self._vectors.shape[1])

    @property
    def vectors(self) -> NDArray[np.float32]:
        """``(n, dim)`` float32, row i belongs to ``words[i]`` (possibly memory-mapped)."""
        return self._vectors

    @property
    def counts(self) -> NDArray[np.int64] | None:
        """Corpus frequency of each word, ``(n,)`` int64, or ``None`` when unknown."""
        return self._counts

    @property
    def normed(self) -> NDArray[np.float32]:
        """``normalize(vectors)``, computed on first use and kept."""
        if self._normed is None:
            self._normed = normalize(self._vectors)
        return self._normed

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self._index

    def __repr__(self) -> str:
        extra = " subword" if self.subword is not None else ""
        return f"<WordVectors {len(self)} words dim={self.dim}{extra}>"

    def index(self, word: str) -> int:
        """Row of ``word``; :class:`OutOfVocabularyError` if it has none."""
        try:
            return self._index[word]
        except KeyError:
            raise OutOfVocabularyError(
                f"{word!r} is not in the vocabulary ({len(self)} words)", [(0, word)]
            ) from None

    @property
    def key_to_index(self) -> Mapping[str, int]:
        """Word -> row (read it, never change it)."""
        return self._index

    def get_index(self, word: str, default: int = -1) -> int:
        """Row of ``word``, or ``default`` when it is out of vocabulary."""
        return self._index.get(word, default)

    def oov(self, words: Iterable[str]) -> list[str]:
        """The words (in order, repeats kept) that have no row in the vocabulary."""
        return [w for w in words if w not in self._index]

    def content_id(self) -> str:
        """``sha256:<12 hex>`` of the words and vectors: names in-memory vectors in a spec."""
        digest = hashlib.sha256()
        digest.update("\n".join(self.words).encode())
        digest.update(np.ascontiguousarray(self._vectors).tobytes())
        return "sha256:" + digest.hexdigest()[:12]

    def limit(self, n: int) -> WordVectors:
        """The first ``n`` words (the most frequent ones in a frequency-sorted vocabulary)."""
        n = max(0, min(int(n), len(self)))
        counts = None if self._counts is None else self._counts[:n]
        out = WordVectors(self.words[:n], self._vectors[:n], counts=counts, subword=self.subword)
        if self._normed is not None:
            out._normed = self._normed[:n]
        return out

    # -- vectors ---------------------------------------------------------------------
    def vector(self, word: str) -> NDArray[np.float32]:
        """``(dim,)`` float32: the word's row, else its subword vector, else an error."""
        i = self._index.get(word)
        if i is not None:
            return np.array(self._vectors[i], dtype=np.float32)
        if self.subword is not None:
            out: NDArray[np.float32] = self.subword([word])[0]
            return out
        raise OutOfVocabularyError(
            f"{word!r} is not in the vocabulary ({len(self)} words) and these vectors "
            "have no subword model",
            [(0, word)],
        )

    def lookup(self, words: Sequence[str], *, on_oov: LookupOOV = "error") -> NDArray[np.float32]:
        """``(len(words), dim)`` float32 with ``res[i] = vector(words[i])``.

        Words with no row use the subword model when there is one; otherwise
        ``on_oov="error"`` raises :class:`OutOfVocabularyError` naming every such word
        and ``on_oov="zero"`` gives them zero rows. (``"skip"`` does not apply: the
        result has one row per word; filter with :meth:`oov` first.)
        """
        if on_oov not in ("error", "zero"):
            raise ConfigError(
                f"lookup's on_oov must be 'error' or 'zero' (one row per word), got {on_oov!r}"
            )
        ids = np.fromiter((self._index.get(w, -1) for w in words), np.int64, len(words))
        out = np.zeros((len(words), self.dim), dtype=np.float32)
        known = ids >= 0
        out[known] = self._vectors[ids[known]]
        missing = np.flatnonzero(~known)
        if missing.size and self.subword is not None:
            out[missing] = self.subword([words[i] for i in missing.tolist()])
        elif missing.size and on_oov == "error":
            raise OutOfVocabularyError(
                f"{missing.size} of {len(words)} words are out of vocabulary",
                [(i, words[i]) for i in missing.tolist()],
            )
        return out

    def _unit(self, word: str) -> NDArray[np.float32]:
        i = self._index.get(word)
        unit: NDArray[np.float32] = (
            self.normed[i] if i is not None else normalize(self.vector(word))[0]
        )
        return unit

    # -- similarity and search -------------------------------------------------------
    def similarity(self, a: str, b: str) -> float:
        """Cosine similarity of two words (0.0 if either vector is zero)."""
        return float(self._unit(a) @ self._unit(b))

    def most_similar(self, query: str | ArrayLike, k: int = 10) -> list[Neighbor]:
        """The ``k`` words nearest to a word (itself excluded) or to a ``(dim,)`` vector."""
        return self.most_similar_batch([query] if isinstance(query, str) else query, k)[0]

    def most_similar_batch(
        self, queries: Sequence[str] | ArrayLike, k: int = 10
    ) -> list[list[Neighbor]]:
        """``most_similar`` for many queries (words or a ``(q, dim)`` matrix) in one product."""
        if isinstance(queries, (list, tuple)) and all(isinstance(q, str) for q in queries):
            words = [str(q) for q in queries]
            matrix = normalize(self.lookup(words))
            exclude = [[self._index.get(w, -1)] for w in words]
        else:
            matrix = self._query_matrix(queries)
            exclude = [[] for _ in range(matrix.shape[0])]
        return search_excluding(matrix, self.normed, k, exclude).neighbors(self.words)

    def analogy(
        self, a: str, b: str, c: str, k: int = 10, *, method: AnalogyMethod = "add"
    ) -> list[Neighbor]:
        """``a : b :: c : ?`` (``man : king :: woman : queen``); see the module docstring."""
        return self.analogy_batch([(a, b, c)], k, method=method)[0]

    def analogy_batch(
        self,
        questions: Sequence[tuple[str, str, str]],
        k: int = 10,
        *,
        method: AnalogyMethod = "add",
    ) -> list[list[Neighbor]]:
        """:meth:`analogy` for many ``(a, b, c)`` questions as blocked matrix products."""
        if method not in ("add", "mul"):
            raise ConfigError(f"analogy method must be 'add' or 'mul', got {method!r}")
        flat = [w for q in questions for w in q]
        if any(len(q) != 3 for q in questions):
            bad = [(i, f"{len(q)} words") for i, q in enumerate(questions) if len(q) != 3]
            raise InvalidInputError("analogy questions must be (a, b, c) triples", bad)
        units = normalize(self.lookup(flat)).reshape(len(questions), 3, self.dim)
        exclude = [[self._index.get(w, -1) for w in q] for q in questions]
        if method == "add":
            queries = normalize(units[:, 1] - units[:, 0] + units[:, 2])
            return search_excluding(queries, self.normed, k, exclude).neighbors(self.words)
        return cosmul(self.normed, units, k, exclude).neighbors(self.words)

    def analogy_ids(
        self, a: ArrayLike, b: ArrayLike, c: ArrayLike, k: int, *, limit: int | None = None
    ) -> TopK:
        """3CosAdd answers for rows ``a, b, c`` (int arrays of length q) among the first
        ``limit`` rows, the three input rows excluded: ``TopK`` of shape ``(q, w)``.

        ``w = min(k, fewest rows left to a question)``: ``k`` unless the vocabulary is
        tiny; never padded. Scores are ``N[i] · normalize(N[b] - N[a] + N[c])``; used by
        the evaluation.
        """
        ia, ib, ic = (np.asarray(x, dtype=np.int64) for x in (a, b, c))
        normed = self.normed
        n = len(self) if limit is None else max(0, min(int(limit), len(self)))
        queries = normalize(normed[ib] - normed[ia] + normed[ic])
        return search_excluding(queries, normed[:n], k, np.stack([ia, ib, ic], axis=1)).top()

    def doesnt_match(self, words: Sequence[str]) -> str:
        """The word farthest from the mean of the normalised vectors of ``words``."""
        if len(words) < 2:
            raise InvalidInputError(f"doesnt_match needs at least 2 words, got {len(words)}")
        units = normalize(self.lookup(list(words)))
        centre = normalize(units.mean(axis=0))[0]
        return str(words[int(np.argmin(units @ centre))])

    # -- evaluation ------------------------------------------------------------------
    def evaluate_analogies(
        self, path: str | os.PathLike[str], *, limit: int = 300_000, **options: bool
    ) -> AnalogyResult:
        """:func:`embedkit.words.evaluate.evaluate_analogies` on these vectors."""
        return evaluate_analogies(self, path, limit=limit, **options)

    def evaluate_word_pairs(
        self, path: str | os.PathLike[str], *, limit: int = 300_000, **options: Any
    ) -> WordPairsResult:
        """:func:`embedkit.words.evaluate.evaluate_word_pairs` on these vectors."""
        return evaluate_word_pairs(self, path, limit=limit, **options)

    # -- internals -------------------------------------------------------------------
    def _query_matrix(self, queries: ArrayLike) -> NDArray[np.float32]:
        matrix = as_matrix(np.asarray(queries, dtype=np.float32), "queries")
        if matrix.shape[1] != self.dim:
            raise DimensionMismatchError(
                f"query vectors have dimension {matrix.shape[1]}, these vectors {self.dim}"
            )
        return normalize(matrix)

    # -- persistence -----------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the folder described in the module docstring atomically; returns its path.

        The subword model is not saved (it belongs to its backend's own file).
        """
        with _folder.FolderWriter(path, KIND) as writer:
            return writer.commit(self.write_files(writer))

    def write_files(self, writer: _folder.FolderWriter) -> dict[str, Any]:
        """Add these vectors' files to an open folder write; returns their manifest ``meta``."""
        writer.write_npy("vectors.npy", self._vectors)
        writer.write_bytes("vocab.json", json.dumps(self.words, ensure_ascii=False).encode())
        if self._counts is not None:
            writer.write_npy("counts.npy", self._counts)
        return {"count": len(self), "dim": self.dim}

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], *, mmap: bool = False, verify: bool = True
    ) -> WordVectors:
        """Read a folder written by :meth:`save` (or by ``StaticEmbedder.save``).

        ``mmap=True`` maps ``vectors.npy`` read-only instead of reading it. Sizes,
        dtypes and shapes are always checked; ``verify=True`` (the default) also checks
        every file's sha256.
        """
        with _folder.read(path, KIND, verify=verify) as snapshot:
            return cls.from_snapshot(snapshot, mmap=mmap)

    @classmethod
    def from_snapshot(cls, snapshot: _folder.Snapshot, *, mmap: bool = False) -> WordVectors:
        """The vectors in an open, already checked folder :class:`~embedkit._folder.Snapshot`."""
        where = snapshot.path
        count, dim = snapshot.meta.get("count"), snapshot.meta.get("dim")
        if not (_is_size(count) and _is_size(dim)):
            raise CorruptFileError(f"{where}: the manifest needs integer 'count' and 'dim'")
        vectors = snapshot.read_npy("vectors.npy", mmap=mmap)
        if vectors.dtype != np.float32 or vectors.shape != (count, dim):
            raise CorruptFileError(
                f"{where}: vectors.npy holds {vectors.dtype} {vectors.shape}, "
                f"the manifest says float32 ({count}, {dim})"
            )
        words = snapshot.read_json("vocab.json")
        if not isinstance(words, list) or len(words) != count:
            raise CorruptFileError(f"{where}: vocab.json does not hold {count} words")
        if not all(isinstance(w, str) for w in words):
            raise CorruptFileError(f"{where}: vocab.json holds values that are not words")
        counts = snapshot.read_npy("counts.npy") if "counts.npy" in snapshot else None
        if counts is not None and (counts.dtype != np.int64 or counts.shape != (count,)):
            raise CorruptFileError(f"{where}: counts.npy does not hold {count} int64 counts")
        try:
            return cls(words, vectors, counts=counts)
        except InvalidInputError as exc:
            raise CorruptFileError(f"{where}: vocab.json: {exc}") from exc


def _is_size(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _as_float32(x: ArrayLike) -> NDArray[np.float32]:
    """``x`` itself when it is already a float32 array (a memory map stays one), else a copy."""
    if isinstance(x, np.ndarray) and x.dtype == np.float32:
        return x
    return np.asarray(x, dtype=np.float32)
