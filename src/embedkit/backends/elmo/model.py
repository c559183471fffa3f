"""The ELMo biLM in torch, inference only: the published equations, batched with masks.

For a token with shifted character ids ``c_1..c_M`` (:mod:`.chars`)::

    e_m   = E[c_m]                    E = [0; char_embed]    (262, D): id 0 (no token) -> 0
    y_i   = act(max_s (conv1d(e, W_i) + b_i)[s])             per filter width, act from options
    x     = concat_i y_i                                      (F,)
    highway k:  g = sigmoid(x W_c + b_c);  x = g * relu(x W_t + b_t) + (1 - g) * x
    r     = x W_proj + b_proj                                 (P,)  the context-free layer

(bilm-tf's convention; AllenNLP stores it as ``gate * x + (1 - gate) * f(x)`` with the
carry weights negated -- the same function.) Each direction runs its own stack of
LSTMs with projection over ``<S> tokens </S>``, the backward one from the end::

    z = [x_t, h_{t-1}] W_0 + B;  (i, j, f, o) = split(z, 4)
    c_t = sigmoid(f + 1) * c_{t-1} + sigmoid(i) * tanh(j);  c_t = clip(c_t, cell_clip)
    h_t = clip((sigmoid(o) * tanh(c_t)) W_P_0, proj_clip)

with zero initial states for every sentence, and the input added to the output of
every layer after the first (residual). Layer 0 is ``[r, r]``, layer ``l >= 1`` is
``[h_fwd, h_bwd]``: every layer is ``2P`` wide. Positions after a sentence's end
are zero and never reach its tokens (the backward pass runs on each sentence
reversed within its own length), so a sentence's vectors do not depend on the
batch it is in.

AllenNLP's ``Elmo`` keeps the LSTM states between batches (so a sentence's vectors
depend on the batches before it); here every sentence starts from zero, as the
first batch does there: vectors depend on the sentence alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from embedkit._optional import require
from embedkit.backends.elmo.files import ElmoWeights

__all__ = ["ElmoBiLm"]

CNN_ROWS = 2048  # distinct tokens per char-CNN step (bounds the convolution's memory)


class ElmoBiLm:
    """The biLM of ``weights`` as torch tensors on ``device``; :meth:`layers` runs it."""

    def __init__(self, weights: ElmoWeights, device: str = "cpu") -> None:
        torch = require("torch", "elmo")
        self._torch = torch
        self.options = opts = weights.options
        self.device = torch.device(device)

        def tensor(array: NDArray[Any]) -> Any:
            return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(self.device)

        table = np.zeros((weights.char_embed.shape[0] + 1, opts.char_dim), dtype=np.float32)
        table[1:] = weights.char_embed
        self._embed = tensor(table)
        # (1, w, D, n) -> conv1d weight (n, D, w)
        self._convs = [(tensor(w[0].transpose(2, 1, 0)), tensor(b)) for w, b in weights.cnn]
        self._highway = [tuple(tensor(a) for a in layer) for layer in weights.highway]
        self._proj = (tensor(weights.proj[0]), tensor(weights.proj[1]))
        p, c = opts.projection_dim, opts.cell_dim
        self._lstm = []
        # gate blocks reordered from the file's i, j, f, o to i, f, o, j: one sigmoid, one tanh
        order = np.concatenate([np.arange(k * c, (k + 1) * c) for k in (0, 2, 3, 1)])
        for layer in range(opts.n_layers):
            both = [weights.lstm[d][layer] for d in (0, 1)]
            bias = np.stack([lw.b for lw in both])[:, None, :].copy()  # (2, 1, 4C)
            bias[..., 2 * c : 3 * c] += 1.0  # TensorFlow's forget_bias=1.0, not in the file
            self._lstm.append(
                (
                    tensor(np.stack([lw.w[:p, order] for lw in both])[:, None]),  # (2, 1, P, 4C)
                    tensor(np.stack([lw.w[p:, order] for lw in both])),  # (2, P, 4C)
                    tensor(bias[..., order]),
                    tensor(np.stack([lw.w_proj for lw in both])),  # (2, C, P)
                )
            )

    @property
    def n_layers(self) -> int:
        """Output layers: the context-free one and one per LSTM layer."""
        return self.options.n_layers + 1

    @property
    def width(self) -> int:
        """Width of every layer: ``2 * projection_dim``."""
        return 2 * self.options.projection_dim

    def token_layer(self, ids: Any) -> Any:
        """``ids`` (``(N, M)`` int64 tensor) -> ``(N, P)`` context-free vectors ``r``."""
        torch = self._torch
        nnf = torch.nn.functional
        act = nnf.relu if self.options.activation == "relu" else torch.tanh
        chars = nnf.embedding(ids, self._embed).transpose(1, 2)  # (N, D, M)
        x = torch.cat([act(nnf.conv1d(chars, w, b).amax(dim=-1)) for w, b in self._convs], -1)
        for w_t, b_t, w_c, b_c in self._highway:
            gate = torch.sigmoid(x @ w_c + b_c)
            x = gate * torch.relu(x @ w_t + b_t) + (1.0 - gate) * x
        return x @ self._proj[0] + self._proj[1]

    def _tokens(self, ids: Any) -> Any:
        """``(B, T, M)`` -> ``(B, T, P)``, the CNN run once per distinct token."""
        torch = self._torch
        b, t, m = ids.shape
        unique, inverse = torch.unique(ids.reshape(b * t, m), dim=0, return_inverse=True)
        parts = [
            self.token_layer(unique[i : i + CNN_ROWS]) for i in range(0, len(unique), CNN_ROWS)
        ]
        return torch.cat(parts, 0)[inverse].reshape(b, t, -1)

    def layers(self, ids: NDArray[np.int64]) -> NDArray[np.float32]:
        """Every layer's vectors of a batch.

        ``ids``: ``(B, T, M)`` from :func:`~embedkit.backends.elmo.chars.char_ids`
        (``<S>``/``</S>`` included, zero rows after each sentence). Returns float32
        ``(n_layers, B, T, 2P)``; ``out[:, b, t] = 0`` where ``t`` is past ``</S>``.
        """
        torch = self._torch
        with torch.inference_mode():
            idx = torch.from_numpy(np.ascontiguousarray(ids)).to(self.device)
            lengths = (idx > 0).any(dim=-1).sum(dim=1)  # (B,)
            steps = torch.arange(idx.shape[1], device=self.device)
            mask = (steps[None, :] < lengths[:, None]).unsqueeze(-1).float()  # (B, T, 1)
            # reversing each sentence within its length; positions past the end stay put
            rev = torch.where(
                steps[None, :] < lengths[:, None], lengths[:, None] - 1 - steps, steps
            )
            tokens = self._tokens(idx)
            out = [torch.cat([tokens, tokens], -1) * mask]
            xs = torch.stack([tokens, self._flip(tokens, rev)])  # (2, B, T, P)
            for layer, weights in enumerate(self._lstm):
                hs = self._run_lstm(xs, *weights)
                xs = hs + xs if layer else hs
                out.append(torch.cat([xs[0], self._flip(xs[1], rev)], -1) * mask)
            result: NDArray[np.float32] = torch.stack(out).cpu().numpy().astype(np.float32)
        return result

    def _flip(self, x: Any, rev: Any) -> Any:
        return self._torch.gather(x, 1, rev.unsqueeze(-1).expand(-1, -1, x.shape[-1]))

    def _run_lstm(self, xs: Any, w_in: Any, w_h: Any, bias: Any, w_p: Any) -> Any:
        """Both directions at once: ``xs`` ``(2, B, T, P)`` in each direction's own time order."""
        torch = self._torch
        opts = self.options
        _, b, t, p = xs.shape
        gates = torch.matmul(xs, w_in) + bias.unsqueeze(2)  # (2, B, T, 4C)
        h = xs.new_zeros(2, b, p)
        cell = xs.new_zeros(2, b, opts.cell_dim)
        out = xs.new_empty(2, b, t, p)
        c = opts.cell_dim
        for step in range(t):
            z = torch.baddbmm(gates[:, :, step], h, w_h)
            ifo = torch.sigmoid(z[..., : 3 * c])
            cell = ifo[..., c : 2 * c] * cell + ifo[..., :c] * torch.tanh(z[..., 3 * c :])
            if opts.cell_clip is not None:
                cell = cell.clamp(-opts.cell_clip, opts.cell_clip)
            h = torch.bmm(ifo[..., 2 * c :] * torch.tanh(cell), w_p)
            if opts.proj_clip is not None:
                h = h.clamp(-opts.proj_clip, opts.proj_clip)
            out[:, :, step] = h
        return out
