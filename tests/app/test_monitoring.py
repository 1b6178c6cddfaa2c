"""The answer monitors: the drift test (two-sample KS of top retrieval scores against the first
window the process saw) and the low-confidence ratio. Scores are drawn from seeded generators,
so every p-value here is the same on every run."""

from __future__ import annotations

import numpy as np
import pytest

from app.monitoring import AnswerMonitor

WINDOW, MIN_SAMPLES = 100, 30


def _scores(seed: int, mean: float, n: int) -> list[float]:
    """``n`` top scores around ``mean`` (spread 0.08), as a retrieval of one kind of question."""
    return [float(s) for s in np.random.default_rng(seed).normal(mean, 0.08, n)]


def _feed(monitor: AnswerMonitor, scores: list[float]) -> list[float | None]:
    return [monitor.record_top_score(s) for s in scores]


def test_no_p_value_until_the_reference_is_full_and_enough_recent_scores_came() -> None:
    monitor = AnswerMonitor(window=WINDOW, min_samples=MIN_SAMPLES)
    assert _feed(monitor, _scores(1, 0.6, WINDOW)) == [None] * WINDOW  # the reference
    recent = _feed(monitor, _scores(2, 0.6, MIN_SAMPLES))
    assert recent[: MIN_SAMPLES - 1] == [None] * (MIN_SAMPLES - 1)
    assert recent[-1] is not None and 0.0 <= recent[-1] <= 1.0


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_the_same_distribution_does_not_look_like_drift(seed: int) -> None:
    monitor = AnswerMonitor(window=WINDOW, min_samples=MIN_SAMPLES)
    _feed(monitor, _scores(seed, 0.6, WINDOW))
    pvalues = _feed(monitor, _scores(seed + 100, 0.6, WINDOW))
    assert pvalues[-1] is not None and pvalues[-1] > 0.05


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_a_shift_in_the_scores_moves_the_p_value_below_005(seed: int) -> None:
    """Users start asking what the documents answer less well: top scores drop by 0.1."""
    monitor = AnswerMonitor(window=WINDOW, min_samples=MIN_SAMPLES)
    _feed(monitor, _scores(seed, 0.6, WINDOW))
    steady = _feed(monitor, _scores(seed + 100, 0.6, MIN_SAMPLES))[-1]
    assert steady is not None and steady > 0.05
    # The recent window is a deque of the last WINDOW scores: once the shifted ones fill it,
    # the test compares the reference with the shifted distribution alone.
    shifted = _feed(monitor, _scores(seed + 200, 0.5, WINDOW))[-1]
    assert shifted is not None and shifted < 0.05
    # The reference stays the first window: it does not follow the drift.
    still = _feed(monitor, _scores(seed + 300, 0.5, WINDOW))[-1]
    assert still is not None and still < 0.05


def test_the_low_confidence_ratio_is_over_the_last_window_of_answers() -> None:
    monitor = AnswerMonitor(window=4)
    assert [monitor.record(low) for low in (True, False, False, False)] == [1, 0.5, 1 / 3, 0.25]
    assert monitor.record(False) == 0.0  # the first True has left the window
    assert monitor.record(True) == 0.25
