"""Per-question lines and the metrics aggregated from them, on hand-made observations."""

from __future__ import annotations

import pytest

from eval.aggregate import METRIC_NAMES, aggregate
from eval.scoring import Observation, clean_answer, record
from eval.selection import Selected
from eval.types import Question

TIMES = {"embed": 10.0, "retrieve": 5.0, "rerank": 0.0, "generate": 100.0, "total": 120.0}


def _sel(qid: str, answers: tuple[str, ...], docs: dict[str, int], ok: bool = True) -> Selected:
    return Selected(Question(qid, f"What about {qid}?", answers, docs), ok)


def _obs(answer: str, retrieved: list[str], **kw: object) -> Observation:
    base: dict[str, object] = {"timings_ms": dict(TIMES), "confidence": 0.5}
    return Observation(retrieved=retrieved, answer=answer, **{**base, **kw})  # type: ignore[arg-type]


def test_clean_answer_drops_citation_markers() -> None:
    assert clean_answer("Every 30 days [1][2].") == "Every 30 days."
    assert clean_answer("九十天【1】") == "九十天"


def test_answered_question_line() -> None:
    obs = _obs(
        "Keys rotate every 30 days [1].",
        ["d2", "d1"],
        citations=[
            {"n": 1, "chunk_id": "c1", "doc_id": "d1"},
            {"n": 2, "chunk_id": "c9", "doc_id": "d2"},
        ],
        cited_texts=["API keys rotate every 30 days.", "Unrelated."],
        confidence=0.8,
    )
    line = record(_sel("q1", ("every 30 days",), {"d1": 1}), obs, graded=False)
    m = line["metrics"]
    assert (m["rank"], m["hit@1"], m["hit@5"], m["mrr@10"]) == (2, 0.0, 1.0, 0.5)
    assert m["ndcg@10"] is None  # not a graded set
    # "keys rotate every 30 days" vs "every 30 days": common 3 -> P 3/5, R 1 -> F1 0.75
    assert m["em"] == 0.0 and m["f1"] == pytest.approx(0.75)
    assert m["correct"] is True
    assert m["citation_precision"] == 0.5
    # content units: keys, rotate, 30, days -> all in the first cited text
    assert m["support"] == 1.0
    assert line["language"] == "en" and line["answerable"] is True
    assert line["retrieved"] == ["d2", "d1"]


def test_declined_answerable_question_scores_zero() -> None:
    obs = _obs("I don't know based on the provided documents.", ["d1"], declined=True)
    m = record(_sel("q2", ("Lisbon",), {"d1": 1}), obs, graded=True)["metrics"]
    assert (m["em"], m["f1"], m["correct"]) == (0.0, 0.0, False)
    assert m["citation_precision"] is None and m["support"] is None
    assert m["ndcg@10"] == 1.0


def test_unanswerable_question_is_right_when_declined() -> None:
    sel = _sel("q3", ("Lisbon",), {"gone": 1}, ok=False)
    declined = record(sel, _obs("…", ["d1"], declined=True), graded=False)["metrics"]
    answered = record(sel, _obs("Lisbon [1].", ["d1"]), graded=False)["metrics"]
    assert declined["correct"] is True and answered["correct"] is False
    # its gold is not in the index: no retrieval or answer metrics
    assert declined["hit@1"] is None and declined["f1"] is None
    assert answered["citation_precision"] is None


def test_chinese_question_uses_the_cmrc_metric() -> None:
    sel = Selected(Question("z", "部署日志保留多久？", ("九十天",), {"d": 1}), True)
    line = record(sel, _obs("部署日志保留九十天[1]。", ["d"]), graded=False)
    assert line["language"] == "zh"
    # pred tokens 部署日志保留九十天 (9, "。" removed), gold 九十天: LCS 3 -> F1 0.5
    assert line["metrics"]["f1"] == pytest.approx(0.5)


def test_retrieval_only_and_error_lines() -> None:
    only = Observation(retrieved=["d1"], timings_ms={"embed": 1.0, "total": 2.0})
    m = record(_sel("q", ("x",), {"d1": 1}), only, graded=False)["metrics"]
    assert m["hit@1"] == 1.0 and m["f1"] is None and m["correct"] is None
    failed = Observation(retrieved=[], timings_ms={}, error="ValidationFailedError: too long")
    m = record(_sel("q", ("x",), {"d1": 1}), failed, graded=False)["metrics"]
    assert all(v is None for v in m.values())


def test_aggregate_by_hand() -> None:
    lines = [
        # answerable, rank 1, F1 1, confidence 0.9 -> right
        record(_sel("a", ("yes",), {"d1": 1}), _obs("yes", ["d1"], confidence=0.9), False),
        # answerable, rank 3, F1 0, confidence 0.6 -> wrong
        record(
            _sel("b", ("no",), {"d2": 1}), _obs("maybe", ["x", "y", "d2"], confidence=0.6), False
        ),
        # unanswerable, declined, confidence 0.1 -> right
        record(
            _sel("c", ("z",), {"gone": 1}, ok=False),
            _obs("…", ["d1"], declined=True, confidence=0.1),
            False,
        ),
        # unanswerable, answered, confidence 0.7 -> wrong
        record(_sel("d", ("z",), {"gone": 1}, ok=False), _obs("z", ["d1"], confidence=0.7), False),
    ]
    lines[3]["timings_ms"] = {**TIMES, "total": 400.0}
    result = aggregate(lines, excluded=2)
    m = result["metrics"]
    assert set(m) == set(METRIC_NAMES)
    assert (m["hit@1"], m["hit@5"], m["mrr@10"]) == (0.5, 1.0, pytest.approx((1 + 1 / 3) / 2))
    assert (m["em"], m["f1"]) == (0.5, 0.5)  # over the two answerable questions only
    assert m["correct"] == 0.5  # a right, b wrong; the unanswerable ones are not counted
    assert m["decline_rate"] == 0.25
    assert (m["decline_precision"], m["decline_recall"]) == (1.0, 0.5)
    # calibration over all 4: right (0.9, 0.1), wrong (0.6, 0.7) -> AUROC: 0.9 beats 2, 0.1 none
    assert m["auroc"] == 0.5
    # answered only (a, b, d): right 0.9, wrong 0.6, 0.7 -> AUROC 1; threshold 0.9 (J = 1)
    assert m["auroc_answered"] == 1.0
    assert m["suggested_low_confidence"] == 0.9
    # totals 120, 120, 120, 400: p50 120; p95 position 2.85 -> 120 + 0.85 * 280 = 358
    assert m["p50_ms"] == 120.0 and m["p95_ms"] == pytest.approx(358.0)
    assert m["p50_generate_ms"] == 100.0
    counts = result["counts"]
    assert counts["questions"] == 4 and counts["unanswerable"] == 2 and counts["excluded"] == 2
    assert result["calibration"]["threshold"]["value"] == 0.9


def test_a_long_right_answer_is_correct_and_a_wrong_number_is_not() -> None:
    """Correctness for calibration is gold-token recall: F1 against the short span would call
    the first answer wrong (F1 0.4) and cannot tell the second apart by much."""
    long_right = _obs(
        "According to the security policy, API keys are rotated automatically every 30 days, "
        "and the old key stays valid for a day [1].",
        ["d1"],
    )
    m = record(_sel("q", ("every 30 days",), {"d1": 1}), long_right, graded=False)["metrics"]
    assert m["f1"] < 0.5 and m["recall"] == 1.0 and m["correct"] is True
    wrong = _obs("API keys rotate every 60 days [1].", ["d1"])
    m = record(_sel("q", ("every 30 days",), {"d1": 1}), wrong, graded=False)["metrics"]
    assert m["recall"] == pytest.approx(2 / 3) and m["correct"] is False


def test_chinese_recall_counts_characters() -> None:
    sel = Selected(Question("z", "部署日志保留多久？", ("90 天",), {"d": 1}), True)
    right = record(sel, _obs("部署日志的数据保留期为 90 天 [1]。", ["d"]), graded=False)
    assert right["metrics"]["recall"] == 1.0 and right["metrics"]["correct"] is True
    wrong = record(sel, _obs("保留 30 天 [1]。", ["d"]), graded=False)
    assert wrong["metrics"]["correct"] is False
