"""ECE, AUROC, reliability bins and the threshold rule on small hand-computed arrays."""

from __future__ import annotations

import pytest

from eval.calibration import (
    auroc,
    expected_calibration_error,
    reliability_bins,
    suggest_threshold,
)

CONF = [0.95, 0.85, 0.82, 0.35, 0.3, 0.05]
RIGHT = [True, True, False, False, True, False]


def test_reliability_bins() -> None:
    bins = reliability_bins(CONF, RIGHT)
    assert [b.count for b in bins] == [1, 0, 0, 2, 0, 0, 0, 0, 2, 1]
    assert bins[8].confidence == pytest.approx(0.835)
    assert bins[8].accuracy == 0.5
    assert bins[1].confidence is None and bins[1].accuracy is None
    # 1.0 belongs to the last bin, 0.0 to the first
    assert [b.count for b in reliability_bins([1.0, 0.0], [True, False])][::9] == [1, 1]


def test_ece_by_hand() -> None:
    # bin 9: n 1, conf 0.95,  acc 1   -> |gap| 0.05
    # bin 8: n 2, conf 0.835, acc 0.5 -> 0.335
    # bin 3: n 2, conf 0.325, acc 0.5 -> 0.175
    # bin 0: n 1, conf 0.05,  acc 0   -> 0.05
    # ECE = (1*0.05 + 2*0.335 + 2*0.175 + 1*0.05) / 6 = 1.12 / 6
    assert expected_calibration_error(CONF, RIGHT) == pytest.approx(1.12 / 6)
    assert expected_calibration_error([1.0, 1.0], [True, True]) == 0.0
    assert expected_calibration_error([], []) is None


def test_auroc_by_hand() -> None:
    # right 0.95, 0.85, 0.3; wrong 0.82, 0.35, 0.05
    # 0.95 beats 3, 0.85 beats 3, 0.3 beats 1 (0.05): 7 of 9 pairs
    assert auroc(CONF, RIGHT) == pytest.approx(7 / 9)
    assert auroc([0.5, 0.5], [True, False]) == 0.5  # a tie counts one half
    assert auroc([0.2, 0.9], [True, False]) == 0.0
    assert auroc([0.2, 0.9], [True, True]) is None  # one class only


def test_threshold_maximizes_youden_j() -> None:
    # t=0.05 J 0; t=0.3 TPR 1, FPR 2/3 -> 1/3; t=0.35 2/3-2/3 = 0; t=0.82 2/3-1/3 = 1/3;
    # t=0.85 TPR 2/3, FPR 0 -> 2/3 (best); t=0.95 1/3
    t = suggest_threshold(CONF, RIGHT)
    assert t is not None
    assert t.value == 0.85
    assert t.youden_j == pytest.approx(2 / 3)
    assert (t.tpr, t.fpr) == (pytest.approx(2 / 3), 0.0)
    assert t.flagged == pytest.approx(4 / 6)  # 0.82, 0.35, 0.3, 0.05 fall under it
    assert t.precision == 1.0


def test_threshold_ties_go_to_the_lower_value() -> None:
    # t=0.4: TPR 1, FPR 1/2 -> J 0.5; t=0.8: TPR 1/2, FPR 0 -> J 0.5; the lower one wins
    t = suggest_threshold([0.2, 0.4, 0.6, 0.8], [False, True, False, True])
    assert t is not None and t.value == 0.4


def test_no_threshold_with_one_class() -> None:
    assert suggest_threshold([0.3, 0.7], [True, True]) is None
    with pytest.raises(ValueError):
        suggest_threshold([0.3], [True, False])
