"""The ONNX route of the sentence-transformers backend (``precision=onnx`` / ``int8``).

The model's transformer (its first module) is exported once with the legacy
TorchScript exporter, ``torch.onnx.export(..., dynamo=False)``, which needs the
``onnx`` package only (the dynamo exporter would also need ``onnxscript``), with
eager attention (the pattern onnxruntime recognises), then fused by onnxruntime's
transformer optimizer (``onnxruntime.transformers.optimizer``, ``model_type="bert"``:
one ``Attention`` op per layer, embedding and skip LayerNorms, bias + GELU), and run
with plain ``onnxruntime``. Fused, int8 runs 1.18x faster than unfused int8 and fp32
1.15x faster than unfused fp32 (AMD EPYC, AVX2, 2 cores); a model the optimizer
cannot fuse correctly (checked against PyTorch) keeps the plain export. Everything
else stays the model's own: its tokenizer
(``SentenceTransformer.preprocess``, so prompts, lower-casing and ``max_seq_length``
truncation are exactly those of ``encode``) and its later modules (Pooling,
Normalize, Dense, ... as ``modules.json`` lists them) run on the ONNX output, so
pooling is what the model's pooling config says. ``int8`` quantizes that export with
``onnxruntime.quantization.quantize_dynamic(per_channel=True)``, its MatMuls only (the
fused attention stays float32): per-tensor scales (the defaults) lose too much (min
cosine 0.90 to fp32 on real reviews), and so, for its share of the time, does int8
attention.

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

# bump when the export settings below change: old exports are then unused (2: fused;
# 3: int8 leaves the fused Attention ops in float32)
EXPORT_VERSION = 3
OPSET = 17
KIND = "onnx-export"
FILE = "model.onnx"
_CHECK_ATOL = 1e-3  # export vs PyTorch, largest |difference| of a hidden state (seen: 3e-5)
_SAMPLE = ["a", "two texts of different lengths, so that the trace sees padding"]
SORT_WINDOW = 4096  # texts tokenized at once and sorted by token count (int64 ids: 8 MB at 256)
_CHECK = ["the export is checked", "on a batch of another shape", "than the one it was traced on"]


def default_onnx_dir() -> Path:
    """``onnx/`` in embedkit's cache directory (``$EMBEDKIT_CACHE_DIR`` or the user's)."""
    return default_cache_path().parent / "onnx"


def model_key(transformer: Any) -> str:
    """sha256 (hex) of a transformer's content: config, every tensor's name, dtype, shape and
    bytes, and :data:`EXPORT_VERSION`, ``OPSET``, onnxruntime's version (what an export
    of it depends on)."""
    torch = require("torch", "sbert")
    ort = require("onnxruntime", "onnx")  # its optimizer writes the fused graph
    settings = f"embedkit-onnx {EXPORT_VERSION} opset {OPSET} onnxruntime {ort.__version__}\n"
    digest = hashlib.sha256(settings.encode())
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
                # MatMuls only: int8 attention (QAttention) cost the most fidelity for its
                # time (706 reviews: mean 1 - cos 0.0068 -> 0.0054, sentiment macro-F1
                # over 20 splits -0.017 -> -0.006 vs fp32, for 8% of int8's speed)
                op_types_to_quantize=["MatMul"],
                # the fused ops' outputs have no inferred type: they are float32
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )

    def _export(self, path: Path) -> None:
        """Export the transformer to ``path``, fused where that stays within
        :data:`_CHECK_ATOL` of PyTorch on another batch (else unfused, checked the same)."""
        torch = require("torch", "sbert")
        transformer = self._st[0].model
        wrapper = _Hidden.make(torch, transformer, self.inputs).eval()
        sample = self._features(_SAMPLE, None)
        args = tuple(torch.from_numpy(sample[name]) for name in self.inputs)
        axes = {name: {0: "batch", 1: "tokens"} for name in (*self.inputs, "last_hidden_state")}
        plain = path.with_name("unfused.onnx")
        with warnings.catch_warnings(), torch.no_grad(), _eager_attention(transformer):
            warnings.simplefilter("ignore")  # TracerWarnings and the legacy exporter's notice
            try:
                torch.onnx.export(
                    wrapper,
                    args,
                    str(plain),
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
        try:
            _fuse(plain, path, transformer.config)
            worst = self._worst(path, check, expected)
        except BackendError:  # the optimizer failed on this graph, or wrote one that fails
            worst = np.inf
        if not worst <= _CHECK_ATOL:  # the optimizer misread this graph: keep it unfused
            plain.replace(path)
            worst = self._worst(path, check, expected)
        plain.unlink(missing_ok=True)
        if not worst <= _CHECK_ATOL:
            raise BackendError(
                f"the ONNX export differs from PyTorch by {worst:.3g} (> {_CHECK_ATOL}) on a "
                "batch of another shape: this model does not trace cleanly"
            )

    def _worst(self, path: Path, check: dict[str, Any], expected: NDArray[np.float32]) -> float:
        """Largest |difference| between the model file's hidden states and ``expected``."""
        with _ort_errors("onnxruntime cannot run the fresh export"):
            session = self._ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            got = session.run(None, {n: check[n] for n in self.inputs})[0]
        return float(np.abs(got - expected).max()) if got.shape == expected.shape else np.inf

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
        of ``prompt + text``, rows in input order; not normalised beyond what the model's
        own modules do.

        Batches hold texts of similar token counts: up to :data:`SORT_WINDOW` texts are
        tokenized at once and sorted by their counts, and each batch is cut to its
        longest text. (``encode`` sorts by characters: on the 1,000 reviews its batches
        of 32 are 16% padding, these 2%; padding costs the transformer as much as text.)
        """
        torch = require("torch", "sbert")
        rows: list[NDArray[np.float32]] = []
        for c0 in range(0, len(texts), SORT_WINDOW):
            features = self._features(texts[c0 : c0 + SORT_WINDOW], prompt)
            counts = _token_counts(features, self.inputs)
            order = np.argsort(-counts, kind="stable")
            pooled: list[NDArray[np.float32]] = [np.empty(0, np.float32)] * len(order)
            for start in range(0, len(order), batch_size):
                picked = order[start : start + batch_size]
                batch = self._cut(features, picked, int(counts[picked].max()))
                batch["token_embeddings"] = torch.from_numpy(self._hidden(batch))
                for name in self.inputs:
                    batch[name] = torch.from_numpy(batch[name])
                with torch.inference_mode():
                    for module in self._later:
                        batch = module(batch)
                vectors = batch["sentence_embedding"].float().numpy()
                for i, row in zip(picked.tolist(), vectors, strict=True):
                    pooled[i] = row
            rows.extend(pooled)
        if not rows:
            return np.zeros((0, self._st.get_embedding_dimension()), np.float32)
        return np.stack(rows).astype(np.float32, copy=False)

    def _cut(
        self, features: dict[str, Any], picked: NDArray[np.intp], width: int
    ) -> dict[str, Any]:
        """The rows ``picked`` of the tokenized window, ``width`` tokens wide (on the side
        the tokenizer does not pad); other entries (``modality``, ...) as they are."""
        left = getattr(self._st.tokenizer, "padding_side", "right") == "left"
        columns = slice(-width, None) if left else slice(0, width)
        batch = dict(features)
        for name in self.inputs:
            batch[name] = np.ascontiguousarray(features[name][picked, columns])
        return batch

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


@contextmanager
def _eager_attention(model: Any) -> Iterator[None]:
    """``model`` on eager attention while the block runs (where it can switch): SDPA
    traces into a graph onnxruntime's optimizer does not fuse."""
    before = getattr(model.config, "_attn_implementation", None)
    switch = getattr(model, "set_attn_implementation", None)
    if switch is not None and before not in (None, "eager"):
        try:
            switch("eager")
        except (ValueError, ImportError):  # a model without eager attention: traced as it is
            switch = None
    try:
        yield
    finally:
        if switch is not None and before not in (None, "eager"):
            switch(before)


def _fuse(source: Path, target: Path, config: Any) -> None:
    """onnxruntime's BERT fusions of the export ``source``, written to ``target``
    (heads and width from the model's config; 0 lets the optimizer read them)."""
    optimizer = require("onnxruntime.transformers.optimizer", "onnx")
    heads = int(getattr(config, "num_attention_heads", 0) or 0)
    hidden = int(getattr(config, "hidden_size", 0) or 0)
    with quiet("onnxruntime"), _ort_errors("onnxruntime's transformer optimizer failed"):
        fused = optimizer.optimize_model(
            str(source), model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=1
        )
        fused.save_model_to_file(str(target))


def _token_counts(features: dict[str, Any], names: tuple[str, ...]) -> NDArray[np.int64]:
    """Tokens per text of a tokenized window (its attention mask's sum; the full
    width where the tokenizer gives no mask)."""
    ids = features["input_ids"]
    if "attention_mask" not in names:
        return np.full(ids.shape[0], ids.shape[1], np.int64)
    counts: NDArray[np.int64] = features["attention_mask"].sum(axis=1).astype(np.int64)
    return counts


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
