"""Chunking invariants: offsets are provenance, budgets hold, structure is respected."""

from __future__ import annotations

import itertools

import pytest

from index.types import chunk_id, document_id
from ingest.chunker import Chunker, ChunkerConfig
from ingest.types import Block, ParsedDocument


def words(text: str) -> int:
    """A stand-in tokenizer: one token per word, one per CJK character."""
    return sum(len(w) if any("\u4e00" <= ch <= "\u9fff" for ch in w) else 1 for w in text.split())


def _doc() -> ParsedDocument:
    long_para = " ".join(f"Sentence number {i} says something about deploys." for i in range(40))
    return ParsedDocument(
        title="Runbook",
        blocks=[
            Block("Runbook", "heading", heading_path=(), level=1),
            Block("Intro paragraph.", heading_path=("Runbook",)),
            Block("Rollback", "heading", heading_path=("Runbook",), level=2),
            Block(long_para, heading_path=("Runbook", "Rollback")),
            Block("| a | b |\n| 1 | 2 |", "table", heading_path=("Runbook", "Rollback")),
            Block("Page two text.", page=2, heading_path=("Runbook", "Rollback")),
        ],
    )


def test_chunk_text_is_exactly_the_document_span() -> None:
    doc = _doc()
    chunks = Chunker(words, ChunkerConfig(max_tokens=40, overlap_tokens=8)).chunk(doc, "d", "s")
    text = doc.text
    for c in chunks:
        assert text[c.start : c.end] == c.text
    assert [c.chunk_index for c in chunks] == list(range(len(chunks)))


def test_budget_holds_and_long_blocks_split_on_sentences_with_overlap() -> None:
    chunks = Chunker(words, ChunkerConfig(max_tokens=40, overlap_tokens=8)).chunk(_doc(), "d", "s")
    assert all(words(c.text) <= 40 for c in chunks)
    rollback = [c for c in chunks if c.heading_path == ("Runbook", "Rollback") and c.page is None]
    assert len(rollback) > 3
    for c in rollback[:-1]:
        assert c.text.rstrip().endswith((".", "|")), c.text[-30:]
    # consecutive chunks of the long paragraph overlap
    assert any(b.start < a.end for a, b in itertools.pairwise(rollback))


def test_sections_follow_headings_and_pages() -> None:
    chunks = Chunker(words, ChunkerConfig(max_tokens=400, overlap_tokens=8)).chunk(_doc(), "d", "s")
    paths = [(c.heading_path, c.page) for c in chunks]
    assert paths == [
        (("Runbook",), None),
        (("Runbook", "Rollback"), None),
        (("Runbook", "Rollback"), 2),
    ]
    assert chunks[0].text.startswith("Runbook")  # a heading goes with the text under it
    assert "| a | b |\n| 1 | 2 |" in chunks[1].text  # a table that fits is kept whole


def test_chinese_splits_on_chinese_punctuation_and_never_exceeds_budget() -> None:
    para = "数据保留期为九十天。" * 30 + "维护窗口在每周二凌晨！" * 10
    doc = ParsedDocument("常见问题", [Block(para)])
    chunks = Chunker(words, ChunkerConfig(max_tokens=50, overlap_tokens=10)).chunk(doc, "d", "s")
    assert len(chunks) > 3
    for c in chunks:
        assert words(c.text) <= 50
        assert c.text.endswith(("。", "！"))


def test_a_sentence_longer_than_the_budget_is_cut_between_words() -> None:
    para = " ".join(f"word{i}" for i in range(100))
    chunks = Chunker(words, ChunkerConfig(max_tokens=30, overlap_tokens=0)).chunk(
        ParsedDocument("t", [Block(para)]), "d", "s"
    )
    assert all(words(c.text) <= 30 for c in chunks)
    rebuilt = " ".join(c.text for c in chunks).split()
    assert rebuilt == para.split()  # no word was cut in two, none lost


def test_ids_are_content_derived_and_stable() -> None:
    chunker = Chunker(words, ChunkerConfig(max_tokens=40, overlap_tokens=8))
    doc_id = document_id("/docs/runbook.md")
    first = chunker.chunk(_doc(), doc_id, "/docs/runbook.md")
    second = chunker.chunk(_doc(), doc_id, "/docs/runbook.md")
    assert [c.id for c in first] == [c.id for c in second]
    assert len({c.id for c in first}) == len(first)
    assert first[0].id == chunk_id(doc_id, first[0].text, 0)
    other = chunker.chunk(_doc(), document_id("/other.md"), "/other.md")
    assert not {c.id for c in first} & {c.id for c in other}


def test_real_tokenizer_budget(test_models: object) -> None:
    from index.embedders import SentenceTransformerEmbedder
    from modelstore.cache import ModelCache
    from modelstore.catalog import MODELS
    from tests.conftest import TEST_MODELS_DIR

    path = ModelCache(TEST_MODELS_DIR).status(MODELS["all-minilm-l6-v2"]).path
    assert path is not None
    embedder = SentenceTransformerEmbedder(path, "all-minilm-l6-v2", device="cpu")
    text = "Orbit deploys services with canaries. " * 200 + "运维团队负责发布。" * 50
    doc = ParsedDocument("t", [Block(text)])
    chunks = Chunker(embedder.count_tokens, ChunkerConfig(max_tokens=128, overlap_tokens=16)).chunk(
        doc, "d", "s"
    )
    assert all(embedder.count_tokens(c.text) <= 128 for c in chunks)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="overlap"):
        ChunkerConfig(max_tokens=100, overlap_tokens=60)
