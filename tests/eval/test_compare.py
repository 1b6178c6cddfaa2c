"""`compare` output (values, deltas, better/worse marks) and the run listing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval.compare import compare_rows, compare_text, paired, runs_text
from eval.errors import EvalError
from eval.store import list_runs
from tests.eval.conftest import make_run


def test_rows_show_values_delta_and_direction() -> None:
    a = {"hit@5": 0.8, "ece": 0.2, "p95_ms": 5000.0, "decline_rate": 0.1, "f1": 0.5}
    b = {"hit@5": 0.85, "ece": 0.25, "p95_ms": 4000.0, "decline_rate": 0.2, "f1": None}
    rows = {r[0]: r for r in compare_rows(a, b)}
    assert rows["hit@5"] == ["hit@5", "0.800", "0.850", "+0.050", "+"]
    assert rows["ece"] == ["ece", "0.200", "0.250", "+0.050", "-"]  # higher ECE is worse
    assert rows["p95_ms"] == ["p95_ms", "5,000.0", "4,000.0", "-1,000.0", "+"]  # faster
    assert rows["decline_rate"][4] == ""  # no better direction
    assert rows["f1"] == ["f1", "0.500", "–", "", ""]
    assert "mrr@10" not in rows  # measured in neither run
    assert compare_rows({"f1": 0.5}, {"f1": 0.5001})[0][4] == "="


def test_compare_text(tmp_path: Path) -> None:
    a = make_run(tmp_path, "20260101T000000Z-base", {"hit@5": 0.5, "p95_ms": 100.0})
    b = make_run(tmp_path, "20260102T000000Z-new", {"hit@5": 0.75, "p95_ms": 90.0})
    text = compare_text(a, b)
    lines = text.splitlines()
    assert lines[0].startswith("A: 20260101T000000Z-base (data set tiny, sha256 abababababab")
    assert lines[1].startswith("B: 20260102T000000Z-new")
    assert any(line.split() == ["hit@5", "0.500", "0.750", "+0.250", "+"] for line in lines)
    assert any(line.split() == ["p95_ms", "100.0", "90.0", "-10.0", "+"] for line in lines)


def test_compare_refuses_an_unfinished_run(tmp_path: Path) -> None:
    a = make_run(tmp_path, "20260101T000000Z-a", {"hit@5": 0.5})
    b = make_run(tmp_path, "20260101T000001Z-b", None)
    with pytest.raises(EvalError, match="did not finish"):
        compare_text(a, b)


def test_runs_listing(tmp_path: Path) -> None:
    make_run(
        tmp_path, "20260101T000000Z-a", {"hit@5": 0.5, "f1": 0.25, "correct": 0.75}, questions=12
    )
    make_run(tmp_path, "20260101T000001Z-b", None)
    (tmp_path / "not-a-run").mkdir()
    text = runs_text(list_runs(tmp_path))
    header, first, second = text.splitlines()
    assert header.split()[:4] == ["run", "created", "(UTC)", "data"]
    assert first.split()[:7] == [
        "20260101T000000Z-a",
        "2026-01-02",
        "03:04:05",
        "tiny",
        "12",
        "done",
        "0.500",
    ]
    assert "0.250" in first
    # correct (the recall rule's share right) beside F1
    assert header.split().index("correct") == header.split().index("f1") + 1
    assert first.split().index("0.750") == first.split().index("0.250") + 1
    assert second.split()[-1] == "unfinished"


def test_compare_pairs_the_questions_both_runs_judged(tmp_path: Path) -> None:
    """How often an answer stays right (a run against its noise variant): per question."""
    a = make_run(tmp_path, "20260101T000000Z-plain", {"f1": 0.5})
    b = make_run(tmp_path, "20260102T000000Z-noisy", {"f1": 0.4})
    a_verdicts = [True, True, False, None, True]
    b_verdicts = [True, False, True, True, False]  # q4: declined by B
    for run, verdicts in ((a, a_verdicts), (b, b_verdicts)):
        lines = [
            json.dumps({"id": f"q{i}", "metrics": {"correct": v}, "declined": run is b and i == 4})
            for i, v in enumerate(verdicts)
        ]
        (run.path / "per_question.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert paired(a.records(), b.records()) == {
        "judged": 4,
        "right_in_a": 3,
        "stayed_right": 1,
        "turned_wrong": 2,
        "turned_declined": 1,
        "turned_right": 1,
    }
    assert compare_text(a, b).splitlines()[-1] == (
        "paired questions judged in both: 4; right in A: 3, still right in B: 1 (0.333); "
        "turned wrong: 2 (declined by B: 1; still right among those B answered: 1 of 2, 0.500); "
        "turned right: 1"
    )
    assert "paired" not in compare_text(a, make_run(tmp_path, "20260103T000000Z-x", {"f1": 0.1}))
