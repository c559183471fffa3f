"""Spec strings, the backend registry and config-driven loading."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

import numpy as np
import pytest

import embedkit
from embedkit.backends.hashing import HashingEmbedder
from embedkit.registry import BUILTIN_BACKENDS
from embedkit.spec import format_spec, parse_spec


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("hashing", ("hashing", "", {})),
        ("hashing?dim=256", ("hashing", "", {"dim": 256})),
        (
            "openai:text-embedding-3-small?dimensions=256",
            ("openai", "text-embedding-3-small", {"dimensions": 256}),
        ),
        (
            "Sentence-Transformers:/models/x:y?normalize=false&truncate_dim=128",
            ("sentence-transformers", "/models/x:y", {"normalize": False, "truncate_dim": 128}),
        ),
        ("glove:/tmp/a%3Fb.txt?oov=none", ("glove", "/tmp/a?b.txt", {"oov": None})),
        ("x:m?a=0.5&b=text", ("x", "m", {"a": 0.5, "b": "text"})),
    ],
)
def test_parse_spec(spec: str, expected: tuple[object, ...]) -> None:
    assert parse_spec(spec) == expected


def test_format_spec_round_trips_and_is_canonical() -> None:
    spec = format_spec("glove", "/tmp/a?b&c.txt", {"z": 1, "a": True, "m": "x y"})
    assert spec.index("a=true") < spec.index("m=") < spec.index("z=1")
    assert parse_spec(spec) == ("glove", "/tmp/a?b&c.txt", {"z": 1, "a": True, "m": "x y"})
    assert format_spec(*parse_spec(spec)) == spec


@pytest.mark.parametrize("bad", ["", "   ", ":model", "hashing?dim=1&dim=2", "hashing?=3"])
def test_bad_specs_raise_config_error(bad: str) -> None:
    with pytest.raises(embedkit.ConfigError):
        embedkit.load(bad)


def test_load_string_dict_object_and_overrides() -> None:
    from_string = embedkit.load("hashing?dim=128&ngrams=1")
    from_dict = embedkit.load({"backend": "hashing", "dim": 128, "ngrams": 1})
    assert from_string.spec == from_dict.spec
    assert embedkit.load(from_string) is from_string
    assert embedkit.load("hashing?dim=128", dim=64).dim == 64
    rebuilt = embedkit.load(from_string.spec)
    texts = ["pet food", "a river bank"]
    np.testing.assert_array_equal(rebuilt.embed(texts), from_string.embed(texts))


def test_load_uses_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDKIT_MODEL", "hashing?dim=32")
    assert embedkit.load().spec.startswith("hashing?dim=32")


def test_unknown_backend_lists_available() -> None:
    with pytest.raises(embedkit.errors.UnknownBackendError, match=r"available: .*hashing"):
        embedkit.load("nope:model")


def test_unknown_option_is_a_config_error() -> None:
    with pytest.raises(embedkit.ConfigError, match="colour"):
        embedkit.load("hashing?colour=blue")
    with pytest.raises(embedkit.ConfigError, match="dim"):
        embedkit.load("hashing?dim=0")


def test_dict_without_backend_and_wrong_type() -> None:
    with pytest.raises(embedkit.ConfigError, match="backend"):
        embedkit.load({"model": "x"})
    with pytest.raises(embedkit.ConfigError):
        embedkit.load(42)  # type: ignore[arg-type]
    with pytest.raises(embedkit.ConfigError):
        embedkit.load(embedkit.load("hashing"), dim=3)


def test_register_user_backend() -> None:
    class Upper(HashingEmbedder):
        backend = "upper"

    embedkit.register("upper", Upper)
    model = embedkit.load("upper?dim=16")
    assert isinstance(model, Upper) and model.spec.startswith("upper?dim=16")
    embedkit.register("upper-by-path", "embedkit.backends.hashing:HashingEmbedder")
    assert embedkit.load("upper-by-path").dim == 384
    with pytest.raises(embedkit.ConfigError):
        embedkit.register("bad:name", Upper)


def test_entry_point_backend_from_installed_distribution() -> None:
    """tests/plugin_dist is a real distribution installed by the set-up."""
    names = {ep.name for ep in entry_points(group="embedkit.backends")}
    assert "reverse-hashing" in names
    model = embedkit.load("reverse-hashing?dim=64")
    assert type(model).__module__ == "embedkit_demo_plugin"
    assert "reverse-hashing" in embedkit.registry.available_backends()
    # reversing the text changes the vectors, so it is a distinct backend
    plain = embedkit.load("hashing?dim=64")
    assert not np.allclose(model.embed(["pet food"]), plain.embed(["pet food"]))


def test_missing_dependency_names_the_extra() -> None:
    embedkit.register("needs-missing", "embedkit_no_such_module:Thing")
    with pytest.raises(embedkit.errors.MissingDependencyError):
        embedkit.load("needs-missing")
    from embedkit._optional import require

    with pytest.raises(ImportError, match=r"pip install 'embedkit\[zh\]'"):
        require("surely_not_installed_module_xyz", "zh")


def test_every_builtin_backend_names_an_extra_or_is_core() -> None:
    for info in BUILTIN_BACKENDS.values():
        assert info.name == "hashing" or info.extra in {
            "sbert",
            "openai",
            "gensim",
            "fasttext",
            "multilingual",
            "elmo",
        }


def test_import_embedkit_is_light() -> None:
    code = (
        "import sys, embedkit; heavy = ['torch', 'transformers', 'sentence_transformers', "
        "'gensim', 'fasttext', 'openai', 'tiktoken', 'pandas', 'scipy', 'sklearn', 'jieba']; "
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_string_options_that_look_like_numbers_round_trip() -> None:
    """A ``str`` parameter keeps "2024" as text; ``load(e.spec)`` rebuilds the same embedder."""

    class Tagged(HashingEmbedder):
        backend = "tagged"

        def __init__(self, model: str = "", *, tag: str = "x", dim: int = 16) -> None:
            super().__init__(dim=dim)
            self.tag = tag

        def _spec_parts(self) -> tuple[str, dict[str, object]]:  # type: ignore[override]
            return "", {"tag": self.tag, "dim": self.dim}

    embedkit.register("tagged", Tagged)
    model = embedkit.load("tagged?tag=0123&dim=16")
    assert model.tag == "0123" and model.dim == 16  # type: ignore[attr-defined]
    again = embedkit.load(model.spec)
    assert again.spec == model.spec and again.tag == "0123"  # type: ignore[attr-defined]
    assert embedkit.load("tagged?tag=none").tag == "none"  # type: ignore[attr-defined]


def test_load_does_not_evaluate_properties_of_an_embedder() -> None:
    """Recognising an Embedder must not call ``dim`` (for some backends that is a request)."""

    class Lazy(HashingEmbedder):
        @property
        def dim(self) -> int:
            raise AssertionError("dim was evaluated")

    model = Lazy()
    assert embedkit.load(model) is model


def test_non_finite_backend_output_is_caught() -> None:
    class Broken(HashingEmbedder):
        def _embed(self, texts: list[str]) -> np.ndarray:
            out = super()._embed(texts)
            out[1, 0] = np.nan
            return out

    with pytest.raises(embedkit.errors.BadResponseError, match="NaN or infinity for rows 1"):
        Broken().embed(["a", "b", "c"])


def test_import_embedkit_loads_no_backend_module() -> None:
    code = (
        "import sys, embedkit; print([m for m in sys.modules if m.startswith('embedkit.backends')])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "config",
    [
        {"backend": "hashing", "lowercase": "false"},
        {"backend": "hashing", "dim": "64"},
        {"backend": "hashing", "dim": 64.5},
        {"backend": "hashing", "ngrams": True},
        "hashing?lowercase=flase",
    ],
)
def test_config_values_of_the_wrong_type_are_refused_not_coerced(config: object) -> None:
    with pytest.raises(embedkit.ConfigError, match="must be"):
        embedkit.load(config)  # type: ignore[arg-type]


def test_a_config_error_never_echoes_option_values() -> None:
    secret = "sk-do-not-print-me"
    with pytest.raises(embedkit.ConfigError) as info:
        embedkit.load({"api_key": secret, "model": "x"})
    assert secret not in str(info.value)
