"""Native folders of static embedders: one :mod:`embedkit._folder` write, one checked read.

A folder of kind ``"words"`` holds the :class:`~embedkit.words.vectors.WordVectors`
files (``vectors.npy``, ``vocab.json``, ``counts.npy``), the fitted pooling weights
(``pooling_weights.npy``, ``pooling_component.npy``) and any backend file (fastText's
``model.bin``), every one listed in the manifest with its size and sha256. The
embedder's settings are the manifest's ``meta["embedder"]``::

    {"backend": "word2vec", "source": "...", "tokenizer": "words", "pooling": "idf",
     "on_oov": "skip", "unseen_weight": 4.2, "fit_corpus": "<file or sha256:...>",
     "weights": "pooling_weights.npy", "component": "pooling_component.npy"}

A folder written by :meth:`WordVectors.save` has no ``"embedder"`` entry: it loads
with the defaults. The file backends find their model with :func:`locate`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from embedkit import _folder
from embedkit.errors import ConfigError, CorruptFileError
from embedkit.words.pooling import ON_OOV_CHOICES, POOLINGS, Pooling
from embedkit.words.vectors import KIND, WordVectors

__all__ = ["Saved", "check_limit", "locate", "read_folder", "write_folder"]

CONTENT_ID = re.compile(r"sha256:[0-9a-f]{12}")
POOLING_FILES = {"weights": "pooling_weights.npy", "component": "pooling_component.npy"}


@dataclass(frozen=True)
class Saved:
    """What a native folder holds: vectors, embedder settings, fitted pooling, extra files."""

    words: WordVectors
    config: dict[str, Any]
    pooling: Pooling | None
    files: dict[str, bytes] = field(default_factory=dict)


def locate(backend: str, model: str) -> Path:
    """The existing file or folder named by ``model``, else :class:`ConfigError` saying why.

    A content id (``sha256:<12 hex>``, the source of in-memory vectors) names no file:
    the error says to save the embedder and load its folder.
    """
    if not model:
        raise ConfigError(f"the {backend} backend needs a path: '{backend}:<path>'")
    path = Path(model).expanduser()
    if path.exists():
        return path
    if CONTENT_ID.fullmatch(model):
        raise ConfigError(
            f"'{backend}:{model}' names in-memory vectors (by their content id), not a file, "
            "so it cannot be loaded: save them first with embedder.save(folder) and load "
            f"'{backend}:<folder>'"
        )
    raise ConfigError(f"{backend} vectors not found: {path}")


def check_limit(limit: int | None) -> int | None:
    """``limit`` (keep the first rows only) checked: ``None`` or an integer >= 1."""
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigError(f"limit must be an integer >= 1 (the rows kept), got {limit!r}")
    return limit


def write_folder(
    path: str | os.PathLike[str],
    words: WordVectors,
    config: Mapping[str, Any],
    pooling: Pooling,
    add_files: Callable[[_folder.FolderWriter], None] | None = None,
) -> Path:
    """Save vectors, ``config``, pooling weights and ``add_files``' files in one atomic write."""
    settings = {**config, "unseen_weight": pooling.unseen_weight}
    with _folder.FolderWriter(path, KIND) as writer:
        meta = words.write_files(writer)
        for name, part in (("weights", pooling.weights), ("component", pooling.component)):
            if part is not None:
                writer.write_npy(POOLING_FILES[name], np.asarray(part, dtype=np.float32))
                settings[name] = POOLING_FILES[name]
        if add_files is not None:
            add_files(writer)
        return writer.commit({**meta, "embedder": settings})


def read_folder(
    folder: Path,
    *,
    mmap: bool = False,
    limit: int | None = None,
    verify: bool = True,
    extra: Sequence[str] = (),
) -> Saved:
    """A native folder's vectors (the first ``limit`` rows), settings, pooling and ``extra`` files.

    Everything comes from one consistent, checked snapshot of the folder (sha256 of
    every file unless ``verify=False``); ``extra`` names files read as bytes when present.
    """
    if not _folder.is_folder(folder):
        raise ConfigError(f"{folder} is a folder without an embedkit manifest.json")
    with _folder.read(folder, KIND, verify=verify) as snapshot:
        words = WordVectors.from_snapshot(snapshot, mmap=mmap)
        config, pooling = _settings(snapshot)
        files = {name: snapshot.read_bytes(name) for name in extra if name in snapshot}
    if limit is not None:
        words = words.limit(limit)
    return Saved(words, config, pooling, files)


def _settings(snapshot: _folder.Snapshot) -> tuple[dict[str, Any], Pooling | None]:
    """The ``meta["embedder"]`` settings ({} if absent) and the fitted pooling they name."""
    config = snapshot.meta.get("embedder", {})
    where = f"{snapshot.path}: the manifest's 'embedder' settings"
    if not isinstance(config, dict):
        raise CorruptFileError(f"{where} must be an object")
    method = config.get("pooling", "mean")
    checks = {
        "pooling": method in POOLINGS,
        "on_oov": config.get("on_oov", "skip") in ON_OOV_CHOICES,
        "tokenizer": isinstance(config.get("tokenizer", "words"), str),
        "fit_corpus": isinstance(config.get("fit_corpus", ""), (str, type(None))),
        "unseen_weight": isinstance(config.get("unseen_weight", 1.0), (int, float)),
    }
    bad = [name for name, ok in checks.items() if not ok]
    if bad:
        raise CorruptFileError(f"{where} hold invalid {', '.join(bad)}")
    parts: dict[str, NDArray[np.float32] | None] = {}
    for name in POOLING_FILES:
        file = config.get(name)
        if file is not None and file not in snapshot:
            raise CorruptFileError(f"{where} name {file!r}, which the manifest does not list")
        parts[name] = None if file is None else snapshot.read_npy(str(file))
    if method == "mean" or parts["weights"] is None:
        return dict(config), None
    pooling = Pooling(
        method, parts["weights"], float(config.get("unseen_weight", 1.0)), parts["component"]
    )
    return dict(config), pooling
