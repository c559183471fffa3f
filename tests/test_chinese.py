"""Chinese: jieba segmentation, Word2Vec trained on the real HSK sentences, neighbours and sentences."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import hsk_sentences_audio as hsk
import jieba  # noqa: F401
import numpy as np
import pytest

import embedkit
from embedkit import train_word2vec
from embedkit.backends.gensim import Word2VecEmbedder
from embedkit.search.kernels import cosine_similarity
from embedkit.words.tokenize import get_tokenizer


@pytest.fixture(scope="module")
def records() -> list[dict[str, object]]:
    return list(hsk.load_sentences())


@pytest.fixture(scope="module")
def zh_model(records: list[dict[str, object]]) -> Word2VecEmbedder:
    texts = [str(r["chinese"]) for r in records]
    return train_word2vec(
        texts, sg=1, dim=50, window=3, min_count=3, epochs=30, seed=1, tokenizer="jieba"
    )


def test_jieba_segments_words_and_drops_punctuation() -> None:
    tokenize = get_tokenizer("jieba")
    assert tokenize.name == "jieba"
    assert tokenize("我喜欢学习中文。") == ["我", "喜欢", "学习", "中文"]
    assert tokenize("老师，您好！Hello") == ["老师", "您好", "hello"]
    # the dependency-free default splits CJK runs into characters (issue 12), never one clause-long token
    assert get_tokenizer("words")("我喜欢学习中文。") == ["我", "喜", "欢", "学", "习", "中", "文"]


def test_chinese_neighbours_make_sense(zh_model: Word2VecEmbedder) -> None:
    words = zh_model.words
    assert "tokenizer=jieba" in zh_model.spec
    near = {w: [n.word for n in words.most_similar(w, 10)] for w in ("医生", "老师")}
    assert {"病人", "护士", "打针"} & set(near["医生"]), near
    assert {"学校", "学习", "作业", "学生"} & set(near["老师"]), near


def _topic_accuracy(vectors: np.ndarray, topics: np.ndarray) -> float:
    """Leave-one-out: how often a sentence's most similar other sentence shares its topic."""
    scores = cosine_similarity(vectors, vectors)
    np.fill_diagonal(scores, -2.0)
    return float(np.mean(topics[scores.argmax(axis=1)] == topics))


def test_sentence_similarity_finds_sentences_on_the_same_topic(
    zh_model: Word2VecEmbedder, records: list[dict[str, object]]
) -> None:
    texts = [str(r["chinese"]) for r in records]
    topics = np.array([str(r["topic"]) for r in records])
    majority = Counter(topics.tolist()).most_common(1)[0][1] / len(topics)
    mean = _topic_accuracy(zh_model.embed(texts), topics)
    sif_model = Word2VecEmbedder.from_words(zh_model.words, tokenizer="jieba", pooling="sif")
    sif = _topic_accuracy(sif_model.fit_pooling(texts).embed(texts), topics)
    # 19 topics, the largest holds 11.6% of the sentences; measured: mean 0.22, sif 0.29
    assert mean > 1.6 * majority, (mean, majority)
    assert sif > max(mean, 2 * majority), (sif, mean, majority)


def test_chinese_model_saves_and_loads_with_its_tokenizer(
    zh_model: Word2VecEmbedder, tmp_path: Path
) -> None:
    folder = zh_model.save(tmp_path / "hsk")
    again = embedkit.load(f"word2vec:{folder}")
    assert "tokenizer=jieba" in again.spec
    texts = ["今天天气很好。", "他是我的老师。"]
    np.testing.assert_array_equal(again.embed(texts), zh_model.embed(texts))
