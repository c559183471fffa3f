"""Static word vectors: one API for Word2Vec, GloVe and fastText vectors.

A :class:`WordVectors` holds ``words[i]`` and its vector ``vectors[i]`` (float32,
``(n, dim)``), optionally corpus ``counts[i]`` and a ``subword`` function that
builds vectors for out-of-vocabulary words (fastText). Rows are kept in the
given order (by convention most frequent first, which ``restrict_vocab`` relies on).

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

Batched variants (``most_similar_batch``, ``analogy_batch``) answer many queries
with one blocked matrix product (:func:`embedkit.search.kernels.search`).

Saved form (:meth:`WordVectors.save`), a folder, no pickle::

    manifest.json   format, version, count, dim, sha256 and size of each file
    vectors.npy     float32 (n, dim); ``load(mmap=True)`` maps it
    vocab.json      the n words, in row order
    counts.npy      int64 (n,), only when counts are known
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from embedkit.errors import (
    ConfigError,
    CorruptFileError,
    DimensionMismatchError,
    InvalidInputError,
)
from embedkit.search.kernels import TopK, as_matrix, normalize, search, top_k

if TYPE_CHECKING:
    from embedkit.words.evaluate import AnalogyResult, WordPairsResult

__all__ = [
    "Neighbor",
    "OutOfVocabularyError",
    "Subword",
    "WordVectors",
]

FORMAT = "embedkit-words"
VERSION = 1
Subword = Callable[[Sequence[str]], NDArray[np.float32]]
AnalogyMethod = Literal["add", "mul"]
COSMUL_EPS = 1e-6
FAST_SEARCH_MIN = 2**24  # query x vocabulary size from which fast_search pays off


class OutOfVocabularyError(InvalidInputError, KeyError):
    """Words without a vector; ``rows`` holds ``(position, word)`` for each of them."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Neighbor:
    """One search result: a word and its cosine score (or 3CosMul score)."""

    word: str
    score: float


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

    def restrict(self, n: int) -> WordVectors:
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

    def lookup(
        self, words: Sequence[str], *, oov: Literal["error", "zero"] = "error"
    ) -> NDArray[np.float32]:
        """``(len(words), dim)`` float32 with ``res[i] = vector(words[i])``.

        Words with no row use the subword model when there is one; otherwise
        ``oov="error"`` raises :class:`OutOfVocabularyError` naming every such word
        and ``oov="zero"`` gives them zero rows.
        """
        if oov not in ("error", "zero"):
            raise ConfigError(f"oov must be 'error' or 'zero', got {oov!r}")
        ids = np.fromiter((self._index.get(w, -1) for w in words), np.int64, len(words))
        out = np.zeros((len(words), self.dim), dtype=np.float32)
        known = ids >= 0
        out[known] = self._vectors[ids[known]]
        missing = np.flatnonzero(~known)
        if missing.size and self.subword is not None:
            out[missing] = self.subword([words[i] for i in missing.tolist()])
        elif missing.size and oov == "error":
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
        if isinstance(query, str):
            return self.most_similar_batch([query], k)[0]
        return self._neighbors(self._search(self._query_matrix(query), k, [[]]))[0]

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
        found = self._search(matrix, k, exclude)
        return self._neighbors(found)

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
            found = self._search(normalize(units[:, 1] - units[:, 0] + units[:, 2]), k, exclude)
        else:
            found = self._cosmul(units, k, exclude)
        return self._neighbors(found)

    def analogy_ids(
        self, a: ArrayLike, b: ArrayLike, c: ArrayLike, k: int, *, restrict: int | None = None
    ) -> TopK:
        """3CosAdd answers for rows ``a, b, c`` (int arrays of length q) among the first
        ``restrict`` rows: ``TopK`` of shape ``(q, k)``, the three input rows excluded.

        Scores are ``N[i] · normalize(N[b] - N[a] + N[c])``; used by the evaluation.
        """
        ia, ib, ic = (np.asarray(x, dtype=np.int64) for x in (a, b, c))
        n = len(self) if restrict is None else min(int(restrict), len(self))
        normed = self.normed
        queries = normalize(normed[ib] - normed[ia] + normed[ic])
        exclude = np.stack([ia, ib, ic], axis=1).tolist()
        return self._search(queries, k, exclude, n)

    def doesnt_match(self, words: Sequence[str]) -> str:
        """The word farthest from the mean of the normalised vectors of ``words``."""
        if len(words) < 2:
            raise InvalidInputError(f"doesnt_match needs at least 2 words, got {len(words)}")
        units = normalize(self.lookup(list(words)))
        centre = normalize(units.mean(axis=0))[0]
        return str(words[int(np.argmin(units @ centre))])

    # -- evaluation ------------------------------------------------------------------
    def evaluate_analogies(
        self, path: str | os.PathLike[str], *, restrict_vocab: int = 300_000
    ) -> AnalogyResult:
        """:func:`embedkit.words.evaluate.evaluate_analogies` on these vectors."""
        from embedkit.words.evaluate import evaluate_analogies

        return evaluate_analogies(self, path, restrict_vocab=restrict_vocab)

    def evaluate_word_pairs(
        self, path: str | os.PathLike[str], *, restrict_vocab: int = 300_000
    ) -> WordPairsResult:
        """:func:`embedkit.words.evaluate.evaluate_word_pairs` on these vectors."""
        from embedkit.words.evaluate import evaluate_word_pairs

        return evaluate_word_pairs(self, path, restrict_vocab=restrict_vocab)

    # -- internals -------------------------------------------------------------------
    def _query_matrix(self, queries: ArrayLike) -> NDArray[np.float32]:
        matrix = as_matrix(np.asarray(queries, dtype=np.float32), "queries")
        if matrix.shape[1] != self.dim:
            raise DimensionMismatchError(
                f"query vectors have dimension {matrix.shape[1]}, these vectors {self.dim}"
            )
        return normalize(matrix)

    def _search(
        self,
        queries: NDArray[np.float32],
        k: int,
        exclude: Sequence[Sequence[int]],
        restrict: int | None = None,
    ) -> TopK:
        """Top ``k`` of ``queries @ normed[:restrict].T`` per row, ``exclude[q]`` left out.

        Asks :func:`search` for ``k + max(len(exclude[q]))`` and drops excluded rows, so the
        result equals a search over the vocabulary without them (ties: lower row first).
        """
        normed = self.normed if restrict is None else self.normed[:restrict]
        extra = max((len(e) for e in exclude), default=0)
        if queries.shape[0] * normed.shape[0] >= FAST_SEARCH_MIN:
            found = fast_search(queries, normed, int(k) + extra)
        else:
            found = search(queries, normed, int(k) + extra)
        if extra == 0:
            return found
        k = min(int(k), normed.shape[0])
        excl = np.full((len(exclude), extra), -1, dtype=np.int64)
        for row, items in enumerate(exclude):
            excl[row, : len(items)] = items
        keep = ~(found.indices[:, :, None] == excl[:, None, :]).any(axis=2)
        order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
        indices = np.take_along_axis(found.indices, order, axis=1)
        scores = np.take_along_axis(found.scores, order, axis=1)
        short = keep.sum(axis=1) < k  # fewer than k candidates survive: mark the tail
        if short.any():
            valid = np.take_along_axis(keep, order, axis=1)
            indices = np.where(valid, indices, -1)
        return TopK(indices, scores)

    def _cosmul(self, units: NDArray[np.float32], k: int, exclude: Sequence[Sequence[int]]) -> TopK:
        """3CosMul over the whole vocabulary, in blocks of queries.

        Excluded rows score ``-inf``; where fewer than ``k`` other rows exist they come
        back with index ``-1`` (dropped by :meth:`_neighbors`), as in :meth:`_search`.
        """
        normed = self.normed
        n = normed.shape[0]
        k = min(int(k), n)
        block = max(1, (64 * 2**20) // (4 * 3 * max(n, 1)))
        indices = np.empty((units.shape[0], k), np.int64)
        scores = np.empty((units.shape[0], k), np.float32)
        for q0 in range(0, units.shape[0], block):
            part = units[q0 : q0 + block]
            sims = (1.0 + (part.reshape(-1, self.dim) @ normed.T)) / 2.0
            sims = sims.reshape(part.shape[0], 3, n)
            value = sims[:, 1] * sims[:, 2] / (sims[:, 0] + COSMUL_EPS)
            excluded = [[i for i in items if i >= 0] for items in exclude[q0 : q0 + block]]
            for row, items in enumerate(excluded):
                value[row, items] = -np.inf
            found = top_k(value, k)
            for row, items in enumerate(excluded):
                found.indices[row, np.isin(found.indices[row], items)] = -1
            indices[q0 : q0 + block], scores[q0 : q0 + block] = found
        return TopK(indices, scores)

    def _neighbors(self, found: TopK) -> list[list[Neighbor]]:
        return [
            [
                Neighbor(self.words[int(i)], float(s))
                for i, s in zip(idx, val, strict=True)
                if i >= 0
            ]
            for idx, val in zip(found.indices, found.scores, strict=True)
        ]

    # -- persistence -----------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the folder described in the module docstring; returns its path.

        The subword model is not saved (it belongs to its backend's own file).
        """
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "manifest.json").unlink(missing_ok=True)  # an interrupted save stays invalid
        files = {
            "vectors.npy": _save_npy(folder / "vectors.npy", self._vectors),
            "vocab.json": _write_bytes(
                folder / "vocab.json", json.dumps(self.words, ensure_ascii=False).encode()
            ),
        }
        if self._counts is not None:
            files["counts.npy"] = _save_npy(folder / "counts.npy", self._counts)
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "count": len(self),
            "dim": self.dim,
            "files": files,
        }
        _write_bytes(folder / "manifest.json", json.dumps(manifest, indent=2).encode())
        return folder

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], *, mmap: bool = False, verify: bool = False
    ) -> WordVectors:
        """Read a folder written by :meth:`save`.

        ``mmap=True`` maps ``vectors.npy`` read-only instead of reading it. File sizes,
        dtypes and shapes are always checked; ``verify=True`` also checks each sha256.
        """
        folder = Path(path)
        manifest = read_manifest(folder)
        for name, info in manifest["files"].items():
            _check_file(folder / name, info, verify)
        count, dim = int(manifest["count"]), int(manifest["dim"])
        try:
            vectors = np.load(
                folder / "vectors.npy", mmap_mode="r" if mmap else None, allow_pickle=False
            )
            words = json.loads((folder / "vocab.json").read_text("utf-8"))
            counts = None
            if "counts.npy" in manifest["files"]:
                counts = np.load(folder / "counts.npy", allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise CorruptFileError(f"word vectors at {folder} cannot be read: {exc}") from exc
        if vectors.dtype != np.float32 or vectors.shape != (count, dim):
            raise CorruptFileError(
                f"{folder / 'vectors.npy'} holds {vectors.dtype} {vectors.shape}, "
                f"the manifest says float32 ({count}, {dim})"
            )
        if not isinstance(words, list) or len(words) != count:
            raise CorruptFileError(f"{folder / 'vocab.json'} does not hold {count} words")
        if counts is not None and counts.shape != (count,):
            raise CorruptFileError(f"{folder / 'counts.npy'} does not hold {count} counts")
        return cls(words, vectors, counts=counts)


def fast_search(
    queries: NDArray[np.float32],
    matrix: NDArray[np.float32],
    k: int,
    *,
    group: int = 64,
    block_bytes: int = 128 * 2**20,
) -> TopK:
    """Exact top-k of ``queries @ matrix.T`` for many queries over a large matrix.

    Same result as :func:`embedkit.search.kernels.search` (up to the order of exactly equal
    scores), without a selection over every score: the ``n`` columns are split into
    ``n // group`` groups (column ``j`` belongs to group ``j mod (n // group)``), the
    maximum of each group is taken with vectorised ``maximum`` over contiguous slabs,
    and only the columns of the ``k`` groups with the largest maxima (plus the
    ``n mod group`` leftover columns) are ranked with :func:`embedkit.search.kernels.top_k`.
    This is exact: each of the true top ``k`` columns lies in a group whose maximum
    is at least its score, and at most ``k - 1`` groups can beat that.
    """
    qm = as_matrix(queries, "queries")
    n = matrix.shape[0]
    k = min(int(k), n)
    groups = n // group
    if groups <= k or k <= 0:
        return search(qm, matrix, k)
    width = groups * group
    rows = max(1, min(qm.shape[0], block_bytes // (4 * n)))
    buffer = np.empty((rows, n), dtype=np.float32)
    maxima = np.empty((rows, groups), dtype=np.float32)
    out_idx = np.empty((qm.shape[0], k), np.int64)
    out_val = np.empty((qm.shape[0], k), np.float32)
    tail = np.arange(width, n, dtype=np.int64)
    offsets = np.arange(group, dtype=np.int64) * groups
    for q0 in range(0, qm.shape[0], rows):
        part = qm[q0 : q0 + rows]
        m = part.shape[0]
        scores, best = buffer[:m], maxima[:m]
        np.matmul(part, matrix.T, out=scores)
        np.copyto(best, scores[:, :groups])
        for j in range(1, group):
            np.maximum(best, scores[:, j * groups : (j + 1) * groups], out=best)
        top_groups = np.argpartition(-best, k - 1, axis=1)[:, :k]
        cols = (top_groups[:, :, None] + offsets[None, None, :]).reshape(m, -1)
        if tail.size:
            cols = np.concatenate([cols, np.broadcast_to(tail, (m, tail.size))], axis=1)
        cols.sort(axis=1)  # equal scores then keep the lower column first, as top_k does
        found = top_k(np.take_along_axis(scores, cols, axis=1), k)
        out_idx[q0 : q0 + m] = np.take_along_axis(cols, found.indices, axis=1)
        out_val[q0 : q0 + m] = found.scores
    return TopK(out_idx, out_val)


def is_saved_words(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a folder holding a words manifest."""
    return (Path(path) / "manifest.json").is_file()


def read_manifest(folder: Path) -> dict[str, Any]:
    """The parsed ``manifest.json`` of a saved :class:`WordVectors` (checked format)."""
    path = folder / "manifest.json"
    try:
        manifest: dict[str, Any] = json.loads(path.read_text("utf-8"))
    except FileNotFoundError as exc:
        raise CorruptFileError(f"{folder} holds no saved word vectors (no manifest.json)") from exc
    except (ValueError, OSError) as exc:
        raise CorruptFileError(f"{path} is not valid JSON: {exc}") from exc
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise CorruptFileError(f"{path} is not an {FORMAT} v{VERSION} manifest")
    return manifest


def _as_float32(x: ArrayLike) -> NDArray[np.float32]:
    """``x`` itself when it is already a float32 array (a memory map stays one), else a copy."""
    if isinstance(x, np.ndarray) and x.dtype == np.float32:
        return x
    return np.asarray(x, dtype=np.float32)


def _save_npy(path: Path, array: NDArray[Any]) -> dict[str, Any]:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, np.ascontiguousarray(array), allow_pickle=False)
    os.replace(tmp, path)
    return _file_info(path)


def _write_bytes(path: Path, data: bytes) -> dict[str, Any]:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return _file_info(path)


def _file_info(path: Path) -> dict[str, Any]:
    return {"bytes": path.stat().st_size, "sha256": _sha256(path)}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(2**22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_file(path: Path, info: dict[str, Any], verify: bool) -> None:
    try:
        size = path.stat().st_size
    except FileNotFoundError as exc:
        raise CorruptFileError(f"{path} is missing") from exc
    if size != info["bytes"]:
        raise CorruptFileError(f"{path} has {size} bytes, the manifest says {info['bytes']}")
    if verify and _sha256(path) != info["sha256"]:
        raise CorruptFileError(f"{path} does not match its sha256 in the manifest")
