"""Read and check the published AllenNLP ELMo files: ``options.json`` + ``weights.hdf5``.

The layout is bilm-tf's, as AllenNLP publishes it and reads it (``_ElmoCharacterEncoder``,
``ElmoLstm.load_weights``). With ``F = sum(n for _, n in filters)``, ``P = projection_dim``,
``C = lstm.dim`` (the cell) and ``D`` the character embedding width::

    char_embed                                   (261, D)      ids 0..260 (bytes, 5 reserved)
    CNN/W_cnn_{i}, CNN/b_cnn_{i}                 (1, w_i, D, n_i), (n_i,)
    CNN_high_{k}/W_transform, b_transform        (F, F), (F,)
    CNN_high_{k}/W_carry, b_carry                (F, F), (F,)
    CNN_proj/W_proj, b_proj                      (F, P), (P,)
    RNN_{d}/RNN/MultiRNNCell/Cell{l}/LSTMCell/W_0    (P + P, 4C)  rows [x, h]; gates i, j, f, o
                                              .../B      (4C,)        forget bias +1 not included
                                              .../W_P_0  (C, P)

``d`` is 0 (forward) or 1 (backward), ``l`` the layer. Every dataset is checked
against the options before a model is built: a missing dataset or a wrong shape
is a :class:`~embedkit.errors.CorruptFileError` naming it; options the published
equations do not cover (no skip connections, an unknown activation) are a
:class:`~embedkit.errors.ConfigError`.

:func:`write_random_weights` writes a small random model in exactly this layout
(for tests and examples; real weights come from AllenNLP, see docs/elmo.md).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from embedkit._optional import require
from embedkit.errors import ConfigError, CorruptFileError

__all__ = [
    "ElmoFiles",
    "ElmoOptions",
    "ElmoWeights",
    "LstmWeights",
    "find_files",
    "read_options",
    "read_weights",
    "write_random_weights",
]

N_CHAR_IDS = 261  # 256 bytes + bos, eos, bow, eow, padding (before the +1 shift for masking)
ACTIVATIONS = ("relu", "tanh")
Array = NDArray[np.float32]


@dataclass(frozen=True)
class ElmoFiles:
    """The two files of one model."""

    options: Path
    weights: Path


@dataclass(frozen=True)
class ElmoOptions:
    """What ``options.json`` says (the ``char_cnn`` and ``lstm`` sections)."""

    char_dim: int
    filters: tuple[tuple[int, int], ...]
    n_highway: int
    max_chars: int
    activation: str
    projection_dim: int
    cell_dim: int
    n_layers: int
    cell_clip: float | None
    proj_clip: float | None

    @property
    def n_filters(self) -> int:
        return sum(n for _, n in self.filters)


@dataclass(frozen=True)
class LstmWeights:
    """One direction of one layer, in the file's (TensorFlow) layout."""

    w: Array  # (P + P, 4C): inputs then recurrent state; gate blocks i, j, f, o
    b: Array  # (4C,)
    w_proj: Array  # (C, P)


@dataclass(frozen=True)
class ElmoWeights:
    """Every array of the model, checked against ``options``."""

    options: ElmoOptions
    char_embed: Array
    cnn: tuple[tuple[Array, Array], ...]
    highway: tuple[tuple[Array, Array, Array, Array], ...]  # W_t, b_t, W_c, b_c
    proj: tuple[Array, Array]
    lstm: tuple[tuple[LstmWeights, ...], tuple[LstmWeights, ...]]  # [direction][layer]


def find_files(folder: str | os.PathLike[str]) -> ElmoFiles:
    """``options.json`` and ``weights.hdf5`` in ``folder``; else the one ``*options*.json`` and
    the one ``*weights*.hdf5`` there (AllenNLP's downloads keep their long names)."""
    where = Path(folder)
    if not where.is_dir():
        raise ConfigError(f"ELMo model folder {str(where)!r} does not exist or is not a folder")
    found = []
    for exact, pattern in (("options.json", "*options*.json"), ("weights.hdf5", "*weights*.hdf5")):
        if (where / exact).is_file():
            found.append(where / exact)
            continue
        matches = sorted(p for p in where.glob(pattern) if p.is_file())
        if len(matches) != 1:
            what = "none" if not matches else ", ".join(p.name for p in matches)
            raise ConfigError(
                f"ELMo folder {str(where)!r} needs {exact} or exactly one {pattern} file, "
                f"found {what}"
            )
        found.append(matches[0])
    return ElmoFiles(found[0], found[1])


def _get(section: dict[str, Any], key: str, where: str, kind: type | tuple[type, ...]) -> Any:
    if key not in section:
        raise CorruptFileError(f"{where}: the options file has no {key!r}")
    value = section[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        raise CorruptFileError(f"{where}.{key} is {value!r}, not a {kind}")
    return value


def _positive(value: int, name: str) -> int:
    if value < 1:
        raise CorruptFileError(f"options: {name} must be >= 1, got {value}")
    return value


def read_options(path: str | os.PathLike[str]) -> ElmoOptions:
    """Parse and check ``options.json`` (the published key names)."""
    try:
        raw = json.loads(Path(path).read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptFileError(f"cannot read ELMo options {str(path)!r}: {exc}") from exc
    if not isinstance(raw, dict):
        raise CorruptFileError(f"ELMo options {str(path)!r} is not a JSON object")
    cnn = _get(raw, "char_cnn", "options", dict)
    lstm = _get(raw, "lstm", "options", dict)
    filters = _get(cnn, "filters", "char_cnn", list)
    if not filters or not all(
        isinstance(f, list) and len(f) == 2 and all(type(x) is int and x > 0 for x in f)
        for f in filters
    ):
        raise CorruptFileError(f"char_cnn.filters must be [[width, count], ...], got {filters}")
    activation = _get(cnn, "activation", "char_cnn", str)
    if activation not in ACTIVATIONS:
        raise ConfigError(f"char_cnn.activation {activation!r} is not one of {ACTIVATIONS}")
    if not lstm.get("use_skip_connections"):
        raise ConfigError(
            "only biLMs with residual connections (use_skip_connections) are supported"
        )
    n_chars = cnn.get("n_characters", N_CHAR_IDS + 1)
    if n_chars not in (N_CHAR_IDS, N_CHAR_IDS + 1):
        raise CorruptFileError(f"char_cnn.n_characters is {n_chars!r}, expected 261 or 262")
    clips = [lstm.get(k) for k in ("cell_clip", "proj_clip")]
    for name, clip in zip(("cell_clip", "proj_clip"), clips, strict=True):
        if clip is not None and (isinstance(clip, bool) or not isinstance(clip, (int, float))):
            raise CorruptFileError(f"lstm.{name} is {clip!r}, not a number")
    options = ElmoOptions(
        char_dim=_positive(
            _get(_get(cnn, "embedding", "char_cnn", dict), "dim", "embedding", int), "dim"
        ),
        filters=tuple((int(w), int(n)) for w, n in filters),
        n_highway=_get(cnn, "n_highway", "char_cnn", int),
        max_chars=_positive(_get(cnn, "max_characters_per_token", "char_cnn", int), "max_chars"),
        activation=activation,
        projection_dim=_positive(_get(lstm, "projection_dim", "lstm", int), "projection_dim"),
        cell_dim=_positive(_get(lstm, "dim", "lstm", int), "lstm.dim"),
        n_layers=_positive(_get(lstm, "n_layers", "lstm", int), "n_layers"),
        cell_clip=float(clips[0]) if clips[0] else None,  # 0 or absent: no clipping (allennlp)
        proj_clip=float(clips[1]) if clips[1] else None,
    )
    if options.n_highway < 0 or options.max_chars < 3:
        raise CorruptFileError("options: n_highway must be >= 0 and max_characters_per_token >= 3")
    if max(w for w, _ in options.filters) > options.max_chars:
        raise CorruptFileError("options: a filter is wider than max_characters_per_token")
    return options


def _dataset(fh: Any, name: str, shape: tuple[int, ...], file: Path) -> Array:
    if name not in fh:
        raise CorruptFileError(f"ELMo weights {file.name!r} lack the dataset {name!r}")
    data = np.asarray(fh[name][...])
    if data.shape != shape:
        raise CorruptFileError(
            f"ELMo weights {file.name!r}: {name!r} has shape {data.shape}, the options "
            f"({file.name} vs options.json) need {shape}"
        )
    if not np.issubdtype(data.dtype, np.floating) or not np.isfinite(data).all():
        raise CorruptFileError(f"ELMo weights {file.name!r}: {name!r} is not finite floats")
    return data.astype(np.float32, copy=False)


def lstm_name(direction: int, layer: int) -> str:
    return f"RNN_{direction}/RNN/MultiRNNCell/Cell{layer}/LSTMCell"


def read_weights(files: ElmoFiles) -> ElmoWeights:
    """Every array of ``files.weights``, each checked against ``files.options``."""
    h5py = require("h5py", "elmo")
    opts = read_options(files.options)
    f, p, c, d = opts.n_filters, opts.projection_dim, opts.cell_dim, opts.char_dim
    try:
        fh = h5py.File(files.weights, "r")
    except OSError as exc:
        if not files.weights.exists():
            raise ConfigError(f"ELMo weights {str(files.weights)!r} do not exist") from exc
        raise CorruptFileError(
            f"{str(files.weights)!r} is not a readable HDF5 file: {exc}"
        ) from exc
    with fh:

        def get(name: str, *shape: int) -> Array:
            return _dataset(fh, name, shape, files.weights)

        cnn = tuple(
            (get(f"CNN/W_cnn_{i}", 1, w, d, n), get(f"CNN/b_cnn_{i}", n))
            for i, (w, n) in enumerate(opts.filters)
        )
        highway = tuple(
            (
                get(f"CNN_high_{k}/W_transform", f, f),
                get(f"CNN_high_{k}/b_transform", f),
                get(f"CNN_high_{k}/W_carry", f, f),
                get(f"CNN_high_{k}/b_carry", f),
            )
            for k in range(opts.n_highway)
        )
        lstm = tuple(
            tuple(
                LstmWeights(
                    get(f"{lstm_name(direction, layer)}/W_0", p + p, 4 * c),
                    get(f"{lstm_name(direction, layer)}/B", 4 * c),
                    get(f"{lstm_name(direction, layer)}/W_P_0", c, p),
                )
                for layer in range(opts.n_layers)
            )
            for direction in (0, 1)
        )
        return ElmoWeights(
            options=opts,
            char_embed=get("char_embed", N_CHAR_IDS, d),
            cnn=cnn,
            highway=highway,
            proj=(get("CNN_proj/W_proj", f, p), get("CNN_proj/b_proj", p)),
            lstm=(lstm[0], lstm[1]),
        )


def write_random_weights(
    folder: str | os.PathLike[str],
    *,
    seed: int = 0,
    char_dim: int = 4,
    filters: Sequence[tuple[int, int]] = ((1, 4), (2, 8), (3, 16), (4, 32)),
    n_highway: int = 2,
    projection_dim: int = 16,
    cell_dim: int = 32,
    n_layers: int = 2,
    cell_clip: float = 3.0,
    proj_clip: float = 3.0,
    activation: str = "relu",
    scale: float = 0.5,
) -> ElmoFiles:
    """Write ``options.json`` and ``weights.hdf5`` of a random model in the published layout.

    Values are ``N(0, scale^2 / fan_in)`` (so that activations stay in range); the
    model means nothing, but every equation of the real one runs on it.
    """
    h5py = require("h5py", "elmo")
    if activation not in ACTIVATIONS:
        raise ConfigError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    where = Path(folder)
    where.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    f, p, c = sum(n for _, n in filters), projection_dim, cell_dim

    def normal(*shape: int, fan_in: int) -> Array:
        drawn: Array = (rng.standard_normal(shape) * scale / np.sqrt(fan_in)).astype(np.float32)
        return drawn

    options = {
        "lstm": {
            "cell_clip": cell_clip,
            "use_skip_connections": True,
            "n_layers": n_layers,
            "proj_clip": proj_clip,
            "projection_dim": p,
            "dim": c,
        },
        "char_cnn": {
            "embedding": {"dim": char_dim},
            "filters": [[int(w), int(n)] for w, n in filters],
            "n_highway": n_highway,
            "n_characters": N_CHAR_IDS + 1,
            "max_characters_per_token": 50,
            "activation": activation,
        },
    }
    (where / "options.json").write_text(json.dumps(options, indent=2), "utf-8")
    with h5py.File(where / "weights.hdf5", "w") as fh:
        fh["char_embed"] = normal(N_CHAR_IDS, char_dim, fan_in=1)
        for i, (w, n) in enumerate(filters):
            fh[f"CNN/W_cnn_{i}"] = normal(1, w, char_dim, n, fan_in=w * char_dim)
            fh[f"CNN/b_cnn_{i}"] = normal(n, fan_in=1) * 0.1
        for k in range(n_highway):
            for part in ("transform", "carry"):
                fh[f"CNN_high_{k}/W_{part}"] = normal(f, f, fan_in=f)
                fh[f"CNN_high_{k}/b_{part}"] = normal(f, fan_in=1) * 0.1
        fh["CNN_proj/W_proj"] = normal(f, p, fan_in=f)
        fh["CNN_proj/b_proj"] = normal(p, fan_in=1) * 0.1
        for direction in (0, 1):
            for layer in range(n_layers):
                name = lstm_name(direction, layer)
                fh[f"{name}/W_0"] = normal(p + p, 4 * c, fan_in=p) * 2
                fh[f"{name}/B"] = normal(4 * c, fan_in=1) * 0.1
                fh[f"{name}/W_P_0"] = normal(c, p, fan_in=c) * 2
    return ElmoFiles(where / "options.json", where / "weights.hdf5")
