"""Thresholds replayed on recorded runs: what a higher answerability floor or another
low-confidence threshold would have done, without asking again.

Both thresholds act after everything a run records. ``DOCQA_LOW_CONFIDENCE`` only flags an
answer. ``DOCQA_ANSWERABLE_FLOOR`` declines when the generator's P(yes) is under it, and a run
records that P(yes) for every question that reached the check (``p_answerable``), declined or
not. So a floor at or above the run's own gives exactly the declines the service would have
made; a lower one cannot be replayed (the questions it would have let through never got an
answer) and is refused. One caveat is stated, not hidden: a replayed decline's confidence is
unknown (the service sets it from retrieval evidence, which the run does not record), so the
replay reports calibration over the answered questions only (``ece_answered``), the population
the low-confidence flag acts on.

A floor may differ by the question's language (``en:0.70/zh:0.80``): P(yes) runs lower in
English than in Chinese for the default profile's model.

A fitted confidence (``DOCQA_CONFIDENCE_FIT``, or the catalog's) is replayed too: the runs record
every answer's confidence parts and P(yes), so each answer's fitted P(right) is what the service
computes (``ConfidenceFit.probability``), and ``DOCQA_DECLINE_BELOW`` declines the answers under
it (``ConfidenceFit.declines``, the service's own rule).

Several runs (a matrix's sets) may be pooled: the thresholds are global settings, chosen on all
of them together, and each set is reported too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.answer.confidence import ConfidenceFit, Parts
from eval.calibration import auroc, expected_calibration_error
from eval.compare import shown, shown_share
from eval.errors import EvalError
from eval.store import Run
from modelstore.catalog import MODELS

# One floor for every question, one per language ({"en": 0.7, "zh": 0.8}), or None (no check).
Floor = float | Mapping[str, float] | None


@dataclass(frozen=True)
class Replayed:
    questions: int
    answerable: int
    unanswerable: int
    answerable_declined: float | None  # share of answerable questions declined
    decline_recall: float | None  # share of unanswerable questions declined
    right_answerable: float | None  # share of answerable questions answered right
    kept: int  # answers at or above the low-confidence threshold
    kept_precision: float | None  # share of those that are right
    flagged: float | None  # share of answers under the threshold
    ece_answered: float | None
    auroc_answered: float | None
    # Each answer's confidence (replayed) and whether it was right: the reliability diagram's.
    answered_confidence: tuple[float, ...] = ()
    answered_right: tuple[bool, ...] = ()


def run_floor(run: Run) -> float | None:
    """The answerability floor the run was made with (None: no check, nothing recorded): the
    recorded one; for runs made before it was recorded, the setting, else the generator's
    catalog floor (what ``wiring.compose.answerable_floor`` chose then)."""
    config = run.config()
    if "answerable_floor" in config:
        recorded = config["answerable_floor"]
        return None if recorded is None else float(recorded)
    value = config.get("settings", {}).get("answerable_floor", {}).get("value")
    if value not in (None, ""):
        return float(value)
    generator = config.get("models", {}).get("generator", {}).get("id")
    spec = MODELS.get(str(generator))
    return None if spec is None else spec.answerable_floor


def default_floor(runs: Sequence[Run]) -> float | None:
    """The highest floor the runs were made with (every run can replay it), None if none."""
    floors = [f for f in map(run_floor, runs) if f is not None]
    return max(floors) if floors else None


def parse_floor(text: str) -> Floor:
    """``0.75``, ``en:0.70/zh:0.80`` or ``none``.

    >>> parse_floor("en:0.7/zh:0.8"), parse_floor("0.75"), parse_floor("none")
    ({'en': 0.7, 'zh': 0.8}, 0.75, None)
    """
    text = text.strip()
    if text.lower() == "none":
        return None
    if ":" not in text:
        return float(text)
    floors = {}
    for part in text.split("/"):
        language, _, value = part.partition(":")
        if language.strip() not in ("en", "zh"):
            raise ValueError(f"unknown language {language.strip()!r} (en or zh)")
        floors[language.strip()] = float(value)
    return floors


def floor_label(floor: Floor) -> str:
    if floor is None:
        return "none"
    if isinstance(floor, Mapping):
        return "/".join(f"{k}:{v:.2f}" for k, v in sorted(floor.items()))
    return f"{floor:.2f}"


def _lowest(floor: Floor) -> float | None:
    if isinstance(floor, Mapping):
        return min(floor.values()) if floor else None
    return floor


def check_floor(runs: Sequence[Run], floor: Floor) -> None:
    lowest = _lowest(floor)
    for run in runs:
        own = run_floor(run)
        if lowest is not None and own is None:
            raise EvalError(f"run {run.name} has no answerability check to replay a floor on")
        if own is not None and (lowest is None or lowest < own):
            raise EvalError(
                f"run {run.name} was made with answerable floor {own}: a lower floor cannot be "
                "replayed (its declines never got an answer)"
            )


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def declined_under(record: Mapping[str, Any], floor: Floor) -> bool:
    """Whether the service declines this recorded question under ``floor``: it was declined,
    or its P(yes) is under the floor of its language."""
    p = record.get("p_answerable")
    limit = floor.get(record.get("language", "en")) if isinstance(floor, Mapping) else floor
    return bool(record["declined"]) or (limit is not None and p is not None and p < limit)


def recorded_parts(record: Mapping[str, Any]) -> Parts | None:
    """The answer's confidence parts as the run recorded them; None for a decline or a run made
    before they were recorded."""
    parts = record.get("confidence_parts") or {}
    if any(parts.get(k) is None for k in ("retrieval", "support", "certainty")):
        return None
    coverage = parts.get("coverage")  # absent from runs recorded before it was a part
    return Parts(
        float(parts["retrieval"]),
        float(parts["support"]),
        float(parts["certainty"]),
        None if coverage is None else float(coverage),
    )


def outcome(
    record: Mapping[str, Any],
    floor: Floor,
    fit: ConfidenceFit | None = None,
    decline_below: float | None = None,
) -> tuple[bool, float]:
    """(declined, confidence) as the service would have answered this recorded question: the
    floor first, then the fitted P(right) where a fit applies (its parts and P(yes) recorded),
    declined under ``decline_below``; else the recorded confidence."""
    confidence = float(record.get("confidence") or 0.0)
    if declined_under(record, floor):
        return True, confidence
    p = record.get("p_answerable")
    parts = recorded_parts(record)
    if fit is None or parts is None or not fit.applies(p, parts):
        return False, confidence
    language = str(record.get("language") or "en")
    value = fit.probability(parts, None if p is None else float(p), language)
    return fit.declines(value, p, decline_below, parts), value


def replay(
    records: Sequence[Mapping[str, Any]],
    floor: Floor,
    low_confidence: float,
    fit: ConfidenceFit | None = None,
    decline_below: float | None = None,
) -> Replayed:
    """The decline and calibration metrics of ``records`` under ``floor``, ``low_confidence``
    and, if given, a confidence fit and its decline level (``check_floor`` first: this function
    trusts the floor is replayable)."""
    judged = [r for r in records if (r.get("metrics") or {}).get("correct") is not None]
    outcomes = [outcome(r, floor, fit, decline_below) for r in judged]
    declined = [d for d, _ in outcomes]
    answerable = [i for i, r in enumerate(judged) if r["answerable"]]
    unanswerable = [i for i, r in enumerate(judged) if not r["answerable"]]
    answered = [i for i in range(len(judged)) if not declined[i]]
    # An answer to an unanswerable question is wrong whatever it says.
    right = [bool(judged[i]["answerable"] and judged[i]["metrics"]["correct"]) for i in answered]
    conf = [outcomes[i][1] for i in answered]
    kept = [ok for ok, c in zip(right, conf, strict=True) if c >= low_confidence]
    return Replayed(
        questions=len(judged),
        answerable=len(answerable),
        unanswerable=len(unanswerable),
        answerable_declined=_share(sum(declined[i] for i in answerable), len(answerable)),
        decline_recall=_share(sum(declined[i] for i in unanswerable), len(unanswerable)),
        right_answerable=_share(
            sum(bool(judged[i]["metrics"]["correct"]) and not declined[i] for i in answerable),
            len(answerable),
        ),
        kept=len(kept),
        kept_precision=_share(sum(kept), len(kept)),
        flagged=_share(len(answered) - len(kept), len(answered)),
        ece_answered=expected_calibration_error(conf, right) if answered else None,
        auroc_answered=auroc(conf, right) if answered else None,
        answered_confidence=tuple(conf),
        answered_right=tuple(right),
    )


def _sets(runs: Sequence[Run]) -> list[tuple[str, list[dict[str, Any]]]]:
    """Each run's name and records, and all of them pooled as "all" when there are several."""
    sets = [(str(run.config().get("name", run.name)), run.records()) for run in runs]
    if len(sets) > 1:
        sets.append(("all", [r for _, records in sets for r in records]))
    return sets


def replay_rows(
    runs: Sequence[Run],
    floors: Sequence[Floor],
    thresholds: Sequence[float],
    fit: ConfidenceFit | None = None,
    declines_below: Sequence[float | None] = (None,),
) -> list[list[str]]:
    """One row per (set or "all", floor, decline level, threshold)."""
    for floor in floors:
        check_floor(runs, floor)
    rows = []
    for name, records in _sets(runs):
        for floor in floors:
            for below in declines_below:
                for t in thresholds:
                    r = replay(records, floor, t, fit, below)
                    rows.append(
                        [
                            str(name),
                            floor_label(floor),
                            "–" if fit is None else "fitted",
                            "–" if below is None else f"{below:.2f}",
                            f"{t:.2f}",
                            str(r.questions),
                            shown_share(r.answerable_declined),
                            shown_share(r.decline_recall),
                            shown_share(r.right_answerable),
                            shown_share(r.kept_precision),
                            shown_share(r.flagged),
                            shown(r.ece_answered),
                            shown(r.auroc_answered),
                        ]
                    )
    return rows


def replay_plot(
    runs: Sequence[Run],
    floor: Floor,
    fit: ConfidenceFit | None = None,
    decline_below: float | None = None,
) -> bytes:
    """A PNG: the reliability diagram of the answered questions of each run (and of all of them
    pooled) under ``floor`` and, if given, the fit and its decline level."""
    from eval.calibration import reliability_bin_dicts
    from eval.plots import reliability_figure

    check_floor(runs, floor)
    panels = []
    for name, records in _sets(runs):
        r = replay(records, floor, 0.5, fit, decline_below)
        title = f"{name}: {len(r.answered_right)} answers, ECE {shown(r.ece_answered)}"
        panels.append((title, reliability_bin_dicts(r.answered_confidence, r.answered_right)))
    return reliability_figure(panels)


HEADER = [
    "set",
    "floor",
    "confidence",
    "decline below",
    "low conf.",
    "questions",
    "answerable declined",
    "decline recall",
    "answerable right",
    "kept right",
    "flagged",
    "ece_answered",
    "auroc_answered",
]
