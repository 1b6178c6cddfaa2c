"""Hand labels against the automatic correctness rules: loading, kappa, agreement, the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from docqa.cli.main import app
from eval.errors import EvalError
from eval.labels import agreement, cohen_kappa, load_labels
from tests.eval.conftest import make_run


def _record(qid: str, correct: bool | None, em: float | None, f1: float | None) -> dict[str, Any]:
    return {"id": qid, "metrics": {"correct": correct, "em": em, "f1": f1}}


# A long right answer (recall rule yes, span metrics no), a short exact one, a wrong one, and
# one the recall rule accepts although the reader does not (the gold words, the wrong claim).
RECORDS = [
    _record("long", True, 0.0, 0.2),
    _record("exact", True, 1.0, 1.0),
    _record("wrong", False, 0.0, 0.0),
    _record("fooled", True, 0.0, 0.4),
    _record("unlabelled", True, 1.0, 1.0),
]
LABELS = {"long": True, "exact": True, "wrong": False, "fooled": False}


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    """A labels file (a blank line at the end, as editors leave one)."""
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    return path


def test_each_rule_is_compared_with_the_labels() -> None:
    rows = {r.rule: r for r in agreement(RECORDS, LABELS)}
    recall = rows["correct (recall >= 0.75)"]
    assert (recall.n, recall.agree, recall.rule_right_label_wrong) == (4, 3, 1)
    assert recall.rule_wrong_label_right == 0 and recall.accuracy == 0.75
    assert recall.kappa == pytest.approx(0.5)
    f1 = rows["f1 >= 0.5"]
    assert (f1.agree, f1.rule_wrong_label_right, f1.rule_right_label_wrong) == (3, 1, 0)
    em = rows["em = 1"]
    assert (em.agree, em.rule_wrong_label_right) == (3, 1)


def test_kappa_is_undefined_when_both_raters_are_constant() -> None:
    assert cohen_kappa([(True, True), (True, True)]) is None
    assert cohen_kappa([]) is None
    assert cohen_kappa([(True, False), (False, True)]) == pytest.approx(-1.0)


def test_bad_label_files_are_clear_errors(tmp_path: Path) -> None:
    good = _write(tmp_path / "good.jsonl", [{"id": "long", "right": True, "why": "x"}])
    assert load_labels(good) == {"long": True}
    bad: list[tuple[list[dict[str, Any]], str]] = [
        ([{"id": "a"}], "not a label line"),
        ([{"id": "a", "right": "yes"}], "true or false"),
        ([{"id": "a", "right": True}, {"id": "a", "right": False}], "labelled twice"),
    ]
    for rows, message in bad:
        with pytest.raises(EvalError, match=message):
            load_labels(_write(tmp_path / "bad.jsonl", rows))
    with pytest.raises(EvalError, match="does not hold: ghost"):
        agreement(RECORDS, {"ghost": True})


def test_the_cli_prints_the_agreement_table(tmp_path: Path) -> None:
    run = make_run(tmp_path / "runs", "20260101T000000Z-xquad", {"f1": 0.5})
    lines = "".join(json.dumps(r) + "\n" for r in RECORDS)
    (run.path / "per_question.jsonl").write_text(lines, encoding="utf-8")
    labels = _write(
        tmp_path / "labels.jsonl", [{"id": k, "right": v, "why": ""} for k, v in LABELS.items()]
    )
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "agreement",
            run.path.name,
            "--labels",
            str(labels),
            "--runs-dir",
            str(tmp_path / "runs"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("4 labelled answers, 2 right by the reader")
    line = next(x for x in result.output.splitlines() if x.startswith("correct"))
    assert line.split()[-5:] == ["3", "0.750", "0.500", "1", "0"]
    # bench/prompt_ab.py's answers: the same lines, in a file of their own
    loose = tmp_path / "answers.jsonl"
    loose.write_text(lines, encoding="utf-8")
    direct = CliRunner().invoke(app, ["eval", "agreement", str(loose), "--labels", str(labels)])
    assert direct.exit_code == 0 and direct.output == result.output
    missing = CliRunner().invoke(app, ["eval", "agreement", str(run.path), "--labels", "nope"])
    assert missing.exit_code != 0 and "cannot read labels" in missing.output
