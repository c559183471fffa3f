"""embedkit.plot: real PNGs of the review sentiment map, checked as images and as coordinates.

The maps are drawn from the tutorial's reviews (positive: Score >= 4, negative:
Score <= 2, each review once). "The classes are apart" is tested against chance:
the distance between the two classes' centroids in the drawn 2-D map must exceed
the 99th percentile of the same distance under 200 random relabellings.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from gensim.test.utils import datapath
from matplotlib.figure import Figure
from matplotlib.image import imread
from numpy.typing import NDArray

from embedkit.errors import (
    ConfigError,
    DimensionMismatchError,
    InvalidInputError,
    MissingDependencyError,
    OutOfVocabularyError,
)
from embedkit.evaluate import read_reviews
from embedkit.frame import embed_frame
from embedkit.jobs.embed import embed
from embedkit.plot import (
    embedding_map,
    embedding_map_plotly,
    project,
    save,
    similarity_heatmap,
    word_arrows,
)
from embedkit.search.kernels import cosine_similarity, normalize
from embedkit.words.files import read_glove

HASHING = "hashing?dim=512"
EVIL = "<script>alert(1)</script>"
ROOT = Path(__file__).resolve().parents[1]


def sentiment(csv: Path, *, titles_only: bool = False) -> tuple[list[str], list[str]]:
    """``(texts, labels)``: each distinct review once (title + text, or the title alone)."""
    seen: set[str] = set()
    texts, labels = [], []
    for score, summary, text in read_reviews(csv):
        if score == 3 or not summary.strip() or not text.strip() or text in seen:
            continue
        seen.add(text)
        texts.append(summary if titles_only else f"{summary}. {text}")
        labels.append("positive" if score >= 4 else "negative")
    return texts, labels


def drawn(fig: Figure) -> dict[str, NDArray[np.float64]]:
    """The points of each class as drawn: legend label -> scatter offsets."""
    ax = fig.axes[0]
    names = [t.get_text() for t in ax.get_legend().get_texts()]
    return {
        name.split(" (")[0]: np.asarray(c.get_offsets())
        for name, c in zip(names, ax.collections, strict=True)
    }


def assert_apart(points: dict[str, NDArray[np.float64]]) -> None:
    pos, neg = points["positive"], points["negative"]
    coords = np.concatenate([pos, neg])
    is_pos = np.arange(len(coords)) < len(pos)

    def gap(mask: NDArray[np.bool_]) -> float:
        return float(np.linalg.norm(coords[mask].mean(0) - coords[~mask].mean(0)))

    rng = np.random.default_rng(0)
    null = [gap(rng.permutation(is_pos)) for _ in range(200)]
    assert gap(is_pos) > np.percentile(null, 99), (gap(is_pos), np.percentile(null, 99))


def assert_real_png(path: Path, size: tuple[int, int]) -> NDArray[np.float32]:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = imread(path)
    assert pixels.shape[:2] == (size[1], size[0])
    rgb = pixels[..., :3]
    ink = (rgb < 0.9).any(axis=2).mean()  # share of pixels that are not (near) white
    assert 0.01 < ink < 0.6, ink
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 50  # markers, text, antialiasing
    return rgb


def has_colour(
    rgb: NDArray[np.float32], hex_colour: str, alpha: float, min_pixels: int = 50
) -> bool:
    """At least ``min_pixels`` pixels of ``hex_colour`` drawn with ``alpha`` on white."""
    colour = np.array([int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    target = alpha * colour + (1 - alpha)
    return int((np.abs(rgb - target).max(axis=2) < 0.04).sum()) >= min_pixels


@pytest.fixture(scope="module")
def reviews(reviews_csv: Path) -> tuple[NDArray[np.float32], list[str]]:
    texts, labels = sentiment(reviews_csv)
    return embed(texts, HASHING, cache=False, progress=False), labels


def test_sentiment_map_png_has_both_classes_a_legend_and_apart_centroids(
    reviews: tuple[NDArray[np.float32], list[str]], tmp_path: Path
) -> None:
    vectors, labels = reviews
    target = tmp_path / "maps" / "reviews.png"
    fig = embedding_map(vectors, labels, method="pca", path=target, size=(7.0, 5.5))
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == [
        f"negative ({labels.count('negative')})",
        f"positive ({labels.count('positive')})",
    ]
    rgb = assert_real_png(target, (700, 550))
    alpha = fig.axes[0].collections[0].get_alpha()
    assert has_colour(rgb, "#1f77b4", alpha) and has_colour(rgb, "#ff7f0e", alpha)  # C0, C1
    points = drawn(fig)
    coords = project(vectors, "pca")
    y = np.asarray(labels)
    for name, offsets in points.items():  # the drawn points are the projection, row for row
        np.testing.assert_allclose(offsets, coords[y == name], rtol=1e-6)
    assert_apart(points)
    assert not list(target.parent.glob(".*partial"))  # written atomically, nothing left over


def test_projection_is_deterministic_and_checks_its_input(
    reviews: tuple[NDArray[np.float32], list[str]],
) -> None:
    vectors = reviews[0][:200]
    a, b = project(vectors, "pca"), project(vectors.copy(), "pca", seed=5)
    assert a.dtype == np.float32 and a.shape == (200, 2)
    np.testing.assert_array_equal(a, b)  # PCA does not depend on the seed
    np.testing.assert_allclose(a.mean(axis=0), 0.0, atol=1e-5)  # centred
    with pytest.raises(ConfigError, match="method"):
        project(vectors, "mds")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="seed"):
        project(vectors, seed=-1)
    with pytest.raises(ConfigError, match="NumPy"):
        project(vectors.tolist())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="numeric"):
        project(np.array([["a", "b"], ["c", "d"]]))
    with pytest.raises(DimensionMismatchError, match="at least 4"):
        project(vectors[:3], "tsne")
    bad = vectors[:10].copy()
    bad[7, 0] = np.nan
    with pytest.raises(InvalidInputError) as info:
        project(bad)
    assert info.value.rows == [(7, "not finite")]


@pytest.mark.slow
def test_tsne_map_is_seeded_and_keeps_neighbourhoods(
    reviews: tuple[NDArray[np.float32], list[str]], tmp_path: Path
) -> None:
    from sklearn.manifold import trustworthiness

    vectors, labels = reviews[0][:200], reviews[1][:200]
    fig = embedding_map(vectors, labels, method="tsne", seed=3, path=tmp_path / "t.png")
    assert_real_png(tmp_path / "t.png", (700, 550))
    again = project(vectors, "tsne", seed=3)
    y = np.asarray(labels)
    np.testing.assert_allclose(drawn(fig)["positive"], again[y == "positive"], rtol=1e-5)
    unit = normalize(vectors)
    chance = np.random.default_rng(0).normal(size=again.shape)
    kept = trustworthiness(unit, again, n_neighbors=5)
    assert kept > trustworthiness(unit, chance, n_neighbors=5) + 0.2, kept


@pytest.mark.slow
def test_minilm_map_of_review_titles(reviews_csv: Path, tmp_path: Path, minilm: object) -> None:
    titles, labels = sentiment(reviews_csv, titles_only=True)
    fig = embedding_map(
        titles, labels, model=minilm, method="pca", path=tmp_path / "m.svg", progress=False
    )
    assert (tmp_path / "m.svg").read_text("utf-8").lstrip().startswith("<?xml")
    assert_apart(drawn(fig))


@pytest.mark.slow
def test_umap_map_is_seeded(reviews: tuple[NDArray[np.float32], list[str]]) -> None:
    vectors = reviews[0][:150]
    a = project(vectors, "umap", seed=1)
    b = project(vectors, "umap", seed=1)
    assert a.shape == (150, 2) and a.dtype == np.float32 and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)


def test_umap_missing_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "umap", None)  # umap-learn cannot be imported
    with pytest.raises(MissingDependencyError, match="pip install umap-learn"):
        project(np.eye(6, dtype=np.float32), "umap")


def test_texts_go_through_the_job_path_and_annotate(tmp_path: Path) -> None:
    texts = ["dog food", "food for dogs", "hot sauce", "spicy sauce", "green tea", EVIL]
    labels = ["pets", "pets", "sauce", "sauce", "drinks", "drinks"]
    fig = embedding_map(texts, labels, model=HASHING, annotate=texts, cache=False, progress=False)
    notes = [t.get_text() for t in fig.axes[0].texts]
    assert notes == texts
    expected = project(embed(texts, HASHING, cache=False), "pca")
    np.testing.assert_allclose(drawn(fig)["pets"], expected[:2], rtol=1e-6)


def test_embedded_frame_coloured_by_a_column(tmp_path: Path) -> None:
    import pandas as pd

    df = pd.DataFrame(
        {
            "text": ["good tea", "great tea", "bad tea", "awful tea", "fine tea"],
            "stars": [5, 5, 1, 1, 4],
        }
    )
    ef = embed_frame(df, "hashing?dim=64", cache=False)
    fig = embedding_map(ef, "stars")
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["1 (2)", "4 (1)", "5 (2)"]
    with pytest.raises(ConfigError, match="no column 'score'"):
        embedding_map(ef, "score")
    with pytest.raises(ConfigError, match="already embedded"):
        embedding_map(ef, "stars", model="hashing?dim=64")


def test_bad_arguments_are_typed_errors(tmp_path: Path) -> None:
    vectors = np.random.default_rng(0).normal(size=(6, 8)).astype(np.float32)
    with pytest.raises(ConfigError, match="list of texts"):
        embedding_map("just one string")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError) as info:
        embedding_map(["a", 3, "c"], model=HASHING)  # type: ignore[list-item]
    assert info.value.rows == [(1, "int")]
    with pytest.raises(ConfigError, match="already embedded"):
        embedding_map(vectors, model=HASHING)
    with pytest.raises(DimensionMismatchError, match="5 labels for 6 points"):
        embedding_map(vectors, ["a"] * 5)
    with pytest.raises(InvalidInputError) as info:
        embedding_map(vectors, ["a", None, "b", "a", float("nan"), "b"])  # type: ignore[list-item]
    assert [row for row, _ in info.value.rows] == [1, 4]
    with pytest.raises(ConfigError, match="needs an EmbeddedFrame"):
        embedding_map(vectors, "label")
    with pytest.raises(ConfigError, match=r"\.png, \.svg, \.pdf"):
        embedding_map(vectors, path=tmp_path / "map.html")
    assert not list(tmp_path.iterdir())
    with pytest.raises(ConfigError, match="at most 20"):
        embedding_map(np.eye(30, dtype=np.float32), [str(i) for i in range(30)])


def test_save_writes_each_format(tmp_path: Path) -> None:
    fig = embedding_map(np.eye(5, dtype=np.float32), list("aabbc"))
    assert save(fig, tmp_path / "a.pdf").read_bytes()[:5] == b"%PDF-"
    assert "<svg" in save(fig, tmp_path / "a.svg").read_text("utf-8")
    assert save(fig, tmp_path / "a.png", dpi=50).read_bytes()[:4] == b"\x89PNG"
    assert imread(tmp_path / "a.png").shape[:2] == (275, 350)


def test_similarity_heatmap_holds_the_cosine_matrix(tmp_path: Path) -> None:
    texts = ["a dog runs", "a puppy is running", "stock market crash", EVIL]
    fig = similarity_heatmap(texts, model=HASHING, path=tmp_path / "h.png", cache=False)
    shown = np.asarray(fig.axes[0].images[0].get_array())
    vectors = embed(texts, HASHING, cache=False)
    np.testing.assert_allclose(shown, cosine_similarity(vectors, vectors), atol=1e-6)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == texts
    cells = [t.get_text() for t in fig.axes[0].texts]
    assert len(cells) == 16 and cells[0] == "1.00"
    size = (round(fig.get_figwidth() * 100), round(fig.get_figheight() * 100))
    assert_real_png(tmp_path / "h.png", size)
    with pytest.raises(ConfigError, match="1 to 40"):
        similarity_heatmap(np.eye(41, dtype=np.float32))
    with pytest.raises(ConfigError, match="4 strings"):
        similarity_heatmap(vectors, labels=["a", "b"])


def test_word_arrows_join_the_pairs(tmp_path: Path) -> None:
    glove = read_glove(datapath("test_glove.txt"))
    pairs = [("he", "his"), ("they", "their"), ("is", "was")]
    fig = word_arrows(glove, pairs, extra=["said"], path=tmp_path / "w.png")
    assert_real_png(tmp_path / "w.png", (650, 550))
    words = ["he", "his", "they", "their", "is", "was", "said"]
    coords = project(glove.lookup(words), "pca")
    where = dict(zip(words, coords.tolist(), strict=True))
    texts = [t for t in fig.axes[0].texts if t.get_text()]
    assert [t.get_text() for t in texts] == words
    arrows = [t for t in fig.axes[0].texts if t.arrow_patch is not None]
    assert len(arrows) == len(pairs)
    for arrow, (a, b) in zip(arrows, pairs, strict=True):
        np.testing.assert_allclose(arrow.xy, where[b], rtol=1e-6)
        np.testing.assert_allclose(arrow.xyann, where[a], rtol=1e-6)
    with pytest.raises(OutOfVocabularyError):
        word_arrows(glove, [("he", "zyzzyva")])
    with pytest.raises(InvalidInputError):
        word_arrows(glove, [("he",)])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="WordVectors"):
        word_arrows({"he": [0.0]}, pairs)  # type: ignore[arg-type]


def test_plotly_map_writes_html_with_escaped_hover_texts(tmp_path: Path) -> None:
    texts = ["dog food", "food for dogs", "hot sauce", "spicy sauce", "green tea", EVIL]
    labels = ["pets", "pets", "sauce", "sauce", EVIL, EVIL]
    target = tmp_path / "map.html"
    fig = embedding_map_plotly(
        texts, labels, model=HASHING, path=target, plotlyjs="cdn", cache=False, progress=False
    )
    assert [t.name for t in fig.data] == [
        "&lt;script&gt;alert(1)&lt;/script&gt; (2)",
        "pets (2)",
        "sauce (2)",
    ]
    coords = project(embed(texts, HASHING, cache=False), "pca")
    np.testing.assert_allclose(fig.data[1].x, coords[:2, 0], rtol=1e-6)
    page = target.read_text("utf-8")
    assert "<script>alert(1)</script>" not in page and "cdn.plot.ly" in page
    assert "food for dogs" in page
    fig2 = embedding_map_plotly(coords, path=tmp_path / "map.json")
    assert '"type":"scatter"' in (tmp_path / "map.json").read_text("utf-8").replace(" ", "")
    assert [t.name for t in fig2.data] == ["points"]
    with pytest.raises(ConfigError, match=r"\.html, \.json"):
        embedding_map_plotly(coords, path=tmp_path / "map.png")


@pytest.mark.slow
def test_render_script_writes_small_pngs(reviews_csv: Path, tmp_path: Path) -> None:
    script = ROOT / "benchmarks" / "render_plots.py"
    args = ["--model", "hashing", "--out", str(tmp_path), "--reviews", str(reviews_csv)]
    done = subprocess.run(
        [sys.executable, str(script), *args, "--tsne-rows", "120"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    names = sorted(p.name for p in tmp_path.glob("*.png"))
    assert names == sorted(p.name for p in (ROOT / "docs" / "img").glob("*.png"))
    for png in tmp_path.glob("*.png"):
        assert png.stat().st_size < 150_000, png
        imread(png)
    assert "centroid gap" in done.stdout


def test_chinese_labels_get_a_cjk_font_or_one_clear_warning(tmp_path: Path) -> None:
    from matplotlib import font_manager

    from embedkit.plot.figures import CJK_FONTS

    vectors = np.random.default_rng(0).normal(size=(12, 8)).astype(np.float32)
    labels = ["好评"] * 6 + ["差评"] * 6
    installed = {f.name for f in font_manager.fontManager.ttflist} & set(CJK_FONTS)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        fig = embedding_map(vectors, labels, method="pca", path=tmp_path / "zh.png")
    ours = [w for w in seen if "Chinese/Japanese/Korean" in str(w.message)]
    glyphs = [w for w in seen if "missing from font" in str(w.message)]
    legend = fig.axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["好评 (6)", "差评 (6)"]
    if installed:
        assert not ours and not glyphs
        assert legend.get_texts()[0].get_fontfamily()[0] in installed
    else:
        assert len(ours) == 1 and not glyphs  # one actionable warning, not one per glyph
    assert (tmp_path / "zh.png").stat().st_size > 0
