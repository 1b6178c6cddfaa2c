"""From the lines of ``per_question.jsonl`` to ``metrics.json``.

Metrics are a pure function of the lines, so a resumed run reports what an uninterrupted one
would have. ``metrics.json`` holds ``metrics`` (flat name -> number or null: what gates and
``docqa eval compare`` read), ``counts``, and ``calibration`` (the reliability bins and the
suggested threshold, for the report).

Populations (see docs/EVALUATION.md):

- retrieval metrics, EM/F1, recall, citation precision, support: means of the per-question
  values (`eval.scoring`), over the questions that have one;
- ``correct``: the share of answerable questions with gold answers answered right (gold-token
  recall >= 0.75; a decline is not right): the correctness rule calibration uses, reported
  beside EM and F1;
- ``decline_rate``: declines / questions answered; ``decline_precision``/``decline_recall``:
  positive = declined, a right decline = one on an unanswerable question;
- ``ece``/``auroc``: every question with a defined ``correct`` (declines included: a decline's
  confidence is the service's, ``0.4 * retrieval evidence``);
  ``ece_answered``/``auroc_answered`` and the suggested threshold: answered (not declined)
  questions only, the population ``DOCQA_LOW_CONFIDENCE`` flags;
- latency: p50/p95 of ``timings_ms`` per stage and of the total, over every question asked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from eval.calibration import (
    auroc,
    expected_calibration_error,
    reliability_bin_dicts,
    suggest_threshold,
)
from eval.metrics import decline_precision_recall, mean, percentile

STAGES = ("embed", "retrieve", "rerank", "generate")
QUALITY_METRICS = (
    "hit@1",
    "hit@5",
    "hit@10",
    "mrr@10",
    "ndcg@10",
    "em",
    "f1",
    "recall",
    "correct",
    "citation_precision",
    "support",
    "decline_rate",
    "decline_precision",
    "decline_recall",
    "ece",
    "auroc",
    "ece_answered",
    "auroc_answered",
    "suggested_low_confidence",
)
LATENCY_METRICS = (
    "p50_ms",
    "p95_ms",
    *(f"p{q}_{stage}_ms" for stage in STAGES for q in (50, 95)),
)
METRIC_NAMES: tuple[str, ...] = (*QUALITY_METRICS, *LATENCY_METRICS)
# Higher is better for these; lower for ece*, latency, decline_rate is neither (shown as is).
HIGHER_IS_BETTER = frozenset(
    [
        *("hit@1", "hit@5", "hit@10", "mrr@10", "ndcg@10", "em", "f1", "recall", "correct"),
        "citation_precision",
        *("support", "decline_precision", "decline_recall", "auroc", "auroc_answered"),
    ]
)
LOWER_IS_BETTER = frozenset(["ece", "ece_answered", *LATENCY_METRICS])


def aggregate(records: Sequence[dict[str, Any]], excluded: int = 0) -> dict[str, Any]:
    ok = [r for r in records if r.get("error") is None]
    asked = [r for r in ok if r.get("answer") is not None]
    metrics: dict[str, float | None] = dict.fromkeys(METRIC_NAMES)
    for name in ("hit@1", "hit@5", "hit@10", "mrr@10", "ndcg@10", "em", "f1", "recall"):
        metrics[name] = mean(r["metrics"].get(name) for r in ok)
    metrics["correct"] = mean(
        float(r["metrics"]["correct"])
        for r in ok
        if r["answerable"] and r["metrics"].get("f1") is not None  # has gold answers
    )
    metrics["citation_precision"] = mean(r["metrics"].get("citation_precision") for r in ok)
    metrics["support"] = mean(r["metrics"].get("support") for r in ok)
    if asked:
        declined = [bool(r["declined"]) for r in asked]
        metrics["decline_rate"] = sum(declined) / len(asked)
        unanswerable = [not r["answerable"] for r in asked]
        metrics["decline_precision"], metrics["decline_recall"] = decline_precision_recall(
            declined, unanswerable
        )
    calibration = _calibration(asked, metrics)
    _latency(ok, metrics)
    cached = [r["query_cached"] for r in ok if r.get("query_cached") is not None]
    counts = {
        "questions": len(records),
        "answerable": sum(1 for r in records if r["answerable"]),
        "unanswerable": sum(1 for r in records if not r["answerable"]),
        "excluded": excluded,
        "errors": len(records) - len(ok),
        "declined": sum(1 for r in asked if r["declined"]),
        "degraded": sum(1 for r in asked if r["degraded"]),
        "with_retrieval_gold": sum(1 for r in ok if r["metrics"].get("hit@1") is not None),
        "with_answer_gold": sum(1 for r in ok if r["metrics"].get("f1") is not None),
        "query_cache_hits": sum(cached),
    }
    return {
        "metrics": {k: _round(v) for k, v in metrics.items()},
        "counts": counts,
        "calibration": calibration,
    }


def _calibration(
    asked: Sequence[dict[str, Any]], metrics: dict[str, float | None]
) -> dict[str, Any]:
    judged = [r for r in asked if r["metrics"].get("correct") is not None]
    conf = [float(r["confidence"]) for r in judged]
    right = [bool(r["metrics"]["correct"]) for r in judged]
    answered = [r for r in judged if not r["declined"]]
    conf_a = [float(r["confidence"]) for r in answered]
    right_a = [bool(r["metrics"]["correct"]) for r in answered]
    metrics["ece"] = expected_calibration_error(conf, right)
    metrics["auroc"] = auroc(conf, right) if judged else None
    metrics["ece_answered"] = expected_calibration_error(conf_a, right_a)
    metrics["auroc_answered"] = auroc(conf_a, right_a) if answered else None
    threshold = suggest_threshold(conf_a, right_a) if answered else None
    metrics["suggested_low_confidence"] = threshold.value if threshold else None
    return {
        "judged": len(judged),
        "answered": len(answered),
        "bins": reliability_bin_dicts(conf, right),
        "bins_answered": reliability_bin_dicts(conf_a, right_a),
        "threshold": asdict(threshold) if threshold else None,
    }


def _latency(ok: Sequence[dict[str, Any]], metrics: dict[str, float | None]) -> None:
    totals = [float(r["timings_ms"]["total"]) for r in ok if "total" in r["timings_ms"]]
    metrics["p50_ms"], metrics["p95_ms"] = percentile(totals, 50), percentile(totals, 95)
    for stage in STAGES:
        values = [float(r["timings_ms"][stage]) for r in ok if stage in r["timings_ms"]]
        metrics[f"p50_{stage}_ms"] = percentile(values, 50)
        metrics[f"p95_{stage}_ms"] = percentile(values, 95)


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)
