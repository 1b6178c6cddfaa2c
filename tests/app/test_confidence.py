"""The confidence formula: retrieval evidence, support, certainty; hand-computed cases."""

from __future__ import annotations

import math

import pytest

from app.answer.confidence import (
    ConfidenceWeights,
    DenseCalibration,
    EvidenceConfig,
    answer_confidence,
    calibration_for,
    certainty_score,
    combine,
    retrieval_evidence,
    support_score,
)
from app.answer.units import content_units
from tests.app.conftest import make_hit

MINILM = EvidenceConfig(calibration_for("all-minilm-l6-v2"))  # cosine 0.25 -> 0, 0.55 -> 1
E5 = EvidenceConfig(calibration_for("multilingual-e5-small"))  # cosine 0.80 -> 0, 0.90 -> 1


def evidence(config: EvidenceConfig, **scores: float) -> float:
    return retrieval_evidence([make_hit(1, "text", **scores)], config)


def test_retrieval_evidence_hand_computed() -> None:
    # dense 1.0, agreement 2 / (1 + 1) = 1 -> 0.75 * 1 + 0.25 * 1
    assert evidence(MINILM, dense=0.60, dense_rank=1, keyword_rank=1) == pytest.approx(1.0)
    # dense (0.40 - 0.25) / 0.30 = 0.5, agreement 2 / (1 + 3) = 0.5 -> 0.375 + 0.125
    assert evidence(MINILM, dense=0.40, dense_rank=1, keyword_rank=3) == pytest.approx(0.5)
    # found by dense only: no agreement -> 0.75 * 0.5
    assert evidence(MINILM, dense=0.40, dense_rank=1) == pytest.approx(0.375)
    # e5: (0.88 - 0.80) / 0.10 = 0.8 -> 0.6 + 0.25
    assert evidence(E5, dense=0.88, dense_rank=1, keyword_rank=1) == pytest.approx(0.85)


def test_off_topic_questions_fall_under_the_floor_and_related_ones_do_not() -> None:
    floor = 0.2
    # Typical top cosines measured on the sample corpus (see the module docstring).
    assert evidence(MINILM, dense=0.15, dense_rank=1) < floor
    assert evidence(MINILM, dense=0.24, dense_rank=1, keyword_rank=1) < floor  # no rescue
    assert evidence(MINILM, dense=0.42, dense_rank=1, keyword_rank=1) > 0.5
    assert evidence(E5, dense=0.76, dense_rank=1) < floor
    assert evidence(E5, dense=0.89, dense_rank=1, keyword_rank=1) > 0.8


def test_best_of_the_first_hits_counts_and_keyword_only_hits_are_weak() -> None:
    keyword_only_hit = make_hit(1, "a", keyword=12.0, keyword_rank=1)
    dense_hit = make_hit(2, "b", dense=0.40, dense_rank=1, keyword_rank=3)
    assert retrieval_evidence([keyword_only_hit, dense_hit], MINILM) == pytest.approx(0.5)
    assert retrieval_evidence([keyword_only_hit], MINILM) == pytest.approx(0.5)  # neutral
    assert retrieval_evidence([], MINILM) == 0.0
    deep = [make_hit(i, "x", dense=0.1, dense_rank=i) for i in range(1, 4)] + [dense_hit]
    assert retrieval_evidence(deep, MINILM) == 0.0  # beyond depth 3


def test_rerank_score_is_blended_in() -> None:
    # 0.5 * 0.375 + 0.5 * 0.9
    assert evidence(MINILM, dense=0.40, dense_rank=1, rerank=0.9) == pytest.approx(0.6375)


def test_calibration_is_configurable() -> None:
    config = EvidenceConfig(DenseCalibration(0.0, 1.0), agreement_weight=0.0)
    assert evidence(config, dense=0.3, dense_rank=1, keyword_rank=1) == pytest.approx(0.3)
    assert calibration_for("unknown-embedder") == EvidenceConfig().calibration
    with pytest.raises(ValueError):
        DenseCalibration(0.5, 0.5)


def test_support_english_hand_computed() -> None:
    # units: api keys rotate 30 days; the passage has api keys rotate -> 3 / 5
    assert content_units("API keys rotate every 30 days.") == [
        "api",
        "keys",
        "rotate",
        "30",
        "days",
    ]
    assert support_score("API keys rotate every 30 days [1].", ["API keys rotate monthly."]) == 0.6
    assert support_score("API keys rotate every 30 days.", ["Every 30 days API keys rotate."]) == 1
    assert support_score("The cafeteria opens.", ["API keys rotate."]) == 0.0
    assert support_score("", ["anything"]) == 0.0


def test_support_chinese_uses_character_bigrams() -> None:
    # answer units: 日志 志保 保留 90 天 (5); the passage's bigrams include 日志 志保 保留 -> 3 / 5
    assert content_units("日志保留90天") == ["日志", "志保", "保留", "90", "天"]
    assert support_score("日志保留90天【1】", ["部署日志保留期为九十天"]) == pytest.approx(0.6)
    # stop characters split runs: 的 leaves 部署 and 日志, no 署的 / 的日
    assert content_units("部署的日志") == ["部署", "日志"]


def test_more_support_gives_higher_confidence() -> None:
    passage = ["API keys rotate every 30 days and are revoked after 24 hours."]
    answers = [
        "Tokens expire yearly on Mondays.",
        "API tokens expire yearly.",
        "API keys expire yearly.",
        "API keys rotate every 30 days.",
    ]
    hits = [make_hit(1, passage[0], dense=0.5, dense_rank=1)]
    values = [answer_confidence(hits, a, passage, -0.2, MINILM).value for a in answers]
    assert values == sorted(values) and len(set(values)) == len(values)


def test_certainty() -> None:
    assert certainty_score(None) == 0.5
    assert certainty_score(0.0) == 1.0
    assert certainty_score(-0.5) == pytest.approx(math.exp(-0.5))
    assert certainty_score(0.3) == 1.0  # clipped
    assert certainty_score(float("nan")) == 0.5


def test_combine_hand_computed_and_threshold() -> None:
    c = combine(1.0, 0.5, 0.5)  # 0.4 + 0.2 + 0.1
    assert c.value == pytest.approx(0.7) and not c.low_confidence
    low = combine(0.3, 0.3, 0.5)  # 0.12 + 0.12 + 0.1
    assert low.value == pytest.approx(0.34) and low.low_confidence
    custom = combine(1.0, 0.0, 0.0, ConfidenceWeights(0.5, 0.25, 0.25), threshold=0.6)
    assert custom.value == pytest.approx(0.5) and custom.low_confidence


def test_an_onnx_backend_keeps_its_models_calibration() -> None:
    """The embedder id carries the backend (``name@onnx-int8``); the vectors are the model's."""
    from app.answer.confidence import GENERIC_CALIBRATION, calibration_for

    for name in ("multilingual-e5-small", "all-minilm-l6-v2"):
        assert calibration_for(f"{name}@onnx-int8") == calibration_for(name)
        assert calibration_for(f"{name}@onnx") != GENERIC_CALIBRATION


def test_coverage_is_the_share_of_the_querys_content_units_in_the_top_passage() -> None:
    from app.answer.confidence import question_coverage

    top = make_hit(1, "Orbit-agent listens on port 7070. Owner: Lin Wei.")
    other = make_hit(2, "Who owns what: the owners table.")
    # units: owns, orbit, agent, port; the top passage has orbit, agent, port
    assert question_coverage("Who owns the orbit-agent port?", [top, other]) == 0.75
    assert question_coverage("Who owns the orbit-agent port?", [other, top]) == 0.25  # "owns"
    assert question_coverage("Who owns the orbit-agent port?", []) == 0.0
    assert question_coverage("What is it?", [top]) == 0.0  # no content units
    # Chinese: character bigrams, traditional folded onto simplified
    zh = make_hit(1, "日志保留90天。")
    # 日志 志保 保留 are in it, 留多 多久 are not
    assert question_coverage("日誌保留多久？", [zh]) == pytest.approx(0.6)


def test_coverage_is_recorded_with_a_query_and_weighed_only_by_a_fit() -> None:
    from app.answer.confidence import ConfidenceFit, Parts

    hits = [make_hit(1, "API keys rotate every 30 days.", dense=0.5, dense_rank=1)]
    args = (hits, "API keys rotate every 30 days [1].", [hits[0].chunk.text], -0.2, MINILM)
    plain = answer_confidence(*args)
    asked = answer_confidence(*args, query="How often do API keys rotate?")
    assert plain.coverage is None and asked.coverage == 1.0
    assert asked.value == plain.value  # the weighted sum does not weigh it
    fit = ConfidenceFit(intercept=-1.0, coverage=2.0)
    assert answer_confidence(*args, fit=fit, query="How often do API keys rotate?").value == (
        pytest.approx(1 / (1 + math.exp(-1.0)), abs=1e-6)
    )
    off = answer_confidence(*args, fit=fit, query="Who founded the canteen?")
    assert off.coverage == 0.0 and off.value == pytest.approx(1 / (1 + math.exp(1.0)), abs=1e-6)
    # A fit that weighs coverage does not apply where it was not measured: the weighted sum.
    assert answer_confidence(*args, fit=fit).value == plain.value
    assert not fit.applies(None, Parts(0.5, 0.5, 0.5)) and fit.applies(
        None, Parts(0.5, 0.5, 0.5, 0.0)
    )
    assert not fit.declines(0.1, None, 0.45, Parts(0.5, 0.5, 0.5))
