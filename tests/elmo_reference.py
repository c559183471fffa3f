"""A plain-numpy ELMo written from the published equations, independent of embedkit's backend.

One sentence at a time, float64, no batching, no masks: reads ``weights.hdf5`` by the
dataset names of bilm-tf / AllenNLP and follows, step by step:

* characters (AllenNLP ``ELMoCharacterMapper``): UTF-8 bytes of the token, at most 48,
  between begin-of-word 258 and end-of-word 259, padded with 260 to 50; sentence
  marks ``<S>``/``</S>`` are ``[258, 256 or 257, 259, 260, ...]``; every id + 1, and the
  embedding table gets a zero row 0 in front of ``char_embed``;
* char CNN (bilm-tf ``_build_word_char_embeddings``): per filter a valid convolution
  over the 50 positions, max over positions, then the activation;
* highway (bilm-tf): ``carry = sigmoid(x W_carry + b_carry)``,
  ``x = carry * relu(x W_transform + b_transform) + (1 - carry) * x``;
* projection ``x W_proj + b_proj``;
* TF ``LSTMCell(num_proj, cell_clip, proj_clip)``, gates ``i, j, f, o`` from
  ``[x, h] W_0 + B``, ``forget_bias = 1``; the backward LSTM reads the sentence
  reversed; layers after the first add their input (residual);
* the layer stack ``[r, r], [f_1, b_1], [f_2, b_2]`` with ``<S>``/``</S>`` removed, and
  the scalar mix ``gamma * sum_k softmax(s)_k h_k``.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]


def sigmoid(x: F64) -> F64:
    out: F64 = 1.0 / (1.0 + np.exp(-x))
    return out


def token_chars(token: str | None, mark: int | None = None) -> list[int]:
    ids = [260] * 50
    if token is None:  # a sentence mark
        ids[:3] = [258, int(mark or 0), 259]
    else:
        data = list(token.encode("utf-8", "ignore")[:48])
        ids[0] = 258
        for k, byte in enumerate(data):
            ids[1 + k] = byte
        ids[1 + len(data)] = 259
    return [i + 1 for i in ids]


class ReferenceElmo:
    def __init__(
        self, folder: Path, options_name: str = "options.json", weights_name: str = "weights.hdf5"
    ) -> None:
        self.opts = json.loads((folder / options_name).read_text("utf-8"))
        with h5py.File(folder / weights_name, "r") as fh:
            self.w = {}

            def grab(name: str, obj: object) -> None:
                if isinstance(obj, h5py.Dataset):
                    self.w[name] = np.asarray(obj[...], dtype=np.float64)

            fh.visititems(grab)
        self.table = np.vstack([np.zeros((1, self.w["char_embed"].shape[1])), self.w["char_embed"]])

    def token_vector(self, chars: list[int]) -> F64:
        cnn = self.opts["char_cnn"]
        emb = self.table[np.asarray(chars)]  # (50, D)
        pieces = []
        for i, (width, count) in enumerate(cnn["filters"]):
            kernel = self.w[f"CNN/W_cnn_{i}"][0]  # (width, D, count)
            bias = self.w[f"CNN/b_cnn_{i}"]
            best = np.full(count, -np.inf)
            for s in range(len(chars) - width + 1):
                value = np.einsum("wd,wdn->n", emb[s : s + width], kernel) + bias
                best = np.maximum(best, value)
            pieces.append(np.maximum(best, 0.0) if cnn["activation"] == "relu" else np.tanh(best))
        x = np.concatenate(pieces)
        for k in range(cnn["n_highway"]):
            carry = sigmoid(x @ self.w[f"CNN_high_{k}/W_carry"] + self.w[f"CNN_high_{k}/b_carry"])
            transform = np.maximum(
                x @ self.w[f"CNN_high_{k}/W_transform"] + self.w[f"CNN_high_{k}/b_transform"], 0.0
            )
            x = carry * transform + (1.0 - carry) * x
        out: F64 = x @ self.w["CNN_proj/W_proj"] + self.w["CNN_proj/b_proj"]
        return out

    def lstm(self, inputs: list[F64], direction: int, layer: int) -> list[F64]:
        base = f"RNN_{direction}/RNN/MultiRNNCell/Cell{layer}/LSTMCell"
        w, b, w_p = self.w[f"{base}/W_0"], self.w[f"{base}/B"], self.w[f"{base}/W_P_0"]
        cell_dim, proj_dim = w_p.shape
        cell_clip, proj_clip = self.opts["lstm"]["cell_clip"], self.opts["lstm"]["proj_clip"]
        c, h = np.zeros(cell_dim), np.zeros(proj_dim)
        order = range(len(inputs)) if direction == 0 else range(len(inputs) - 1, -1, -1)
        outputs: list[F64] = [np.zeros(0)] * len(inputs)
        for t in order:
            z = np.concatenate([inputs[t], h]) @ w + b
            i, j, f, o = np.split(z, 4)
            c = sigmoid(f + 1.0) * c + sigmoid(i) * np.tanh(j)
            if cell_clip:
                c = np.clip(c, -cell_clip, cell_clip)
            h = (sigmoid(o) * np.tanh(c)) @ w_p
            if proj_clip:
                h = np.clip(h, -proj_clip, proj_clip)
            outputs[t] = h
        return outputs

    def layers(self, tokens: list[str]) -> F64:
        """``(n_layers + 1, len(tokens), 2 * projection_dim)`` for one tokenized sentence."""
        chars = [token_chars(None, 256), *(token_chars(t) for t in tokens), token_chars(None, 257)]
        r = [self.token_vector(c) for c in chars]
        result = [np.stack([np.concatenate([v, v]) for v in r])]
        streams = [r, r]
        for layer in range(self.opts["lstm"]["n_layers"]):
            new = []
            for direction in (0, 1):
                out = self.lstm(streams[direction], direction, layer)
                if layer > 0:
                    out = [a + x for a, x in zip(out, streams[direction], strict=True)]
                new.append(out)
            streams = new
            result.append(np.stack([np.concatenate(p) for p in zip(*streams, strict=True)]))
        return np.stack(result)[:, 1:-1]

    def mixed(self, tokens: list[str], scalars: list[float], gamma: float = 1.0) -> F64:
        s = np.asarray(scalars, dtype=np.float64)
        weights = np.exp(s) / np.exp(s).sum()
        out: F64 = gamma * np.einsum("l,ltd->td", weights, self.layers(tokens))
        return out
