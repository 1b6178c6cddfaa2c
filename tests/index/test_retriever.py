"""Retrieval over the sample corpus with the real test embedder, Chroma and BM25."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.errors import OverloadedError
from config.settings import Settings
from index.fusion import reciprocal_rank_fusion
from index.reranker import LLMReranker
from index.types import Chunk, Hit
from modelstore.cache import ModelCache
from wiring.compose import Services

REPO = Path(__file__).resolve().parents[2]
QUESTIONS = [
    json.loads(line)
    for line in (REPO / "tests" / "data" / "example_questions.jsonl").read_text().splitlines()
]


@pytest.fixture(scope="module")
def indexed(
    tmp_path_factory: pytest.TempPathFactory, test_models: ModelCache
) -> Iterator[Services]:
    from tests.conftest import TEST_MODELS_DIR

    root = tmp_path_factory.mktemp("retrieval")
    shutil.copytree(REPO / "examples", root / "corpus")
    services = Services.build(
        Settings(data_dir=root / "data", models_dir=TEST_MODELS_DIR, profile="test")
    )
    report = services.ingestor("docs").ingest([root / "corpus"])
    assert report.files_new == 5
    yield services
    services.close()


def _chunk(cid: str) -> Chunk:
    return Chunk(cid, f"text {cid}", "d", "s", "t", 0, 0, 1)


def test_rrf_by_hand() -> None:
    dense = [Hit(_chunk("a"), 0.9), Hit(_chunk("b"), 0.8), Hit(_chunk("c"), 0.7)]
    keyword = [Hit(_chunk("c"), 12.0), Hit(_chunk("d"), 3.0)]
    fused = reciprocal_rank_fusion({"dense": dense, "keyword": keyword}, rrf_k=60)
    assert [h.chunk.id for h in fused] == ["c", "a", "b", "d"]
    c = fused[0]
    assert c.score == pytest.approx(1 / 63 + 1 / 61)
    assert c.scores["dense"] == 0.7 and c.scores["keyword"] == 12.0
    assert c.scores["dense_rank"] == 3 and c.scores["keyword_rank"] == 1


@pytest.mark.parametrize("mode", ["dense", "keyword", "hybrid"])
def test_english_questions_find_their_document(indexed: Services, mode: str) -> None:
    retriever = indexed.retriever("docs")
    english = [
        q for q in QUESTIONS if q["lang"] == "en" and q["source"] and "zh" not in q["source"]
    ]
    found = 0
    for q in english:
        result = retriever.retrieve(q["question"], k=5, mode=mode)  # type: ignore[arg-type]
        assert len(result.hits) <= 5
        found += any(h.chunk.source.endswith(q["source"]) for h in result.hits)
    # MiniLM is English-only, but these English questions have English passages
    assert found >= len(english) - 1, f"{mode}: {found}/{len(english)}"


def test_hybrid_hits_carry_each_stage_score_and_timings(indexed: Services) -> None:
    result = indexed.retriever("docs").retrieve("How often do API keys rotate?", k=3)
    top = result.hits[0]
    assert top.chunk.page == 2 and "30 days" in top.chunk.text
    assert {"convex"} <= set(top.scores) and ({"dense", "keyword"} & set(top.scores))
    assert set(result.timings_ms) == {"embed", "retrieve", "rerank"}


def test_chinese_question_found_by_keywords(indexed: Services) -> None:
    result = indexed.retriever("docs").retrieve("新员工需要在入职第几天之前完成信息安全培训？", k=3)
    assert any(h.chunk.source.endswith("onboarding.zh.docx") for h in result.hits)


def test_filters_restrict_by_source_and_doc_id(indexed: Services) -> None:
    retriever = indexed.retriever("docs")
    runbook = next(s for s in (h.chunk.source for h in retriever.retrieve("rollback", 5).hits))
    for mode in ("dense", "keyword", "hybrid"):
        hits = retriever.retrieve(
            "API keys",
            k=5,
            filters={"source": runbook},
            mode=mode,  # type: ignore[arg-type]
        ).hits
        assert hits and all(h.chunk.source == runbook for h in hits)
    doc_id = retriever.retrieve("rollback", 1).hits[0].chunk.doc_id
    hits = retriever.retrieve("anything", k=5, filters={"doc_id": [doc_id]}).hits
    assert hits and all(h.chunk.doc_id == doc_id for h in hits)


@pytest.mark.usefixtures("test_models")  # prepares the real models, and marks the test slow
def test_the_reranker_shares_the_generator_and_its_queue(tmp_path: Path) -> None:
    """Built with the services (not on a first request), scoring with the loaded generator's
    weights (no second copy), through the generation queue: a full queue refuses it."""
    from tests.conftest import TEST_MODELS_DIR

    services = Services.build_for_serving(
        Settings(
            data_dir=tmp_path / "data",
            models_dir=TEST_MODELS_DIR,
            profile="test",
            rerank=True,
            queue_size=1,
        )
    )
    try:
        services.ingestor("docs").ingest([REPO / "examples" / "security-policy.pdf"])
        retriever = services.retriever("docs")
        assert isinstance(retriever.reranker, LLMReranker)
        assert retriever.reranker.judge is services.answers.generator
        hits = retriever.retrieve("How often do API keys rotate?", k=3).hits
        assert all("rerank" in h.scores for h in hits)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        # The scores are the generator's own answers (SmolLM2-135M is no judge of quality: the
        # reranker's gain is measured with the 0.5B model, in docs/BENCHMARKS.md).
        top = hits[0]
        asked = retriever.reranker.messages("How often do API keys rotate?", top.chunk.text)
        again = services.answers.generator.yes_probability([asked])[0]
        assert top.scores["rerank"] == pytest.approx(again, abs=2e-3)

        release = threading.Event()
        busy = services.asks.queue.submit(release.wait)  # the one slot, taken
        try:
            with pytest.raises(OverloadedError):
                retriever.retrieve("How often do API keys rotate?", k=3)
        finally:
            release.set()
            busy.result(timeout=10)
        assert retriever.retrieve("How often do API keys rotate?", k=3).hits
    finally:
        services.close()
