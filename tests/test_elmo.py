"""The ELMo backend: published file layout, equations (vs numpy and vs TensorFlow's outputs),
contextual vectors, batching, the on_long path, spec round trip and typed errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import embedkit
from elmo_reference import ReferenceElmo
from embedkit.backends.elmo.embedder import ElmoEmbedder
from embedkit.backends.elmo.files import find_files, read_weights, write_random_weights
from embedkit.errors import (
    ConfigError,
    CorruptFileError,
    EmbedkitWarning,
    OutOfVocabularyError,
    TextTooLongError,
)

FIXTURE = Path(__file__).parent / "elmo_allennlp"
SENTENCES = [
    "The bank raised its interest rates .",
    "We had a picnic on the river bank !",
    "bank",
    "Ünïcödé naïve café — 北京欢迎你 and a verylongtokenthatgoesonandonandonforeverandeverandeveragain",
]
BANK_A, BANK_B = SENTENCES[0], SENTENCES[1]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small random model, in the published layout: 2 highway, 4 filters, P 16, cell 64."""
    where = tmp_path_factory.mktemp("elmo")
    write_random_weights(where, seed=3, projection_dim=16, cell_dim=64, cell_clip=1.0)
    return where


@pytest.fixture(scope="module")
def elmo(folder: Path) -> ElmoEmbedder:
    return ElmoEmbedder(str(folder), batch_size=3)


@pytest.fixture(scope="module")
def reference(folder: Path) -> ReferenceElmo:
    return ReferenceElmo(folder)


# ------------------------------------------------------------------ the equations
def test_every_layer_matches_the_numpy_reference(
    elmo: ElmoEmbedder, reference: ReferenceElmo
) -> None:
    for text in SENTENCES:
        tokens = elmo.tokenize(text)
        got = elmo.layer_vectors(text)
        want = reference.layers(tokens)
        assert got.shape == want.shape == (3, len(tokens), 32)
        assert np.abs(got - want).max() < 1e-5, text
        assert np.abs(want[1:]).max() > 0.05  # the LSTM layers carry signal, not zeros


def test_clipping_binds_and_is_followed(folder: Path, elmo: ElmoEmbedder, tmp_path: Path) -> None:
    """The fixture's cell_clip=1 changes the vectors, and torch and numpy agree with and
    without it; |h| <= proj_clip per LSTM output (layer 2 adds layer 1: <= 2 * proj_clip)."""
    shutil.copytree(folder, tmp_path / "m")
    options = json.loads((folder / "options.json").read_text("utf-8"))
    options["lstm"]["cell_clip"] = 0  # 0: no clipping, as in AllenNLP
    (tmp_path / "m" / "options.json").write_text(json.dumps(options), "utf-8")
    text = " ".join(SENTENCES)
    clipped, free = elmo.layer_vectors(text), ElmoEmbedder(str(tmp_path / "m")).layer_vectors(text)
    assert np.abs(clipped[1:] - free[1:]).max() > 1e-3
    assert np.array_equal(clipped[0], free[0])
    tokens = elmo.tokenize(text)
    assert np.abs(free - ReferenceElmo(tmp_path / "m").layers(tokens)).max() < 1e-5
    assert np.abs(clipped[1]).max() <= 3.0 + 1e-6 and np.abs(clipped[2]).max() <= 6.0 + 1e-6


def test_pooled_and_mixed_vectors_match_the_reference(
    folder: Path, reference: ReferenceElmo
) -> None:
    mix = [0.3, -1.2, 0.8]
    model = ElmoEmbedder(str(folder), scalar_mix="0.3,-1.2,0.8", gamma=1.7, normalize=False)
    got = model.embed(SENTENCES)
    want = np.stack([reference.mixed(model.tokenize(t), mix, 1.7).mean(axis=0) for t in SENTENCES])
    assert np.abs(got - want).max() < 1e-5
    top = ElmoEmbedder(str(folder), layer=2, pooling="max").embed(SENTENCES)
    want_top = np.stack([reference.layers(model.tokenize(t))[2].max(axis=0) for t in SENTENCES])
    want_top /= np.linalg.norm(want_top, axis=1, keepdims=True)
    assert np.abs(top - want_top).max() < 1e-5


def test_tanh_activation_and_no_clipping(tmp_path: Path) -> None:
    write_random_weights(
        tmp_path, seed=5, activation="tanh", cell_clip=0.0, proj_clip=0.0, n_highway=1
    )
    model, ref = ElmoEmbedder(str(tmp_path)), ReferenceElmo(tmp_path)
    for text in SENTENCES[:2]:
        assert np.abs(model.layer_vectors(text) - ref.layers(model.tokenize(text))).max() < 1e-5


def _tf_first_batch() -> tuple[list[list[str]], list[np.ndarray]]:
    sentences = json.loads((FIXTURE / "sentences.json").read_text("utf-8"))
    batch = [sentences[k][0].split() for k in range(3)]
    expected = []
    for k in range(3):
        with h5py.File(FIXTURE / f"lm_embeddings_{k}.hdf5", "r") as fh:
            top = fh["0"][...]
        expected.append(np.concatenate([top[0], top[1]], axis=-1))
    return batch, expected


def test_matches_tensorflow_bilm_outputs_of_the_allennlp_fixture() -> None:
    """Weights written by bilm-tf, outputs computed by bilm-tf (first batch, zero states)."""
    batch, expected = _tf_first_batch()
    model = ElmoEmbedder(str(FIXTURE), tokenizer="whitespace", layer=2, batch_size=3)
    ref = ReferenceElmo(FIXTURE, weights_name="lm_weights.hdf5")
    assert [len(t) for t in batch] == [50, 16, 53]
    for tokens, want in zip(batch, expected, strict=True):
        text = " ".join(tokens)
        assert model.tokenize(text) == tokens
        assert np.abs(model.token_vectors(text).vectors - want).max() < 1e-5
        assert np.abs(ref.layers(tokens)[2] - want).max() < 1e-5
    # the three sentences in one padded batch give the same vectors
    pooled = model.embed([" ".join(t) for t in batch])
    want_pooled = np.stack([w.mean(axis=0) for w in expected])
    want_pooled /= np.linalg.norm(want_pooled, axis=1, keepdims=True)
    assert np.abs(pooled - want_pooled).max() < 1e-5


# ------------------------------------------------------------ contextual property
def test_same_word_differs_by_context_but_not_in_the_char_layer(elmo: ElmoEmbedder) -> None:
    for layer, same in ((0, True), (1, False), (2, False)):
        a = elmo.token_vectors(BANK_A, layer=layer).vector_of("bank")
        b = elmo.token_vectors(BANK_B, layer=layer).vector_of("bank")
        cos = float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
        if same:
            assert np.array_equal(a, b)
        else:
            assert cos < 0.999, (layer, cos)
    mixed = elmo.token_vectors(BANK_A)
    assert mixed.vectors.shape == (len(mixed.tokens), elmo.dim)
    assert BANK_A[slice(*mixed.spans[1])] == "bank"
    with pytest.raises(OutOfVocabularyError):
        mixed.vector_of("river")
    with pytest.raises(ConfigError):
        elmo.token_vectors(BANK_A, layer=3)


# ---------------------------------------------------------------------- batching
def test_vectors_do_not_depend_on_the_batch(folder: Path) -> None:
    alone = np.stack([ElmoEmbedder(str(folder)).embed([t])[0] for t in SENTENCES])
    for batch_size in (1, 2, 32):
        model = ElmoEmbedder(str(folder), batch_size=batch_size)
        order = [3, 0, 2, 1]
        shuffled = model.embed([SENTENCES[i] for i in order])
        assert np.abs(shuffled - alone[order]).max() < 1e-6
        padded = model.embed([*SENTENCES, "a much longer sentence " * 20])
        assert np.abs(padded[:4] - alone).max() < 1e-6


def test_empty_input_and_shapes(elmo: ElmoEmbedder) -> None:
    assert elmo.embed([]).shape == (0, 32) and elmo.embed([]).dtype == np.float32
    one = elmo.embed("bank")
    assert one.shape == (1, 32) and abs(float(np.linalg.norm(one)) - 1.0) < 1e-6
    with pytest.raises(embedkit.errors.InvalidInputError):
        elmo.embed(["fine", "  "])


# --------------------------------------------------------------- tokens, on_long
def test_tokenizers() -> None:
    from embedkit.backends.elmo.chars import char_ids, token_spans

    text = "Don't stop! 北京欢迎你 ok"
    punct = [text[a:b] for a, b in token_spans(text, "punct")]
    assert punct == ["Don", "'", "t", "stop", "!", "北", "京", "欢", "迎", "你", "ok"]
    assert [text[a:b] for a, b in token_spans(text, "whitespace")] == text.split()
    ids = char_ids([["ab"], []], 50)
    assert ids.shape == (2, 3, 50)
    assert ids[0, 1, :5].tolist() == [259, 98, 99, 260, 261]  # bow a b eow pad, +1
    assert ids[0, 0, :4].tolist() == [259, 257, 260, 261] and ids[0, 2, 1] == 258
    assert (ids[1, 2] == 0).all()  # past </S>: no token
    assert char_ids([["x" * 60]], 50)[0, 1, 49] == 260  # 48 bytes kept, then eow


def test_on_long_policies(folder: Path) -> None:
    long_text = " ".join(f"w{i}" for i in range(10))
    trunc = ElmoEmbedder(str(folder), max_tokens=4)
    with pytest.warns(EmbedkitWarning, match="truncated"):
        got = trunc.embed([long_text, "short one"])
    assert np.allclose(got[0], trunc.embed(["w0 w1 w2 w3"])[0], atol=1e-6)
    chunk = ElmoEmbedder(str(folder), max_tokens=4, on_long="chunk", normalize=False)
    pieces = chunk.embed(["w0 w1 w2 w3", "w4 w5 w6 w7", "w8 w9"])
    want = (4 * pieces[0] + 4 * pieces[1] + 2 * pieces[2]) / np.linalg.norm(
        4 * pieces[0] + 4 * pieces[1] + 2 * pieces[2]
    )
    assert np.allclose(chunk.embed([long_text])[0], want, atol=1e-5)
    with pytest.raises(TextTooLongError) as err:
        ElmoEmbedder(str(folder), max_tokens=4, on_long="error").embed(["ok", long_text])
    assert err.value.positions == [1]
    unlimited = ElmoEmbedder(str(folder), max_tokens=None)
    assert unlimited.max_tokens is None and unlimited.embed([long_text]).shape == (1, 32)


# ---------------------------------------------------------------- spec, registry
def test_spec_records_options_and_rebuilds_the_same_model(folder: Path) -> None:
    model = ElmoEmbedder(
        str(folder), scalar_mix="1,0,-1", gamma=0.5, pooling="max", tokenizer="whitespace"
    )
    spec = model.spec
    assert spec.startswith(f"elmo:{folder}?")
    for part in (
        "gamma=0.5",
        "layer=mix",
        "pooling=max",
        "scalar_mix=1.0,0.0,-1.0",
        "tokenizer=whitespace",
    ):
        assert part in spec
    again = embedkit.load(spec)
    assert isinstance(again, ElmoEmbedder) and again.spec == spec
    assert np.array_equal(again.embed(SENTENCES), model.embed(SENTENCES))
    top = embedkit.load(f"elmo:{folder}?layer=2")
    assert "layer=2" in top.spec and "scalar_mix" not in top.spec
    assert not np.allclose(top.embed(SENTENCES), model.embed(SENTENCES))
    plain = ElmoEmbedder(str(folder))
    assert "scalar_mix" not in plain.spec
    assert embedkit.registry.same_model(f"elmo:{folder}", plain.spec)
    assert embedkit.load(f"elmo:{folder}?scalar_mix=0,0,0").spec == plain.spec
    assert (
        embedkit.load({"backend": "elmo", "model": str(folder), "layer": 1}).spec
        == ElmoEmbedder(str(folder), layer=1).spec
    )


def test_the_job_path_and_its_cache(elmo: ElmoEmbedder, tmp_path: Path) -> None:
    """embedkit.embed (the one text->vectors path) with a cache gives the backend's vectors."""
    cache = tmp_path / "cache.sqlite"
    first = embedkit.embed(SENTENCES, elmo, cache=str(cache), batch_size=2)
    again = embedkit.embed(SENTENCES, elmo.spec, cache=str(cache))
    assert np.allclose(first, elmo.embed(SENTENCES), atol=1e-6)
    assert np.array_equal(first, again)


def test_published_file_names_are_found(folder: Path, tmp_path: Path) -> None:
    shutil.copy(folder / "options.json", tmp_path / "elmo_2x16_32_options.json")
    shutil.copy(folder / "weights.hdf5", tmp_path / "elmo_2x16_32_weights.hdf5")
    files = find_files(tmp_path)
    assert files.weights.name == "elmo_2x16_32_weights.hdf5"
    assert np.array_equal(
        ElmoEmbedder(str(tmp_path)).embed(["bank"]), ElmoEmbedder(str(folder)).embed(["bank"])
    )
    shutil.copy(folder / "weights.hdf5", tmp_path / "other_weights.hdf5")
    with pytest.raises(ConfigError, match="exactly one"):
        find_files(tmp_path)


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"layer": 3}, "layer"),
        ({"layer": True}, "layer"),
        ({"layer": "top"}, "layer"),
        ({"scalar_mix": "1,2"}, "scalar_mix"),
        ({"scalar_mix": "a,b,c"}, "scalar_mix"),
        ({"scalar_mix": [0.0, 0.0, 0.0]}, "scalar_mix"),
        ({"layer": 1, "gamma": 2.0}, "layer='mix'"),
        ({"normalize": "false"}, "normalize"),
        ({"batch_size": 2.0}, "batch_size"),
        ({"batch_size": 0}, "batch_size"),
        ({"pooling": "cls"}, "pooling"),
        ({"tokenizer": "jieba"}, "tokenizer"),
        ({"on_long": "drop"}, "on_long"),
        ({"device": "cuda:7"}, "device"),
    ],
)
def test_bad_options_are_typed_errors(folder: Path, options: dict[str, object], error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        ElmoEmbedder(str(folder), **options)  # type: ignore[arg-type]


# ------------------------------------------------------------------ broken files
def _broken(folder: Path, tmp_path: Path, edit: str) -> Path:
    shutil.copytree(folder, tmp_path / "m")
    where = tmp_path / "m"
    with h5py.File(where / "weights.hdf5", "a") as fh:
        if edit == "missing":
            del fh["RNN_1/RNN/MultiRNNCell/Cell1/LSTMCell/W_P_0"]
        elif edit == "shape":
            del fh["CNN_high_1/W_carry"]
            fh["CNN_high_1/W_carry"] = np.zeros((60, 59), np.float32)
        elif edit == "nan":
            fh["CNN_proj/b_proj"][3] = np.nan
    return where


@pytest.mark.parametrize(
    ("edit", "names"), [("missing", "W_P_0"), ("shape", "W_carry"), ("nan", "b_proj")]
)
def test_corrupt_weights_name_the_dataset(
    folder: Path, tmp_path: Path, edit: str, names: str
) -> None:
    with pytest.raises(CorruptFileError, match=names):
        ElmoEmbedder(str(_broken(folder, tmp_path, edit)))


def test_mismatched_and_unreadable_files(folder: Path, tmp_path: Path) -> None:
    where = tmp_path / "m"
    shutil.copytree(folder, where)
    options = json.loads((where / "options.json").read_text("utf-8"))
    options["lstm"]["dim"] = 48  # the weights were written for cell 64
    (where / "options.json").write_text(json.dumps(options), "utf-8")
    with pytest.raises(CorruptFileError, match=r"W_0.*\(32, 192\)"):
        read_weights(find_files(where))
    for key, value, error in (
        ("use_skip_connections", False, ConfigError),
        ("n_layers", "2", CorruptFileError),
    ):
        options = json.loads((folder / "options.json").read_text("utf-8"))
        options["lstm"][key] = value
        (where / "options.json").write_text(json.dumps(options), "utf-8")
        with pytest.raises(error):
            ElmoEmbedder(str(where))
    (where / "options.json").write_text("{not json", "utf-8")
    with pytest.raises(CorruptFileError, match="options"):
        ElmoEmbedder(str(where))
    shutil.copy(folder / "options.json", where / "options.json")
    (where / "weights.hdf5").write_bytes(b"\x89HDF\r\n garbage")
    with pytest.raises(CorruptFileError, match="HDF5"):
        ElmoEmbedder(str(where))
    with pytest.raises(ConfigError, match="does not exist"):
        ElmoEmbedder(str(tmp_path / "nowhere"))


def test_missing_extra_names_it(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "h5py", None)  # import h5py now fails
    with pytest.raises(embedkit.errors.MissingDependencyError, match=r"embedkit\[elmo\]"):
        ElmoEmbedder(str(folder))


def test_importing_the_backend_is_light() -> None:
    code = (
        "import sys, embedkit.backends.elmo.embedder, embedkit.backends.elmo.files; "
        "print(','.join(m for m in ('torch', 'h5py') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
