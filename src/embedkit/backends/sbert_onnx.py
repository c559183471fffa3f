"""The ONNX route of the sentence-transformers backend (``precision=onnx`` / ``int8``).

The model's transformer (its first module) is exported once with the legacy
TorchScript exporter, ``torch.onnx.export(..., dynamo=False)``, which needs the
``onnx`` package only (the dynamo exporter would also need ``onnxscript``), and run
with plain ``onnxruntime``. Everything else stays the model's own: its tokenizer
(``SentenceTransformer.preprocess``, so prompts, lower-casing and ``max_seq_length``
truncation are exactly those of ``encode``) and its later modules (Pooling,
Normalize, Dense, ... as ``modules.json`` lists them) run on the ONNX output, so
pooling is what the model's pooling config says. ``int8`` quantizes that export with
``onnxruntime.quantization.quantize_dynamic(per_channel=True)``: per-tensor scales
(the defaults) lose too much (min cosine 0.90 to fp32 on real reviews).

The export cache: ``<folder>/<key>-<fp32|int8>/``, an :mod:`embedkit._folder` folder
(manifest with the file's size and sha256, written to a temp folder and swapped in
atomically), where ``folder`` is ``onnx/`` in embedkit's cache directory (beside
``embeddings.sqlite3``: ``$EMBEDKIT_CACHE_DIR`` or the user's cache dir) unless
``onnx_dir`` names another, and ``key`` hashes the transformer's content (every
weight tensor and its config) with the export settings, so a changed model gets a
new export and two paths to one model share one. Two processes exporting at once
take turns on the folder's lock and the second uses the first one's export; a crash
mid-export leaves only a ``.tmp-*`` folder that no manifest names (never used,
removed by the next save). A cached file that fails its sha256 check is exported
again, with an :class:`~embedkit.errors.EmbedkitWarning` naming the folder.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from embedkit import _folder
from embedkit._optional import require
from embedkit.backends.sbert_parts import quiet
from embedkit.errors import BackendError, ConfigError, CorruptFileError, EmbedkitWarning
from embedkit.jobs.cache import default_cache_path

__all__ = ["EXPORT_VERSION", "OnnxRunner", "default_onnx_dir", "export_folder", "model_key"]

EXPORT_VERSION = 1  # bump when the export settings below change: old exports are then unused
OPSET = 17
KIND = "onnx-export"
FILE = "model.onnx"
_CHECK_ATOL = 1e-3  # export vs PyTorch, largest |difference| of a hidden state (seen: 3e-5)
_SAMPLE = ["a", "two texts of different lengths, so that the trace sees padding"]
_CHECK = ["the export is checked", "on a batch of another shape", "than the one it was traced on"]


def default_onnx_dir() -> Path:
    """``onnx/`` in embedkit's cache directory (``$EMBEDKIT_CACHE_DIR`` or the user's)."""
    return default_cache_path().parent / "onnx"


def model_key(transformer: Any) -> str:
    """sha256 (hex) of a transformer's content: config, every tensor's name, dtype, shape and
    bytes, and :data:`EXPORT_VERSION`, ``OPSET`` (what an export of it depends on)."""
    torch = require("torch", "sbert")
    digest = hashlib.sha256(f"embedkit-onnx {EXPORT_VERSION} opset {OPSET}\n".encode())
    digest.update(transformer.config.to_json_string(use_diff=False).encode("utf-8"))
    for name, tensor in sorted(transformer.state_dict().items()):
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"\n{name} {flat.dtype} {tuple(tensor.shape)}\n".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    return digest.hexdigest()


def export_folder(root: Path, key: str, precision: str) -> Path:
    """Where the export of the model ``key`` at ``precision`` is cached under ``root``."""
    return root / f"{key[:32]}-{'int8' if precision == 'int8' else 'fp32'}"


class OnnxRunner:
    """A loaded sentence-transformers model whose transformer runs in onnxruntime.

    ``st_model``: the ``SentenceTransformer`` (its tokenizer and later modules are
    used as they are); ``precision``: ``"onnx"`` (float32) or ``"int8"``;
    ``threads``: onnxruntime's intra-op threads.
    """

    def __init__(self, st_model: Any, precision: str, root: Path, threads: int) -> None:
        st = require("sentence_transformers", "sbert")
        self._ort = require("onnxruntime", "onnx")
        require("onnx", "onnx")
        if precision not in ("onnx", "int8"):
            raise ConfigError(f"the ONNX route runs precision onnx or int8, not {precision!r}")
        first = st_model[0]
        if not isinstance(first, st.models.Transformer):
            raise ConfigError(
                f"precision={precision} exports a model whose first module is a "
                f"Transformer; this one starts with {type(first).__name__}"
            )
        self._st = st_model
        self._later = list(st_model)[1:]
        self.precision = precision
        self.inputs = _input_names(st_model)
        self.key = model_key(first.model)
        self.folder = export_folder(root, self.key, precision)
        self.threads = threads
        model = _cached(self.folder, self.key, lambda path: self._build(path, root))
        options = self._ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = self._ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        with _ort_errors(f"onnxruntime cannot load the export in {self.folder}"):
            self._session = self._ort.InferenceSession(
                model, options, providers=["CPUExecutionProvider"]
            )

    # ------------------------------------------------------------------ export
    def _build(self, path: Path, root: Path) -> None:
        """Write this runner's model file to ``path`` (fp32: exported; int8: quantized)."""
        if self.precision == "onnx":
            self._export(path)
            return
        onnx = require("onnx", "onnx")
        quantization = require("onnxruntime.quantization", "onnx")
        fp32 = _cached(export_folder(root, self.key, "onnx"), self.key, self._export)
        with quiet("root"), _ort_errors("int8 quantization failed"):  # "consider pre-processing"
            quantization.quantize_dynamic(
                onnx.load_from_string(fp32),
                path,
                per_channel=True,
                weight_type=quantization.QuantType.QInt8,
            )

    def _export(self, path: Path) -> None:
        """Export the transformer to ``path`` and check it against PyTorch on another batch."""
        torch = require("torch", "sbert")
        wrapper = _Hidden.make(torch, self._st[0].model, self.inputs).eval()
        sample = self._features(_SAMPLE, None)
        args = tuple(torch.from_numpy(sample[name]) for name in self.inputs)
        axes = {name: {0: "batch", 1: "tokens"} for name in (*self.inputs, "last_hidden_state")}
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # TracerWarnings and the legacy exporter's notice
            try:
                torch.onnx.export(
                    wrapper,
                    args,
                    str(path),
                    input_names=list(self.inputs),
                    output_names=["last_hidden_state"],
                    dynamic_axes=axes,
                    opset_version=OPSET,
                    dynamo=False,
                )
            except (RuntimeError, ValueError, TypeError) as exc:
                raise BackendError(f"torch.onnx.export failed for this model: {exc}") from exc
            check = self._features(_CHECK, None)
            expected = wrapper(*(torch.from_numpy(check[n]) for n in self.inputs)).numpy()
        with _ort_errors("onnxruntime cannot run the fresh export"):
            session = self._ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            got = session.run(None, {n: check[n] for n in self.inputs})[0]
        worst = float(np.abs(got - expected).max()) if got.shape == expected.shape else np.inf
        if not worst <= _CHECK_ATOL:
            raise BackendError(
                f"the ONNX export differs from PyTorch by {worst:.3g} (> {_CHECK_ATOL}) on a "
                "batch of another shape: this model does not trace cleanly"
            )

    # ----------------------------------------------------------------- running
    def _features(self, texts: Sequence[str], prompt: str | None) -> dict[str, Any]:
        """The model's own tokenization of ``texts`` (prompt first): ``preprocess``'s
        dict, with the ONNX inputs as int64 numpy arrays ``(len(texts), tokens)``."""
        features = dict(self._st.preprocess(list(texts), prompt=prompt))
        for name in self.inputs:
            features[name] = features[name].cpu().numpy().astype(np.int64, copy=False)
        return features

    def _hidden(self, features: dict[str, Any]) -> NDArray[np.float32]:
        with _ort_errors("onnxruntime failed"):
            out = self._session.run(None, {n: features[n] for n in self.inputs})[0]
        hidden: NDArray[np.float32] = np.asarray(out, dtype=np.float32)
        return hidden

    def sentence_embeddings(
        self, texts: Sequence[str], prompt: str | None, batch_size: int
    ) -> NDArray[np.float32]:
        """``(len(texts), dim)`` float32: the model's later modules on the ONNX hidden states
        of ``prompt + text``, batches of similar lengths (as ``encode`` sorts them), rows
        in input order; not normalised beyond what the model's own modules do."""
        torch = require("torch", "sbert")
        order = np.argsort([-len(t) for t in texts], kind="stable")
        rows: list[NDArray[np.float32]] = [np.empty(0, np.float32)] * len(texts)
        for start in range(0, len(texts), batch_size):
            picked = order[start : start + batch_size]
            features = self._features([texts[i] for i in picked], prompt)
            hidden = self._hidden(features)
            for name in self.inputs:
                features[name] = torch.from_numpy(features[name])
            features["token_embeddings"] = torch.from_numpy(hidden)
            with torch.inference_mode():
                for module in self._later:
                    features = module(features)
            pooled = features["sentence_embedding"].float().numpy()
            for i, row in zip(picked, pooled, strict=True):
                rows[int(i)] = row
        if not rows:
            return np.zeros((0, self._st.get_embedding_dimension()), np.float32)
        return np.stack(rows).astype(np.float32, copy=False)

    def token_embeddings(self, text: str) -> NDArray[np.float32]:
        """``(tokens, hidden)`` float32: the ONNX hidden state of each token of ``text``."""
        vectors: NDArray[np.float32] = self._hidden(self._features([text], ""))[0]
        return vectors


class _Hidden:
    """``torch.nn.Module`` factory: positional inputs -> ``last_hidden_state`` (for tracing)."""

    @staticmethod
    def make(torch: Any, model: Any, names: tuple[str, ...]) -> Any:
        class Hidden(torch.nn.Module):  # type: ignore[misc,name-defined]
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, *args: Any) -> Any:
                out = self.model(**dict(zip(names, args, strict=True)), return_dict=True)
                return out.last_hidden_state

        return Hidden()


def _input_names(st_model: Any) -> tuple[str, ...]:
    """The tokenizer outputs the transformer takes (input_ids, attention_mask, ...)."""
    torch = require("torch", "sbert")
    features = st_model.preprocess(["a"])
    names = tuple(
        n
        for n in ("input_ids", "attention_mask", "token_type_ids", "position_ids")
        if isinstance(features.get(n), torch.Tensor)
    )
    if "input_ids" not in names:
        raise ConfigError("the ONNX route needs a text model whose tokenizer gives input_ids")
    return names


def _cached(folder: Path, key: str, build: Any) -> bytes:
    """The verified model bytes cached in ``folder``; built by ``build(path)`` when missing
    or corrupt, under the folder's lock (a second process waits, then reuses it)."""
    found = _read(folder, key, warn=True)
    if found is not None:
        return found
    try:
        writer = _folder.FolderWriter(folder, KIND)
    except ConfigError as exc:
        raise ConfigError(f"cannot write the ONNX export cache in {folder}: {exc}") from exc
    with writer:
        found = _read(folder, key, warn=False)  # exported by another process meanwhile?
        if found is not None:
            return found
        build(writer.path_of(FILE))
        writer.commit({"key": key, "export_version": EXPORT_VERSION, "opset": OPSET})
    built = _read(folder, key, warn=False)
    if built is None:
        raise BackendError(f"the ONNX export just written to {folder} cannot be read back")
    return built


def _read(folder: Path, key: str, *, warn: bool) -> bytes | None:
    if not _folder.is_folder(folder):
        return None
    try:
        with _folder.read(folder, KIND) as snapshot:
            if snapshot.meta.get("key") != key:
                raise CorruptFileError(f"{folder} holds the export of another model")
            return snapshot.read_bytes(FILE)
    except FileNotFoundError:  # removed meanwhile
        return None
    except CorruptFileError as exc:
        if warn:
            warnings.warn(
                f"the cached ONNX export in {folder} is damaged ({exc}); exporting it again",
                EmbedkitWarning,
                stacklevel=4,
            )
        return None


@contextmanager
def _ort_errors(what: str) -> Iterator[None]:
    """onnxruntime / onnx failures as :class:`BackendError`, ``from`` the original."""
    try:
        yield
    except (RuntimeError, ValueError, OSError) as exc:
        if isinstance(exc, PermissionError):
            raise
        raise BackendError(f"{what}: {exc}") from exc
