"""``embedkit.sklearn.EmbeddingTransformer``: scikit-learn's own checks, input kinds, pipelines.

scikit-learn's ``check_estimator`` skips every check for an estimator whose input
is text (``input_tags.two_d_array = False``), so the applicable ones are called
here directly: the API checks as they are, and the data checks with their
numeric ``X`` turned into a column of texts (one text per row, by
``_enforce_estimator_tags_X``, the hook scikit-learn itself uses to adapt ``X`` to
an estimator's tags). The data checks that derive ``y`` from the numbers of ``X``
have text versions below (subset and order invariance, dict unchanged, one sample).
"""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import estimator_checks as ec

import embedkit
from embedkit.errors import ConfigError, InvalidInputError, UnknownBackendError
from embedkit.evaluate import reviews_sentiment
from embedkit.jobs.cache import EmbeddingCache
from embedkit.sklearn import EmbeddingTransformer

SPEC = "hashing?dim=32"
TEXTS = ["pet food for dogs", "spicy hot sauce", "green tea", "dog treats", "black coffee"]

API_CHECKS = [
    ec.check_estimator_cloneable,
    ec.check_estimator_tags_renamed,
    ec.check_valid_tag_types,
    ec.check_estimator_repr,
    ec.check_no_attributes_set_in_init,
    ec.check_do_not_raise_errors_in_init_or_set_params,
    ec.check_mixin_order,
    ec.check_parameters_default_constructible,
    ec.check_get_params_invariance,
    ec.check_set_params,
]
DATA_CHECKS = [
    ec.check_fit_score_takes_y,
    ec.check_estimators_overwrite_params,
    ec.check_estimators_fit_returns_self,
    ec.check_readonly_memmap_input,
    ec.check_estimators_pickle,
    ec.check_fit_idempotent,
    ec.check_fit_check_is_fitted,
    ec.check_transformer_general,
    ec.check_transformers_unfitted_stateless,
    ec.check_pipeline_consistency,
    ec.check_set_output_transform,
    ec.check_set_output_transform_pandas,
    ec.check_global_output_transform_pandas,
    ec.check_transformer_get_feature_names_out,
    ec.check_transformer_get_feature_names_out_pandas,
]


def as_texts(estimator: Any, X: Any, X_test: Any = None, kernel: Any = None) -> Any:
    """A numeric ``X`` of scikit-learn's checks as an ``(n, 1)`` column of texts."""
    rows = np.asarray(X, dtype=float)
    rows = rows[:, None] if rows.ndim == 1 else rows
    words = [" ".join(f"w{round(v * 10)}" for v in row) for row in rows]
    return np.asarray(words, dtype=object)[:, None]


@pytest.mark.parametrize("check", API_CHECKS, ids=lambda c: c.__name__)
def test_sklearn_api_check(check: Callable[..., None]) -> None:
    check("EmbeddingTransformer", EmbeddingTransformer(model=SPEC, cache=False))


@pytest.mark.parametrize("check", DATA_CHECKS, ids=lambda c: c.__name__)
def test_sklearn_data_check_on_texts(
    check: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ec, "_enforce_estimator_tags_X", as_texts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        check("EmbeddingTransformer", EmbeddingTransformer(model=SPEC, cache=False))


def test_check_estimator_itself_skips_text_input() -> None:
    with pytest.warns(ec.SkipTestWarning, match="requires"):
        ec.check_estimator(EmbeddingTransformer(model=SPEC, cache=False))


# -- input kinds ----------------------------------------------------------------------------
def inputs() -> Iterator[Any]:
    yield TEXTS
    yield tuple(TEXTS)
    yield pd.Series(TEXTS, index=[10, 11, 12, 13, 14])
    yield pd.DataFrame({"Text": TEXTS})
    yield np.asarray(TEXTS)
    yield np.asarray(TEXTS, dtype=object)[:, None]


@pytest.mark.parametrize("X", list(inputs()), ids=lambda x: type(x).__name__)
def test_every_text_column_kind_gives_the_same_matrix(X: Any) -> None:
    t = EmbeddingTransformer(model=SPEC, cache=False)
    out = t.fit(X).transform(X)
    assert out.dtype == np.float32 and out.shape == (5, 32)
    np.testing.assert_array_equal(out, embedkit.load(SPEC).embed(TEXTS))
    np.testing.assert_array_equal(t.fit_transform(X), out)


@pytest.mark.parametrize(
    "X",
    [
        "one string",
        b"bytes",
        pd.DataFrame({"a": TEXTS, "b": TEXTS}),
        np.zeros((5, 2)),
        np.arange(5),
        {"a": "b"},
        {"pet food"},
        (t for t in TEXTS),
        42,
    ],
    ids=lambda x: type(x).__name__,
)
def test_wrong_input_types_are_refused(X: Any) -> None:
    t = EmbeddingTransformer(model=SPEC, cache=False)
    with pytest.raises(ConfigError):
        t.fit(X)
    with pytest.raises(ConfigError):
        t.transform(X)


def test_non_text_elements_are_named_not_coerced() -> None:
    t = EmbeddingTransformer(model=SPEC, cache=False)
    with pytest.raises(InvalidInputError) as info:
        t.transform(pd.Series(["fine", None, 3, float("nan"), "ok"]))
    assert info.value.positions == [1, 2, 3]


def test_set_output_pandas_keeps_the_index_and_names_the_columns() -> None:
    t = EmbeddingTransformer(model=SPEC, cache=False).set_output(transform="pandas")
    series = pd.Series(TEXTS, index=list("abcde"))
    out = t.fit_transform(series)
    assert isinstance(out, pd.DataFrame) and out.shape == (5, 32)
    assert list(out.index) == list("abcde")
    assert list(out.columns) == [f"embedding_{i}" for i in range(32)]
    assert list(t.get_feature_names_out()) == list(out.columns)


# -- state: lazy model, clone, pickle, subset and order invariance --------------------------
def test_model_is_lazy_and_never_in_the_state(minilm: embedkit.Embedder) -> None:
    t = EmbeddingTransformer(model="no-such-backend:x")  # not loaded, not checked yet
    with pytest.raises(UnknownBackendError):
        t.transform(TEXTS)
    t = EmbeddingTransformer(model="sentence-transformers:all-MiniLM-L6-v2", cache=False)
    before = dict(vars(t))
    out = t.transform(TEXTS[:2])
    assert vars(t) == before  # transform changed nothing: the model is held outside
    assert out.shape == (2, 384)
    blob = pickle.dumps(t)
    assert len(blob) < 1000  # the spec, not 90 MB of weights
    again = pickle.loads(blob)
    np.testing.assert_allclose(again.transform(TEXTS[:2]), out, atol=1e-6)
    twin = clone(t)
    assert twin.get_params() == t.get_params() and twin.embedder is t.embedder  # one load


def test_clone_shares_model_and_cache_objects_and_keeps_set_output(tmp_path: Path) -> None:
    model = embedkit.load(SPEC)
    with EmbeddingCache(tmp_path / "c.sqlite3") as cache:
        t = EmbeddingTransformer(model=model, cache=cache).set_output(transform="pandas")
        twin = clone(t)
        assert twin is not t and twin.model is model and twin.cache is cache  # no deep copy
        assert isinstance(twin.transform(TEXTS), pd.DataFrame)  # set_output survives
        config = {"backend": "hashing", "dim": 8}
        copied = clone(EmbeddingTransformer(model=config))
        assert copied.model == config and copied.model is not config
        again = pickle.loads(pickle.dumps(t))  # an open cache travels as its path
        assert again.cache == str(cache.path) and t.cache is cache
        np.testing.assert_array_equal(again.transform(TEXTS), t.transform(TEXTS))


def test_set_params_switches_the_model() -> None:
    t = EmbeddingTransformer(model=SPEC, cache=False)
    assert t.transform(TEXTS).shape == (5, 32)
    t.set_params(model="hashing?dim=16")
    assert t.transform(TEXTS).shape == (5, 16) and len(t.get_feature_names_out()) == 16


def test_subset_order_and_single_sample_invariance() -> None:
    t = EmbeddingTransformer(model=SPEC, cache=False)
    full = t.fit_transform(TEXTS)
    np.testing.assert_array_equal(t.transform(TEXTS[1:3]), full[1:3])
    np.testing.assert_array_equal(t.transform(TEXTS[::-1]), full[::-1])
    np.testing.assert_array_equal(t.transform(TEXTS[:1]), full[:1])
    assert t.transform([]).shape == (0, 32)


def test_transform_goes_through_the_cache(tmp_path: Path) -> None:
    with EmbeddingCache(tmp_path / "c.sqlite3") as cache:
        t = EmbeddingTransformer(model=SPEC, cache=cache)
        first = t.transform(TEXTS)
        spec = t.embedder.spec
        assert cache.count(spec) == 5
        cache.clear(spec)
        cache.put(spec, [embedkit.jobs.cache.text_key(TEXTS[0])], np.ones((1, 32), np.float32))
        second = t.transform(TEXTS)  # row 0 answered by the cache, the rest recomputed
        np.testing.assert_array_equal(second[0], np.ones(32, np.float32))
        np.testing.assert_array_equal(second[1:], first[1:])


# -- pipelines --------------------------------------------------------------------------------
def test_column_transformer_with_a_text_column_and_a_number() -> None:
    df = pd.DataFrame({"Text": TEXTS, "Score": [5, 1, 4, 5, 2], "Other": list("vwxyz")})
    for column in ("Text", ["Text"]):  # a Series, then a one-column DataFrame
        ct = ColumnTransformer(
            [("text", EmbeddingTransformer(model=SPEC, cache=False), column)],
            remainder="drop",
        )
        ct.set_output(transform="pandas")
        out = ct.fit_transform(df)
        assert out.shape == (5, 32)
        assert list(out.columns[:2]) == ["text__embedding_0", "text__embedding_1"]
    both = ColumnTransformer(
        [
            ("text", EmbeddingTransformer(model=SPEC, cache=False), "Text"),
            ("score", "passthrough", ["Score"]),
        ]
    )
    assert both.fit_transform(df).shape == (5, 33)


def test_sentiment_pipeline_cross_validated_on_the_reviews(reviews_csv: Path) -> None:
    task = reviews_sentiment(reviews_csv)
    pipe = make_pipeline(
        EmbeddingTransformer(model="hashing?dim=512"),
        StandardScaler(),
        LogisticRegression(max_iter=2000),
    )
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    y = np.asarray(task.labels)
    f1 = cross_val_score(pipe, list(task.texts), y, cv=folds, scoring="f1_macro")
    # the same number as the evaluate module's linear probe (same folds, same features)
    probe = task.evaluate("hashing?dim=512", cache=False)
    assert float(np.mean(f1)) == pytest.approx(probe.macro_f1, abs=1e-9)
    assert probe.macro_f1 > 0.55  # majority-class guess: 0.46


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*truncated:embedkit.errors.EmbedkitWarning")
def test_sentiment_pipeline_with_minilm(
    reviews_csv: Path, minilm: embedkit.Embedder, review_cache: EmbeddingCache
) -> None:
    """MiniLM and the hashing baseline in the same pipeline, cross-validated on the same folds.

    The spec (not the session's object) goes in the pipeline: its five clones share one
    model loaded once per process, and the vectors come from the session's cache.
    """
    task = reviews_sentiment(reviews_csv, limit=200)  # the texts test_evaluation caches too
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    scores = {}
    for name, spec in (("MiniLM", minilm.spec), ("hashing", "hashing?dim=512")):
        pipe = Pipeline(
            [
                ("embed", EmbeddingTransformer(model=spec, cache=review_cache, progress=False)),
                ("scale", StandardScaler()),
                ("clf", LogisticRegression(max_iter=2000)),
            ]
        )
        f1 = cross_val_score(
            pipe, list(task.texts), list(task.labels), cv=folds, scoring="f1_macro"
        )
        scores[name] = float(np.mean(f1))
    print(f"\nsentiment pipelines, 164 reviews, 5-fold macro-F1: {scores}")
    assert scores["MiniLM"] > scores["hashing"] + 0.05  # 0.60 vs 0.45 measured
    assert review_cache.count(minilm.spec) >= len(task.texts)


@pytest.fixture(scope="session")
def review_cache(tmp_path_factory: pytest.TempPathFactory) -> EmbeddingCache:
    """One cache file per test session, shared by the files that embed the reviews."""
    return EmbeddingCache(tmp_path_factory.getbasetemp() / "review-vectors.sqlite3")
