"""The shipped decline level and threshold are chosen on averaged held-out halves."""

from __future__ import annotations

import random

import pytest

from app.answer.confidence import ConfidenceFit, Parts
from eval.confidence_choice import THRESHOLDS, averaged, choice_text, choose
from eval.confidence_fit import (
    Declines,
    Example,
    Kept,
    answered,
    chosen_decline,
    declines,
    fit,
    fitted_confidences,
    kept_at,
    split,
)


def _pool(n: int = 400, seed: int = 3) -> list[Example]:
    """Right answers well supported, wrong ones less, invented ones (unanswerable) least."""
    rng = random.Random(seed)
    pool = []
    for i in range(n):
        kind = rng.choice(["right", "right", "wrong", "invented"])
        support = rng.gauss({"right": 0.85, "wrong": 0.6, "invented": 0.35}[kind], 0.15)
        parts = Parts(rng.random(), min(1.0, max(0.0, support)), 0.5)
        right, answerable = kind == "right", kind != "invented"
        pool.append(Example("s", f"q{i}", answerable, right, False, parts, 0.7, 0.8))
    pool.append(Example("s", "run-declined", False, False, True, None, 0.1, None))
    return pool


def test_the_choice_averages_the_held_out_halves_and_fits_on_everything() -> None:
    pool = _pool()
    got = choose(pool, repeats=3)
    per_seed = []
    kept: list[list[Kept]] = []
    for seed in range(3):
        dev_all, held_all = split(pool, seed, 0.5)
        model = fit(answered(dev_all))
        per_seed.append(declines(model, held_all))
        held = answered(held_all)
        values = fitted_confidences(model, held)
        kept.append([kept_at(values, [e.right for e in held], t) for t in THRESHOLDS])
    assert got.declines == averaged(per_seed)
    assert got.decline_below == chosen_decline(got.declines)
    assert got.decline_below is not None  # this pool has a level within 10%

    def mean_right(i: int) -> float | None:
        known = [k[i].kept_right for k in kept if k[i].kept_right is not None]
        return sum(known) / len(known) if known else None

    means = [mean_right(i) for i in range(len(THRESHOLDS))]
    meeting = [t for t, r in zip(THRESHOLDS, means, strict=True) if r is not None and r >= 0.9]
    assert got.low_confidence == min(meeting)
    assert got.model == fit(answered(pool))  # the halvings chose; everything fits
    # the recorded confidence is 0.8 for every answer: it cannot order them, the fit can
    assert got.recorded[1] == pytest.approx(0.5)
    assert got.fitted[1] is not None and got.fitted[1] > 0.7
    assert got.answers == len(pool) - 1
    text = choice_text(got)
    assert f"DOCQA_DECLINE_BELOW={got.decline_below:.3f}" in text
    assert f"DOCQA_LOW_CONFIDENCE={got.low_confidence:.3f}" in text


def test_levels_average_over_seeds_skipping_unmeasured_shares() -> None:
    a = [Declines(None, 0.0, 0.2, 0.7, 0.1), Declines(0.5, 0.1, 0.8, 0.8, None)]
    b = [Declines(None, 0.02, None, 0.7, 0.3), Declines(0.5, 0.14, 0.9, 0.9, None)]
    none, half = averaged([a, b])
    assert none.below is None and half.below == 0.5
    assert none.answerable_declined == pytest.approx(0.01)
    assert none.decline_recall == pytest.approx(0.2)  # the one seed that measured it
    assert half.answerable_declined == pytest.approx(0.12) and half.ece is None
    assert kept_at([0.9, 0.6, 0.95], [True, False, True], 0.8) == Kept(0.8, 2 / 3, 1.0)


def test_a_choice_needs_a_halving() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        choose(_pool(40), repeats=0)
    assert isinstance(choose(_pool(), repeats=1).model, ConfidenceFit)
