"""Choose the shipped decline level and low-confidence threshold by repeated halving.

One development/held-out split of the matrix's sets leaves about 200 answerable and 50
unanswerable questions per half, and a share read on one half moves by several points from one
split seed to the next (the decline level chosen on one half to decline 7% of answerable
questions there declined 7-15% on the other half, depending on the seed). So the choice is made
on the average over ``repeats`` random halvings instead (repeated two-fold cross-validation):
for each seed, fit on one half and read the other; average each decline level's and each
threshold's held-out shares over the seeds; then

- ``DOCQA_DECLINE_BELOW``: the highest level whose average share of answerable questions
  declined is within 10% (``chosen_decline``: the most unanswerable ones declined within it);
- ``DOCQA_LOW_CONFIDENCE``: the lowest threshold whose answers at or above it are on average at
  least 90% right;
- the fit itself is made on every question (the halvings only chose the two settings).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from app.answer.confidence import ConfidenceFit
from eval.compare import shown, shown_share, table
from eval.confidence_fit import (
    ANSWERABLE_DECLINED_TARGET,
    PRECISION_TARGET,
    Declines,
    Example,
    Kept,
    Scored,
    answered,
    chosen_decline,
    declines,
    features,
    fit,
    fit_json,
    fitted_confidences,
    kept_at,
    measured_features,
    score,
    setting_line,
    split,
)

# The low-confidence thresholds tried: a fitted P(right) under 0.5 is a coin flip already.
THRESHOLDS = tuple(round(0.5 + 0.01 * i, 2) for i in range(50))


@dataclass(frozen=True)
class Choice:
    repeats: int
    model: ConfidenceFit  # fitted on every answer
    answers: int
    declines: list[Declines]  # each level's held-out shares, averaged over the halvings
    kept: list[Kept]
    decline_below: float | None
    low_confidence: float | None
    # ECE and AUROC over the held-out answers, averaged: the recorded confidence, then the fit
    recorded: tuple[float | None, float | None] = (None, None)
    fitted: tuple[float | None, float | None] = (None, None)


def _mean(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.fmean(known) if known else None


def averaged(per_seed: Sequence[Sequence[Declines]]) -> list[Declines]:
    """Each level's shares averaged over the seeds (the levels are the same in every seed)."""
    return [
        Declines(
            below=rows[0].below,
            answerable_declined=_mean([r.answerable_declined for r in rows]),
            decline_recall=_mean([r.decline_recall for r in rows]),
            answers_right=_mean([r.answers_right for r in rows]),
            ece=_mean([r.ece for r in rows]),
        )
        for rows in zip(*per_seed, strict=True)
    ]


def choose(
    pool: Sequence[Example],
    repeats: int = 10,
    dev_share: float = 0.5,
    names: Sequence[str] | None = None,
) -> Choice:
    """The decline level and threshold chosen on ``repeats`` halvings (seeds 0..repeats-1),
    and the fit on every answer."""
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    names = measured_features(pool) if names is None else names
    per_seed: list[list[Declines]] = []
    kept: dict[float, list[Kept]] = {t: [] for t in THRESHOLDS}
    scores: dict[str, list[Scored]] = {"recorded": [], "fitted": []}
    for seed in range(repeats):
        dev_all, held_all = split(pool, seed, dev_share)
        model = fit(answered(dev_all), names)
        per_seed.append(declines(model, held_all))
        held = answered(held_all)
        values = fitted_confidences(model, held)
        right = [e.right for e in held]
        scores["recorded"].append(score([e.shipped or 0.0 for e in held], right, None))
        scores["fitted"].append(score(values, right, None))
        for t in THRESHOLDS:
            kept[t].append(kept_at(values, right, t))
    rows = averaged(per_seed)
    mean_kept = [
        Kept(t, _mean([k.kept for k in ks]), _mean([k.kept_right for k in ks]))
        for t, ks in kept.items()
    ]
    meeting = [
        k.threshold
        for k in mean_kept
        if k.kept_right is not None and k.kept_right >= PRECISION_TARGET
    ]
    everything = answered(pool)
    return Choice(
        repeats=repeats,
        model=fit(everything, names),
        answers=sum(features(e, names) is not None for e in everything),  # what it fitted
        declines=rows,
        kept=mean_kept,
        decline_below=chosen_decline(rows),
        low_confidence=min(meeting, default=None),
        recorded=_mean_scores(scores["recorded"]),
        fitted=_mean_scores(scores["fitted"]),
    )


def _mean_scores(scores: Sequence[Scored]) -> tuple[float | None, float | None]:
    return _mean([s.ece for s in scores]), _mean([s.auroc for s in scores])


def choice_text(choice: Choice) -> str:
    decline_table = table(
        ["decline below", "answerable declined", "decline recall", "answers right", "ECE"],
        [
            [
                "–" if d.below is None else f"{d.below:.2f}",
                shown_share(d.answerable_declined),
                shown_share(d.decline_recall),
                shown_share(d.answers_right),
                shown(d.ece),
            ]
            for d in choice.declines
        ],
    )
    shown_kept = [k for k in choice.kept if round(k.threshold * 100) % 5 == 0]
    if choice.low_confidence is not None:
        shown_kept = sorted(
            {*shown_kept, *(k for k in choice.kept if k.threshold == choice.low_confidence)},
            key=lambda k: k.threshold,
        )
    kept_table = table(
        ["low confidence", "kept", "kept right"],
        [
            [f"{k.threshold:.2f}", shown_share(k.kept), shown_share(k.kept_right)]
            for k in shown_kept
        ],
    )
    (ece_r, auc_r), (ece_f, auc_f) = choice.recorded, choice.fitted
    return (
        f"Held-out shares averaged over {choice.repeats} random halvings (fit on one half, read "
        f"on the other): ECE {shown(ece_r)} recorded, {shown(ece_f)} fitted; AUROC "
        f"{shown(auc_r)} recorded, {shown(auc_f)} fitted.\n{decline_table}\n\n{kept_table}\n"
        f"The settings that ship it (the fit on all {choice.answers} answers; the decline level "
        f"is the highest declining at most {ANSWERABLE_DECLINED_TARGET:.0%} of answerable "
        f"questions on average, the threshold the lowest keeping answers at least "
        f"{PRECISION_TARGET:.0%} right on average):\n"
        f"DOCQA_CONFIDENCE_FIT='{fit_json(choice.model)}'\n"
        f"{setting_line('DOCQA_DECLINE_BELOW', choice.decline_below)}\n"
        f"{setting_line('DOCQA_LOW_CONFIDENCE', choice.low_confidence)}"
    )
