"""Render the pictures of docs/plots.md into docs/img/ (run from the repository root).

    .venv/bin/python benchmarks/render_plots.py                  # MiniLM, as committed
    .venv/bin/python benchmarks/render_plots.py --model hashing --out /tmp/img   # fast check

The data: the tutorial's 1,000 fine-food reviews (``--reviews``, default
``../shared/data/fine_food_reviews_1k.csv`` beside the repository), labelled
positive (Score >= 4) or negative (Score <= 2), each review once; gensim's GloVe
sample for the word arrows. Prints each file with its size and, for the maps, the
distance between the two classes' centroids against the 99th percentile of the
same distance under 200 label shuffles.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from numpy.typing import NDArray

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from embedkit.evaluate import read_reviews
from embedkit.jobs.embed import embed
from embedkit.plot import embedding_map, similarity_heatmap, word_arrows
from embedkit.words.files import read_glove

REPO = Path(__file__).resolve().parents[1]
MODELS = {"minilm": "sentence-transformers:all-MiniLM-L6-v2", "hashing": "hashing?dim=512"}
HEATMAP_TEXTS = [
    "Great coffee, rich and smooth",
    "Best espresso beans I have bought",
    "My dog loves these treats",
    "The puppy goes crazy for this food",
    "Arrived stale and broken",
    "Tasted awful, threw it away",
]
WORD_PAIRS = [("he", "his"), ("they", "their"), ("is", "was"), ("are", "were"), ("has", "had")]


def sentiment_reviews(path: Path) -> tuple[list[str], list[str], list[str]]:
    """``(titles, title + text, labels)``: each distinct review once, 3-star reviews left out."""
    seen: set[str] = set()
    titles, full, labels = [], [], []
    for score, summary, text in read_reviews(path):
        if score == 3 or not summary.strip() or not text.strip() or text in seen:
            continue
        seen.add(text)
        titles.append(summary)
        full.append(f"{summary}. {text}")
        labels.append("positive" if score >= 4 else "negative")
    return titles, full, labels


def separation(fig: Figure, shuffles: int = 200) -> str:
    """Centroid distance of the two classes drawn in ``fig`` vs the 99th percentile of the
    same distance under shuffled labels (one scatter per class, in sorted label order)."""
    parts = [c.get_offsets() for c in fig.axes[0].collections]
    coords = np.concatenate(parts)
    y = np.repeat(["negative", "positive"], [len(p) for p in parts])

    def gap(lab: NDArray[np.str_]) -> float:
        return float(
            np.linalg.norm(coords[lab == "positive"].mean(0) - coords[lab != "positive"].mean(0))
        )

    rng = np.random.default_rng(0)
    null = np.percentile([gap(rng.permutation(y)) for _ in range(shuffles)], 99)
    return f"centroid gap {gap(y):.3f} vs {null:.3f} (99th pct. of {shuffles} shuffles)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="minilm")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img")
    parser.add_argument(
        "--reviews", type=Path, default=REPO.parent / "shared" / "data" / "fine_food_reviews_1k.csv"
    )
    parser.add_argument("--tsne-rows", type=int, default=706, help="rows of the t-SNE map")
    args = parser.parse_args()
    model = MODELS[args.model]
    titles, full, labels = sentiment_reviews(args.reviews)
    texts = titles if args.model == "minilm" else full  # hashing needs the words of the text
    vectors = embed(texts, model, progress=False)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    what = "titles" if args.model == "minilm" else "titles + texts"
    fig = embedding_map(
        vectors, labels, method="pca", title=f"{len(texts)} review {what} ({args.model}), PCA",
        path=out / "reviews_pca.png",
    )  # fmt: skip
    print("reviews_pca.png  ", separation(fig))
    m = min(args.tsne_rows, len(texts))
    fig = embedding_map(
        vectors[:m], labels[:m], method="tsne", seed=0,
        title=f"{m} review {what} ({args.model}), t-SNE", path=out / "reviews_tsne.png",
    )  # fmt: skip
    print("reviews_tsne.png ", separation(fig))
    similarity_heatmap(HEATMAP_TEXTS, model=model, path=out / "similarity_heatmap.png")
    from gensim.test.utils import datapath

    glove = read_glove(datapath("test_glove.txt"))
    word_arrows(
        glove, WORD_PAIRS, title="GloVe sample: pronoun -> possessive, present -> past",
        path=out / "word_arrows.png",
    )  # fmt: skip
    for png in sorted(out.glob("*.png")):
        print(f"{png.name:24} {png.stat().st_size / 1024:6.1f} KB")


if __name__ == "__main__":
    main()
