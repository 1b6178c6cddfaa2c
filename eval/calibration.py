"""Does the answer's ``confidence`` predict whether it is right? ECE, AUROC, a threshold.

- Reliability bins: 10 equal-width bins over [0, 1] (a confidence of exactly 1.0 goes in the
  last bin); for each, the count, mean confidence and accuracy.
- ECE (expected calibration error) = sum over bins of (n_bin / n) * |accuracy - mean confidence|.
- AUROC: the probability that a right answer has a higher confidence than a wrong one, ties
  counting one half (the Mann-Whitney U statistic / (n_right * n_wrong)). None when all answers
  are right or all wrong.
- Suggested ``DOCQA_LOW_CONFIDENCE``: the threshold t that maximizes Youden's J = TPR - FPR,
  where an answer is kept ("confident") when confidence >= t, TPR is the share of right answers
  kept and FPR the share of wrong answers kept. Candidates are the observed confidences; ties in
  J go to the lower threshold (fewer answers flagged). None when one class is missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

BINS = 10


@dataclass(frozen=True)
class Bin:
    low: float
    high: float
    count: int
    confidence: float | None  # mean confidence in the bin
    accuracy: float | None  # share right in the bin


@dataclass(frozen=True)
class Threshold:
    value: float
    youden_j: float
    tpr: float  # share of right answers kept (confidence >= value)
    fpr: float  # share of wrong answers kept
    flagged: float  # share of all answers under the threshold
    precision: float | None  # share right among the kept answers


def _check(confidences: Sequence[float], correct: Sequence[bool]) -> None:
    if len(confidences) != len(correct):
        raise ValueError("confidences and correctness differ in length")


def reliability_bins(
    confidences: Sequence[float], correct: Sequence[bool], bins: int = BINS
) -> list[Bin]:
    _check(confidences, correct)
    members: list[list[int]] = [[] for _ in range(bins)]
    for i, c in enumerate(confidences):
        members[min(bins - 1, max(0, int(c * bins)))].append(i)
    out = []
    for b, idx in enumerate(members):
        conf = sum(confidences[i] for i in idx) / len(idx) if idx else None
        acc = sum(correct[i] for i in idx) / len(idx) if idx else None
        out.append(Bin(b / bins, (b + 1) / bins, len(idx), conf, acc))
    return out


def reliability_bin_dicts(
    confidences: Sequence[float], correct: Sequence[bool], bins: int = BINS
) -> list[dict[str, Any]]:
    """`reliability_bins` as plain dicts: what metrics.json stores and the plots draw."""
    return [asdict(b) for b in reliability_bins(confidences, correct, bins)]


def expected_calibration_error(
    confidences: Sequence[float], correct: Sequence[bool], bins: int = BINS
) -> float | None:
    """ECE over equal-width bins; None without answers.

    >>> expected_calibration_error([0.9, 0.9], [True, False])
    0.4
    """
    if not confidences:
        return None
    n = len(confidences)
    total = 0.0
    for b in reliability_bins(confidences, correct, bins):
        if b.count and b.accuracy is not None and b.confidence is not None:
            total += b.count / n * abs(b.accuracy - b.confidence)
    return round(total, 10)


def auroc(confidences: Sequence[float], correct: Sequence[bool]) -> float | None:
    """Area under the ROC curve of confidence for telling right from wrong answers.

    >>> auroc([0.9, 0.8, 0.3], [True, False, False])
    1.0
    """
    _check(confidences, correct)
    right = [c for c, ok in zip(confidences, correct, strict=True) if ok]
    wrong = [c for c, ok in zip(confidences, correct, strict=True) if not ok]
    if not right or not wrong:
        return None
    wins = 0.0
    for r in right:
        for w in wrong:
            wins += 1.0 if r > w else 0.5 if r == w else 0.0
    return wins / (len(right) * len(wrong))


def suggest_threshold(confidences: Sequence[float], correct: Sequence[bool]) -> Threshold | None:
    """The confidence threshold with the best Youden's J (see the module docstring)."""
    _check(confidences, correct)
    n_right = sum(correct)
    n_wrong = len(correct) - n_right
    if not n_right or not n_wrong:
        return None
    best: Threshold | None = None
    for t in sorted(set(confidences)):
        kept = [ok for c, ok in zip(confidences, correct, strict=True) if c >= t]
        tp = sum(kept)
        fp = len(kept) - tp
        tpr, fpr = tp / n_right, fp / n_wrong
        j = tpr - fpr
        if best is None or j > best.youden_j + 1e-12:
            best = Threshold(
                value=t,
                youden_j=j,
                tpr=tpr,
                fpr=fpr,
                flagged=1 - len(kept) / len(correct),
                precision=tp / len(kept) if kept else None,
            )
    return best
