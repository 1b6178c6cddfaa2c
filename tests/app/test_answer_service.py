"""The answer service on real retrieval (MiniLM, Chroma, BM25) with the real or a fake generator:
degradation, citations mapping, quantized generation through the service."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from app.answer.confidence import ConfidenceFit
from app.answering import AnswerConfig, AnswerService
from app.generation.fake import FakeGenerator
from app.generation.transformers_generator import TransformersGenerator
from app.schemas import citation_out
from config.settings import Settings
from modelstore.cache import ModelCache
from modelstore.catalog import MODELS
from tests.conftest import TEST_MODELS_DIR
from wiring.compose import Services

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
QUESTION = "How often do API keys rotate?"


@pytest.fixture(scope="module")
def services(
    tmp_path_factory: pytest.TempPathFactory, test_models: ModelCache
) -> Iterator[Services]:
    root = tmp_path_factory.mktemp("answers")
    built = Services.build(
        Settings(data_dir=root / "data", models_dir=TEST_MODELS_DIR, profile="test")
    )
    built.ingestor("docs").ingest([EXAMPLES])
    yield built
    built.close()


def _service(generator: object, **config: float) -> AnswerService:
    return AnswerService(generator, "all-minilm-l6-v2", AnswerConfig(**config))  # type: ignore[arg-type]


def test_cited_answer_maps_markers_to_the_prompt_passages(services: Services) -> None:
    fake = FakeGenerator(["API keys rotate every 30 days [1]. See also [9]."])
    service = _service(fake)
    plan = service.plan(services.retriever("docs"), QUESTION, 5, None)
    assert plan.prompt is not None
    answer = service.finish(plan, service.generate(plan))
    assert "[9]" not in answer.answer  # a marker pointing nowhere is dropped
    assert [c.n for c in answer.citations] == [1]
    assert answer.citations[0].chunk_id == plan.prompt.passages[0].chunk.id
    assert answer.citations[0].hit.chunk.page == 2
    assert not answer.declined and not answer.degraded and answer.confidence > 0.5


def test_uncited_answer_gets_citations_by_overlap(services: Services) -> None:
    service = _service(FakeGenerator(["API keys rotate every 30 days."]))
    plan = service.plan(services.retriever("docs"), QUESTION, 5, None)
    answer = service.finish(plan, service.generate(plan))
    assert answer.citations and "30 days" in citation_out(answer.citations[0]).snippet


def test_model_decline_is_a_decline(services: Services) -> None:
    service = _service(FakeGenerator(["I don't know based on the provided documents."]))
    plan = service.plan(services.retriever("docs"), QUESTION, 5, None)
    answer = service.finish(plan, service.generate(plan))
    assert answer.declined and answer.citations == [] and answer.outcome == "declined"


def test_failing_generator_degrades_to_an_extractive_answer(services: Services) -> None:
    service = _service(FakeGenerator(fail_with=RuntimeError("CUDA error: device lost")))
    plan = service.plan(services.retriever("docs"), QUESTION, 5, None)
    with pytest.raises(RuntimeError):
        service.generate(plan)
    answer = service.finish(plan, None, "RuntimeError: CUDA error: device lost")
    assert answer.degraded and answer.outcome == "degraded"
    assert "30 days" in answer.answer and answer.citations[0].n == 1


def test_slow_generation_times_out_and_degrades(services: Services) -> None:
    slow = FakeGenerator(["word " * 200], seconds_per_token=0.05)
    service = _service(slow, generation_timeout_s=0.3)
    plan = service.plan(services.retriever("docs"), QUESTION, 5, None)
    generation = service.generate(plan)
    assert generation.finish_reason == "timeout"
    answer = service.finish(plan, generation)
    assert answer.degraded and "30 days" in answer.answer


def test_passages_fit_the_context_lowest_ranked_dropped(services: Services) -> None:
    small = FakeGenerator(["ok [1]"], context_window=700)
    service = _service(small, answer_max_tokens=64)
    plan = service.plan(services.retriever("docs"), QUESTION, 10, None)
    assert plan.prompt is not None and plan.prompt.dropped > 0
    kept = [h.chunk.id for h in plan.prompt.passages]
    assert kept == [h.chunk.id for h in plan.hits[: len(kept)]]


@pytest.mark.parametrize("quantization", ["int8", "int4"])
def test_quantized_generators_answer_on_cpu(
    services: Services, quantization: str, tmp_path: Path, test_models: ModelCache
) -> None:
    path = test_models.status(MODELS["smollm2-135m-instruct"]).path
    assert path is not None
    generator = TransformersGenerator(
        path,
        "smollm2-135m-instruct",
        quantization=quantization,
        device="cpu",  # type: ignore[arg-type]
        quantized_cache_dir=tmp_path / "quantized",
    )
    generator.load()  # quantizing takes seconds; the service loads at start-up, not per answer
    # Generous limit: this checks that quantized models answer, not how fast (bench/ does).
    service = _service(generator, answer_max_tokens=24, generation_timeout_s=600)
    plan = service.plan(services.retriever("docs"), QUESTION, 3, None)
    answer = service.finish(plan, service.generate(plan))
    assert answer.answer and not answer.degraded
    assert answer.completion_tokens > 0 and generator.quantization == quantization


def test_unsupported_passages_are_declined_before_generating(services: Services) -> None:
    """The answerability check: a low P(yes) declines, and the generator writes nothing."""
    fake = FakeGenerator(["API keys rotate every 30 days [1]."], judge=lambda _: 0.1)
    service = _service(fake, answerable_floor=0.3)
    plan = service.plan(services.retriever("docs"), QUESTION, 5, None)
    p = service.answerable(plan)
    assert p == 0.1 and "answerable" in plan.timings_ms
    asked = fake.judged[-1][-1]["content"]
    assert asked.endswith("Do the passages contain the answer to this question? Answer yes or no.")
    assert f"Question: {QUESTION}" in asked and "[1]" in asked  # the answer prompt's passages
    answer = service.finish(plan, None, answerable=p)
    assert answer.declined and answer.answerable == 0.1 and fake.calls == []


def test_supported_passages_are_answered_and_carry_the_check(services: Services) -> None:
    fake = FakeGenerator(["API keys rotate every 30 days [1]."], judge=lambda _: 0.9)
    service = _service(fake, answerable_floor=0.3)
    plan = service.plan(services.retriever("docs"), QUESTION, 5, None)
    p = service.answerable(plan)
    answer = service.finish(plan, service.generate(plan), answerable=p)
    assert not answer.declined and answer.answerable == 0.9 and "30 days" in answer.answer


def test_every_answer_reports_what_its_confidence_combines(services: Services) -> None:
    """The parts travel with the answer (and the API response), so evaluation runs can refit
    the weights: an answer has all three and its confidence is their weighted sum; a decline
    has its retrieval evidence only, of which its confidence is 0.4."""
    service = _service(FakeGenerator(["API keys rotate every 30 days [1]."]))
    plan = service.plan(services.retriever("docs"), QUESTION, 5, None)
    answer = service.finish(plan, service.generate(plan))
    parts = answer.parts
    assert parts is not None and parts.support is not None and parts.certainty is not None
    assert parts.retrieval == plan.evidence
    weighted = 0.4 * parts.retrieval + 0.4 * parts.support + 0.2 * parts.certainty
    assert answer.confidence == pytest.approx(weighted, abs=1e-4)
    declining = _service(FakeGenerator(["I don't know based on the provided documents."]))
    plan = declining.plan(services.retriever("docs"), QUESTION, 5, None)
    declined = declining.finish(plan, declining.generate(plan))
    assert declined.parts is not None and declined.parts.support is None
    assert declined.confidence == pytest.approx(0.4 * declined.parts.retrieval, abs=1e-4)


def test_a_fitted_confidence_is_its_probability_when_p_yes_was_asked(services: Services) -> None:
    """With a fit (DOCQA_CONFIDENCE_FIT or the catalog's), an answer's confidence and its flag
    come from the fitted P(right) of its parts and P(yes); without P(yes) the weighted sum."""
    fit = ConfidenceFit(intercept=-4.0, support=2.0, answerable=3.0)
    fake = FakeGenerator(["API keys rotate every 30 days [1]."] * 2, judge=lambda _: 0.9)
    service = _service(fake, answerable_floor=0.3, confidence_fit=fit, low_confidence=0.5)
    plan = service.plan(services.retriever("docs"), QUESTION, 5, None)
    p = service.answerable(plan)
    answer = service.finish(plan, service.generate(plan), answerable=p)
    assert answer.parts is not None
    expected = fit.probability(answer.parts, 0.9)
    assert answer.confidence == pytest.approx(expected, abs=1e-4)
    assert answer.low_confidence is (expected < 0.5)
    unasked = service.finish(plan, service.generate(plan), answerable=None)
    parts = unasked.parts
    assert parts is not None and parts.support is not None and parts.certainty is not None
    weighted = 0.4 * parts.retrieval + 0.4 * parts.support + 0.2 * parts.certainty
    assert unasked.confidence == pytest.approx(weighted, abs=1e-4)
    assert abs(weighted - expected) > 0.01  # so the two cases are told apart
    # A Chinese question gets the fit's Chinese offset (the question's language, as answered).
    by_language = _service(
        FakeGenerator(["API 密钥每 30 天轮换一次 [1]。"], judge=lambda _: 0.9),
        answerable_floor=0.3,
        confidence_fit=replace(fit, chinese=-1.5),
    )
    zh_plan = by_language.plan(services.retriever("docs"), "API 密钥多久轮换一次？", 5, None)
    zh = by_language.finish(zh_plan, by_language.generate(zh_plan), answerable=0.9)
    assert zh.parts is not None and not zh.declined
    assert zh.confidence == pytest.approx(
        replace(fit, chinese=-1.5).probability(zh.parts, 0.9, "zh"), abs=1e-4
    )
    assert zh.confidence < fit.probability(zh.parts, 0.9, "zh") - 0.01


def test_a_fitted_p_right_under_decline_below_declines_and_keeps_its_parts(
    services: Services,
) -> None:
    """DOCQA_DECLINE_BELOW: an answer the fit gives too little chance becomes a decline, in the
    question's language, with its parts kept for replays; without a fit nothing is declined."""
    fit = ConfidenceFit(intercept=-4.0, answerable=1.0)  # P(yes) 0.9 (log-odds 2.2): 0.14
    fake = FakeGenerator(["API keys rotate every 30 days [1]."] * 3, judge=lambda _: 0.9)
    strict = _service(fake, answerable_floor=0.3, confidence_fit=fit, decline_below=0.3)
    plan = strict.plan(services.retriever("docs"), QUESTION, 5, None)
    answer = strict.finish(plan, strict.generate(plan), answerable=0.9)
    assert answer.declined and answer.outcome == "declined" and answer.citations == []
    assert answer.parts is not None and answer.parts.support is not None  # kept
    assert answer.completion_tokens > 0
    lenient = _service(fake, answerable_floor=0.3, confidence_fit=fit, decline_below=0.1)
    assert not lenient.finish(plan, lenient.generate(plan), answerable=0.9).declined
    unfitted = _service(fake, answerable_floor=0.3, decline_below=0.99)
    assert not unfitted.finish(plan, unfitted.generate(plan), answerable=0.9).declined
