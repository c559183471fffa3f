"""fastText vectors: ``fasttext:<path>`` for ``.bin`` models (with subwords) and ``.vec`` files.

* ``.bin`` -- a fastText model loaded with the ``fasttext`` module. In-vocabulary
  words get ``model.get_word_vector(w)`` (their own row averaged with their
  character n-gram rows); out-of-vocabulary words get the mean of their n-gram
  rows through :class:`~embedkit.words.vectors.WordVectors`' ``subword`` hook, so
  ``embedder.words.vector("governmnet")`` and pooling never lose a misspelled word.
* ``.vec`` -- the word2vec text file fastText writes beside the model: plain vectors,
  no subwords (OOV words follow the ``on_oov`` policy).
* a folder written by :meth:`FastTextEmbedder.save` -- the native vectors plus
  ``model.bin`` when the embedder had a subword model, in the same checked folder.

Known-broken builds. The ``fasttext`` import name is shared by several
distributions. Under numpy 2, ``fasttext-wheel`` (<= 0.9.2) and upstream
``fasttext`` (<= 0.9.3) crash in ``predict`` or silently return wrong
probabilities; :func:`fasttext_module` refuses them with a
:class:`~embedkit.errors.MissingDependencyError` naming the fix
(``pip install 'embedkit[fasttext]'``, which installs ``fasttext-numpy2``). Every
loaded ``.bin`` model is also probed: ``get_word_vector(w)`` must equal the mean of
the input-matrix rows of ``w``'s subwords, otherwise :class:`~embedkit.errors.BackendError`.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from embedkit import _folder
from embedkit._optional import require
from embedkit.errors import BackendError, CorruptFileError, MissingDependencyError
from embedkit.words.embedder import StaticEmbedder
from embedkit.words.files import read_word2vec
from embedkit.words.pooling import Pooling
from embedkit.words.saved import locate, read_folder
from embedkit.words.vectors import WordVectors

__all__ = ["BROKEN_BUILDS", "FastTextEmbedder", "broken_build", "fasttext_module"]

MODEL_FILE = "model.bin"
# distribution -> last broken version under numpy >= 2 (every version up to it is broken)
BROKEN_BUILDS: dict[str, tuple[int, ...]] = {"fasttext-wheel": (0, 9, 2), "fasttext": (0, 9, 3)}
PROBE_ATOL = 1e-5


def broken_build(distribution: str, version: str, numpy_version: str) -> str | None:
    """Why ``distribution==version`` of the ``fasttext`` module is unusable, or ``None``."""
    last_bad = BROKEN_BUILDS.get(distribution.lower())
    if last_bad is None or _version_tuple(numpy_version)[:1] < (2,):
        return None
    if _version_tuple(version) > last_bad:
        return None
    return (
        f"{distribution} {version} is a known-broken fastText build under numpy {numpy_version} "
        "(predict crashes or returns wrong probabilities); replace it: "
        f"pip uninstall {distribution} && pip install 'embedkit[fasttext]' (fasttext-numpy2)"
    )


def fasttext_module() -> ModuleType:
    """The ``fasttext`` module, after checking that its distribution is not a broken build."""
    module = require("fasttext", "fasttext")
    for dist in metadata.packages_distributions().get("fasttext", []):
        reason = broken_build(dist, metadata.version(dist), np.__version__)
        if reason is not None:
            raise MissingDependencyError(reason)
    return module


def _version_tuple(version: str) -> tuple[int, ...]:
    """``"0.9.2"`` -> ``(0, 9, 2)``; stops at the first part without leading digits."""
    parts: list[int] = []
    for piece in version.split("."):
        digits = re.match(r"\d+", piece)
        if digits is None:
            break
        parts.append(int(digits.group()))
    return tuple(parts)


class FastTextEmbedder(StaticEmbedder):
    """``fasttext:<path>``: a ``.bin`` model (subwords), a ``.vec`` file or a saved folder.

    Options are those of :class:`~embedkit.words.embedder.StaticEmbedder`
    (``tokenizer``, ``pooling``, ``on_oov``, ``fit_corpus``); ``mmap`` maps a saved
    folder's vectors. ``model`` is the underlying fastText model, or ``None``.
    """

    backend = "fasttext"

    def __init__(
        self,
        model: str = "",
        *,
        tokenizer: str | None = None,
        pooling: str | None = None,
        on_oov: str | None = None,
        fit_corpus: str | None = None,
        mmap: bool = False,
    ) -> None:
        path = locate(self.backend, model)
        config: dict[str, Any] = {}
        weights: Pooling | None = None
        self.model: Any = None
        if path.is_dir():
            saved = read_folder(path, mmap=mmap, extra=[MODEL_FILE])
            words, config, weights = saved.words, saved.config, saved.pooling
            if MODEL_FILE in saved.files:
                self.model = _load_model_bytes(saved.files[MODEL_FILE], path)
                words.subword = _subword_function(self.model)
        elif path.suffix == ".vec":
            words = read_word2vec(path, binary=False)
        else:
            self.model = _load_model(path)
            words = _model_words(self.model, path)
        self._init_loaded(
            words,
            path,
            config,
            weights,
            tokenizer=tokenizer,
            pooling=pooling,
            on_oov=on_oov,
            fit_corpus=fit_corpus,
            limit=None,
        )

    @classmethod
    def from_model(cls, model: Any, **options: Any) -> FastTextEmbedder:
        """An embedder over an in-memory fastText model (e.g. freshly trained).

        ``options`` as in :meth:`StaticEmbedder.from_words`; the source is the
        vectors' content id until the embedder is saved.
        """
        words = _model_words(model, None)
        embedder = cls.from_words(words, **options)
        embedder.model = model
        return embedder

    def _save_files(self, writer: _folder.FolderWriter) -> None:
        """``model.bin`` (the subword model) joins the folder's one atomic write."""
        if self.model is None:
            return
        target = writer.path_of(MODEL_FILE)
        try:
            self.model.save_model(str(target))
        except PermissionError:
            raise
        except (RuntimeError, ValueError, OSError) as exc:
            raise BackendError(f"fastText could not save its model to {target}: {exc}") from exc


def _load_model(path: Path, name: Path | None = None) -> Any:
    """The fastText model in ``path`` (named ``name`` in messages), probed for broken builds."""
    fasttext = fasttext_module()
    name = name or path
    try:
        model = fasttext.load_model(str(path))
    except ValueError as exc:
        raise CorruptFileError(
            f"{name} is not a fastText model this fastText build can read ({exc}); files "
            "written by fastText before 0.9 need gensim's load_facebook_vectors instead"
        ) from exc
    except PermissionError:
        raise
    except (RuntimeError, OSError, UnicodeDecodeError) as exc:
        raise CorruptFileError(f"fastText cannot load {name}: {exc}") from exc
    _probe(model, name)
    return model


def _load_model_bytes(data: bytes, folder: Path) -> Any:
    """The ``model.bin`` of a saved folder, from the bytes its checked snapshot read.

    fastText loads from a path only: the bytes go to a private temporary file, so a
    save that replaces the folder meanwhile cannot mix two versions.
    """
    with tempfile.TemporaryDirectory(prefix="embedkit-fasttext-") as tmp:
        file = Path(tmp) / MODEL_FILE
        file.write_bytes(data)
        return _load_model(file, folder / MODEL_FILE)


def _model_words(model: Any, path: Path | None) -> WordVectors:
    """Every vocabulary word with ``get_word_vector`` (rows by falling count) + subwords."""
    try:
        words, counts = model.get_words(include_freq=True)
    except UnicodeDecodeError as exc:
        raise CorruptFileError(
            f"fastText model {path or ''} holds words that are not UTF-8: {exc}"
        ) from exc
    dim = int(model.get_dimension())
    vectors = np.empty((len(words), dim), dtype=np.float32)
    for i, word in enumerate(words):
        vectors[i] = model.get_word_vector(word)
    subword = _subword_function(model) if int(model.f.getArgs().maxn) > 0 else None
    return WordVectors(list(words), vectors, counts=np.asarray(counts, np.int64), subword=subword)


def _subword_function(model: Any) -> Any:
    dim = int(model.get_dimension())

    def subword(words: Sequence[str]) -> NDArray[np.float32]:
        """``(len(words), dim)``: ``res[i]`` = mean of the n-gram rows of ``words[i]``."""
        out = np.zeros((len(words), dim), dtype=np.float32)
        for i, word in enumerate(words):
            out[i] = model.get_word_vector(word)
        return out

    return subword


def _probe(model: Any, path: Path) -> None:
    """Check the numbers this build returns: ``get_word_vector(w)`` = mean of its rows."""
    words = model.get_words(on_unicode_error="replace")
    word = words[min(1, len(words) - 1)] if words else "embedkit"
    try:
        _, ids = model.get_subwords(word)
        rows = [np.asarray(model.get_input_vector(int(i)), dtype=np.float64) for i in ids]
        expected = np.mean(rows, axis=0)
        got = np.asarray(model.get_word_vector(word), dtype=np.float64)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise BackendError(f"the installed fastText build fails on {path}: {exc}") from exc
    if got.shape != expected.shape or not np.allclose(got, expected, atol=PROBE_ATOL):
        raise BackendError(
            f"the installed fastText build returns wrong vectors for {path} "
            f"(get_word_vector({word!r}) differs from its n-gram rows); "
            "reinstall with pip install 'embedkit[fasttext]'"
        )
