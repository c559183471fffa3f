"""The declared input policy: bad rows raise InvalidInputError naming them, before any work."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import embedkit
from embedkit.protocol import BaseEmbedder
from embedkit.validation import check_texts


class CountingEmbedder(BaseEmbedder):
    """A fake backend that records calls, to prove that validation precedes work."""

    backend = "counting"

    def __init__(self) -> None:
        self.calls = 0

    @property
    def dim(self) -> int:
        return 3

    def _spec_parts(self) -> tuple[str, dict[str, object]]:  # type: ignore[override]
        return "", {}

    def _embed(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        return np.ones((len(texts), 3))


def test_pandas_missing_cells_are_named_not_coerced() -> None:
    frame = pd.DataFrame({"text": ["good", None, "fine", float("nan"), "  ", "", 5]})
    with pytest.raises(embedkit.InvalidInputError) as info:
        check_texts(frame["text"])
    assert info.value.positions == [1, 3, 4, 5, 6]
    message = str(info.value)
    assert "1 (None" in message and "3 (NaN" in message and "whitespace-only" in message
    assert "empty string" in message and "not a string (int)" in message
    assert isinstance(info.value, ValueError)


def test_pandas_na_and_bytes() -> None:
    with pytest.raises(embedkit.InvalidInputError, match="0 \\(NA"):
        check_texts(pd.array([pd.NA, "x"], dtype="string"))
    with pytest.raises(embedkit.InvalidInputError, match="bytes"):
        check_texts(b"raw")


def test_valid_inputs_pass_through() -> None:
    assert check_texts(["a", " b "]) == ["a", " b "]
    assert check_texts("one text") == ["one text"]
    assert check_texts(np.array(["x", "y"])) == ["x", "y"]
    assert check_texts([]) == []


def test_no_backend_call_when_any_row_is_bad() -> None:
    model = CountingEmbedder()
    with pytest.raises(embedkit.InvalidInputError):
        model.embed(["fine", math.nan])
    assert model.calls == 0


def test_error_message_is_bounded_for_many_bad_rows() -> None:
    with pytest.raises(embedkit.InvalidInputError) as info:
        check_texts([""] * 1000)
    assert len(info.value.rows) == 1000
    assert "and 990 more" in str(info.value)
