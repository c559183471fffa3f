"""GloVe (Pennington, Socher and Manning, 2014), vectorised with numpy and scipy.sparse.

Two steps, both free of Python loops over matrix entries:

1. :func:`cooccurrence` counts, for every text (one line = one context; the window
   never crosses texts) and every pair of in-vocabulary tokens ``d`` positions apart
   (``1 <= d <= window``; out-of-vocabulary tokens are dropped first, as in the
   reference ``cooccur.c``)::

       X[i, j] += 1 / d       (and X[j, i] += 1 / d when symmetric)

   It loops over batches of texts and over ``d`` only; each step is an array op.

2. :func:`fit_glove` minimises the weighted least squares over the non-zeros of ``X``::

       J = sum_{X_ij > 0} f(X_ij) (w_i . c_j + b_i + b~_j - log X_ij)^2
       f(x) = min(1, (x / x_max) ** alpha)

   with AdaGrad on shuffled minibatches of non-zeros: per minibatch, gradients of
   rows that occur several times are summed (a sparse-matrix product), then
   ``G += g**2; theta -= learning_rate * g / sqrt(G)`` with ``G`` starting at 1, so a
   step never exceeds ``learning_rate`` per coordinate. The reference ``glove.c``
   updates one entry at a time; minibatches are what makes this vectorisable.
   ``loss_history[e]`` is ``J / nnz`` over epoch ``e`` (before each batch's update).
   The word vectors are ``W + C`` (the reference default ``-model 2``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from embedkit._optional import require
from embedkit.errors import ConfigError

__all__ = ["GloVeFit", "build_vocab", "cooccurrence", "fit_glove", "glove_weights"]


def build_vocab(
    texts: Iterable[Sequence[str]], *, min_count: int = 5, limit: int | None = None
) -> tuple[list[str], NDArray[np.int64]]:
    """``(words, counts)`` by falling count (ties alphabetical), ``counts >= min_count``.

    ``limit`` keeps the first (most frequent) words only.
    """
    counter: Counter[str] = Counter()
    for tokens in texts:
        counter.update(tokens)
    items = sorted(
        (kv for kv in counter.items() if kv[1] >= min_count), key=lambda kv: (-kv[1], kv[0])
    )
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigError(f"limit must be an integer >= 1 (the words kept), got {limit!r}")
        items = items[:limit]
    return [w for w, _ in items], np.asarray([c for _, c in items], dtype=np.int64)


def cooccurrence(
    texts: Iterable[Sequence[str]],
    vocab: dict[str, int],
    *,
    window: int = 10,
    symmetric: bool = True,
    batch_tokens: int = 200_000,
) -> Any:
    """``X``: ``scipy.sparse.csr_matrix`` ``(V, V)`` float64 of 1/distance-weighted counts.

    ``X[i, j] = sum over texts, positions p < q with q - p <= window, token p = i and
    token q = j, of 1 / (q - p)``; plus the transpose when ``symmetric``.
    """
    if window < 1:
        raise ConfigError(f"window must be >= 1, got {window!r}")
    sparse = require("scipy.sparse", "gensim")
    n = len(vocab)
    total = sparse.csr_matrix((n, n), dtype=np.float64)
    ids: list[NDArray[np.int32]] = []
    pending = 0
    for tokens in texts:
        row = np.fromiter((vocab[t] for t in tokens if t in vocab), dtype=np.int32)
        if row.size > 1:
            ids.append(row)
            pending += row.size
        if pending >= batch_tokens:
            total = total + _count_batch(ids, n, window, symmetric)
            ids, pending = [], 0
    if ids:
        total = total + _count_batch(ids, n, window, symmetric)
    return total.tocsr()


def _count_batch(ids: list[NDArray[np.int32]], n: int, window: int, symmetric: bool) -> Any:
    sparse = require("scipy.sparse", "gensim")
    flat = np.concatenate(ids)
    doc = np.repeat(np.arange(len(ids), dtype=np.int32), [a.size for a in ids])
    rows: list[NDArray[np.int32]] = []
    cols: list[NDArray[np.int32]] = []
    vals: list[NDArray[np.float64]] = []
    for d in range(1, min(window, flat.size - 1) + 1):
        same = doc[:-d] == doc[d:]
        left, right = flat[:-d][same], flat[d:][same]
        weight = np.full(left.size, 1.0 / d)
        rows.append(left)
        cols.append(right)
        vals.append(weight)
        if symmetric:
            rows.append(right)
            cols.append(left)
            vals.append(weight)
    coo = sparse.coo_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
    )
    return coo.tocsr()  # sums duplicates


def glove_weights(x: NDArray[np.float64], x_max: float, alpha: float) -> NDArray[np.float64]:
    """``f(x) = min(1, (x / x_max) ** alpha)``, elementwise."""
    out: NDArray[np.float64] = np.minimum(1.0, (x / x_max) ** alpha)
    return out


@dataclass
class GloVeFit:
    """Trained GloVe parameters: ``W``, ``C`` ``(V, dim)``; biases ``(V,)``."""

    word_vectors: NDArray[np.float32]
    context_vectors: NDArray[np.float32]
    word_bias: NDArray[np.float32]
    context_bias: NDArray[np.float32]
    loss_history: list[float] = field(default_factory=list)

    @property
    def vectors(self) -> NDArray[np.float32]:
        """``W + C`` as float32, shape ``(V, dim)``."""
        out: NDArray[np.float32] = self.word_vectors + self.context_vectors
        return out

    def loss(self, matrix: Any, *, x_max: float = 100.0, alpha: float = 0.75) -> float:
        """``J / nnz`` of these parameters on ``matrix`` (see the module docstring)."""
        coo = matrix.tocoo()
        i, j, x = coo.row, coo.col, coo.data
        diff = (
            np.einsum("nd,nd->n", self.word_vectors[i], self.context_vectors[j])
            + self.word_bias[i]
            + self.context_bias[j]
            - np.log(x)
        )
        return float(np.mean(glove_weights(x, x_max, alpha) * diff**2))


def fit_glove(
    matrix: Any,
    *,
    dim: int = 50,
    epochs: int = 25,
    x_max: float = 100.0,
    alpha: float = 0.75,
    learning_rate: float = 0.05,
    batch_size: int = 4096,
    seed: int = 0,
    on_epoch: Callable[[int, float], None] | None = None,
) -> GloVeFit:
    """Fit GloVe to the co-occurrence matrix ``matrix`` (``(V, V)``, non-negative).

    Deterministic for a given ``seed``. ``on_epoch(epoch, loss)`` is called after
    each epoch with that epoch's ``J / nnz``.
    """
    _check_options(dim, epochs, x_max, alpha, learning_rate, batch_size)
    sparse = require("scipy.sparse", "gensim")
    coo = sparse.coo_matrix(matrix)
    n = coo.shape[0]
    if coo.shape != (n, n):
        raise ConfigError(f"the co-occurrence matrix must be square, got shape {coo.shape}")
    keep = coo.data > 0
    rows, cols = coo.row[keep].astype(np.int64), coo.col[keep].astype(np.int64)
    logx = np.log(coo.data[keep]).astype(np.float32)
    weight = glove_weights(coo.data[keep], x_max, alpha).astype(np.float32)
    nnz = logx.size
    if nnz == 0:
        raise ConfigError("the co-occurrence matrix has no positive entries: corpus too small?")
    rng = np.random.default_rng(seed)
    # reference initialisation: uniform in [-0.5, 0.5) / dim, AdaGrad accumulators at 1.
    # Each bias is kept as column ``dim`` of its matrix: one gather, sum and update per side.
    w, c = (np.empty((n, dim + 1), np.float32) for _ in range(2))
    w[:, :dim] = (rng.random((n, dim)) - 0.5) / dim
    c[:, :dim] = (rng.random((n, dim)) - 0.5) / dim
    w[:, dim] = (rng.random(n) - 0.5) / dim
    c[:, dim] = (rng.random(n) - 0.5) / dim
    gw, gc = np.ones((n, dim + 1), np.float32), np.ones((n, dim + 1), np.float32)
    history: list[float] = []
    for epoch in range(epochs):
        order = rng.permutation(nnz)
        total = 0.0
        for start in range(0, nnz, batch_size):
            batch = order[start : start + batch_size]
            i, j = rows[batch], cols[batch]
            wi, cj = w[i], c[j]
            diff = np.einsum("nd,nd->n", wi[:, :dim], cj[:, :dim])
            diff += wi[:, dim] + cj[:, dim] - logx[batch]
            fdiff = weight[batch] * diff
            total += float(fdiff @ diff)
            # dJ/dw_i = 2 f diff c_j and dJ/db_i = 2 f diff (the 2 is folded into the rate)
            grad_w = cj * fdiff[:, None]
            grad_w[:, dim] = fdiff
            grad_c = wi * fdiff[:, None]
            grad_c[:, dim] = fdiff
            rows_i, sum_i = _row_sums(i, sparse)
            rows_j, sum_j = _row_sums(j, sparse)
            _adagrad(w, gw, rows_i, sum_i @ grad_w, learning_rate)
            _adagrad(c, gc, rows_j, sum_j @ grad_c, learning_rate)
        loss = total / nnz
        if not np.isfinite(loss):
            raise ConfigError(
                f"GloVe diverged at epoch {epoch} (loss {loss}); lower learning_rate or batch_size"
            )
        history.append(loss)
        if on_epoch is not None:
            on_epoch(epoch, loss)
    return GloVeFit(
        np.ascontiguousarray(w[:, :dim]),
        np.ascontiguousarray(c[:, :dim]),
        w[:, dim].copy(),
        c[:, dim].copy(),
        history,
    )


def _row_sums(index: NDArray[np.int64], sparse: Any) -> tuple[NDArray[np.int64], Any]:
    """``(u, S)``: the distinct values ``u`` of ``index`` and ``S`` ``(len(u), len(index))``
    with ``S[a, b] = 1`` iff ``index[b] == u[a]``, so ``(S @ g)[a]`` sums the rows of ``g``
    that belong to ``u[a]``."""
    uniq, inverse = np.unique(index, return_inverse=True)
    ones = np.ones(index.size, np.float32)
    return uniq, sparse.csr_matrix(
        (ones, (inverse, np.arange(index.size))), shape=(uniq.size, index.size)
    )


def _adagrad(
    param: NDArray[np.float32],
    accum: NDArray[np.float32],
    rows: NDArray[np.int64],
    grad: Any,
    learning_rate: float,
) -> None:
    """``G[rows] += g**2; param[rows] -= learning_rate * g / sqrt(G[rows])``."""
    g = np.asarray(grad, dtype=np.float32)
    accum[rows] += g * g
    param[rows] -= learning_rate * g / np.sqrt(accum[rows])


def _check_options(
    dim: int, epochs: int, x_max: float, alpha: float, learning_rate: float, batch_size: int
) -> None:
    checks = {
        "dim": isinstance(dim, int) and dim >= 1,
        "epochs": isinstance(epochs, int) and epochs >= 1,
        "x_max": x_max > 0,
        "alpha": alpha > 0,
        "learning_rate": learning_rate > 0,
        "batch_size": isinstance(batch_size, int) and batch_size >= 1,
    }
    bad = [name for name, ok in checks.items() if not ok]
    if bad:
        values = {"dim": dim, "epochs": epochs, "x_max": x_max, "alpha": alpha}
        values |= {"learning_rate": learning_rate, "batch_size": batch_size}
        raise ConfigError("invalid GloVe options: " + ", ".join(f"{b}={values[b]!r}" for b in bad))
