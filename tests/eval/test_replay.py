"""Thresholds replayed on recorded answers: declines under a higher floor, flags under another
low-confidence threshold, and the refusal of what cannot be replayed."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from app.answer.confidence import ConfidenceFit, Parts
from docqa.cli.main import app
from eval.errors import EvalError
from eval.replay import (
    check_floor,
    floor_label,
    outcome,
    parse_floor,
    replay,
    replay_rows,
    run_floor,
)
from eval.store import Run, write_json
from modelstore.catalog import MODELS
from tests.eval.conftest import make_run


def _q(
    qid: str, answerable: bool, p: float | None, correct: bool, conf: float, declined: bool = False
) -> dict[str, Any]:
    return {
        "id": qid,
        "answerable": answerable,
        "declined": declined,
        "p_answerable": p,
        "confidence": conf,
        "metrics": {"correct": correct},
    }


RECORDS = [
    _q("a1", True, 0.95, True, 0.9),
    _q("a2", True, 0.78, True, 0.6),
    _q("a3", True, 0.90, False, 0.4),  # a confident-looking check, a wrong answer
    _q("a4", True, 0.70, False, 0.3, declined=True),  # declined by the run's own floor 0.75
    _q("u1", False, 0.77, False, 0.7),  # an invented answer
    _q("u2", False, 0.50, True, 0.1, declined=True),
    {
        "id": "beir",
        "answerable": True,
        "declined": False,
        "p_answerable": 0.9,
        "confidence": 0.5,
        "metrics": {"correct": None},
    },  # not judged: left out
]


def test_a_higher_floor_declines_what_its_recorded_p_yes_puts_under_it() -> None:
    at_run = replay(RECORDS, 0.75, 0.5)
    assert (at_run.questions, at_run.answerable, at_run.unanswerable) == (6, 4, 2)
    assert at_run.answerable_declined == pytest.approx(1 / 4)
    assert at_run.decline_recall == pytest.approx(1 / 2)
    assert at_run.right_answerable == pytest.approx(2 / 4)
    # answered: a1 (0.9, right), a2 (0.6, right), a3 (0.4, wrong), u1 (0.7, wrong)
    assert at_run.kept == 3 and at_run.kept_precision == pytest.approx(2 / 3)
    assert at_run.flagged == pytest.approx(1 / 4)
    higher = replay(RECORDS, 0.80, 0.5)  # a2 and u1 are declined now
    assert higher.answerable_declined == pytest.approx(2 / 4)
    assert higher.decline_recall == 1.0
    assert higher.right_answerable == pytest.approx(1 / 4)
    assert higher.kept == 1 and higher.kept_precision == 1.0
    stricter = replay(RECORDS, 0.75, 0.65)  # only flags move
    assert stricter.kept == 2 and stricter.kept_precision == pytest.approx(1 / 2)
    assert stricter.answerable_declined == at_run.answerable_declined


def _run(tmp_path: Path, name: str, config: dict[str, Any]) -> Run:
    run = make_run(tmp_path, name, {"f1": 0.5})
    write_json(run.path / "config.json", {**run.config(), **config})
    lines = "".join(json.dumps(r) + "\n" for r in RECORDS)
    (run.path / "per_question.jsonl").write_text(lines, encoding="utf-8")
    return run


def test_the_runs_floor_is_recorded_or_taken_from_the_setting_or_the_catalog(
    tmp_path: Path,
) -> None:
    recorded = _run(tmp_path, "20260101T000000Z-a", {"answerable_floor": 0.8})
    setting = _run(
        tmp_path, "20260101T000000Z-b", {"settings": {"answerable_floor": {"value": "0.7"}}}
    )
    catalog = _run(
        tmp_path,
        "20260101T000000Z-c",
        {
            "settings": {"answerable_floor": {"value": ""}},
            "models": {"generator": {"id": "qwen2.5-coder-1.5b-instruct"}},
        },
    )
    none = _run(
        tmp_path, "20260101T000000Z-d", {"models": {"generator": {"id": "smollm2-135m-instruct"}}}
    )
    assert [run_floor(r) for r in (recorded, setting, catalog, none)] == [0.8, 0.7, 0.75, None]
    with pytest.raises(EvalError, match="lower floor cannot be replayed"):
        check_floor([catalog], 0.7)
    with pytest.raises(EvalError, match="no answerability check"):
        check_floor([none], 0.8)
    check_floor([catalog, setting], 0.8)
    rows = replay_rows([catalog, setting], [0.8], [0.5])
    assert [r[0] for r in rows] == ["c", "b", "all"]
    assert rows[-1][5] == "12"  # pooled: both runs' judged questions


def test_the_cli_replays_each_floor_and_threshold(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    run = _run(runs, "20260101T000000Z-x", {"answerable_floor": 0.75})
    args = ["eval", "replay", run.path.name, "--runs-dir", str(runs)]
    out = CliRunner().invoke(
        app, [*args, "--answerable-floor", "0.75,0.8", "--low-confidence", "0.5"]
    )
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert lines[0].split()[:3] == ["set", "floor", "confidence"]
    assert [line.split()[1] for line in lines[1:]] == ["0.75", "0.80"]
    assert lines[2].split()[2:4] == ["–", "–"]  # the recorded confidence, no fitted declines
    assert lines[2].split()[6:8] == ["50.0%", "100.0%"]
    refused = CliRunner().invoke(app, [*args, "--answerable-floor", "0.5"])
    assert refused.exit_code != 0 and "cannot be replayed" in refused.output
    default = CliRunner().invoke(app, args)  # the run's own floor
    assert default.exit_code == 0 and default.output.splitlines()[1].split()[1] == "0.75"
    plot = tmp_path / "figures" / "reliability.png"
    plotted = CliRunner().invoke(app, [*args, "--plot", str(plot)])
    assert plotted.exit_code == 0 and f"reliability diagrams: {plot}" in plotted.output
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000


def test_a_floor_may_differ_by_language() -> None:
    """P(yes) runs lower in English: a floor per language declines by each question's own."""
    zh = [{**r, "id": f"zh-{r['id']}", "language": "zh"} for r in RECORDS]
    en = [{**r, "language": "en"} for r in RECORDS]
    both = replay([*en, *zh], parse_floor("en:0.75/zh:0.80"), 0.5)
    alone_en, alone_zh = replay(en, 0.75, 0.5), replay(zh, 0.80, 0.5)
    assert both.answerable_declined == pytest.approx(
        (alone_en.answerable_declined + alone_zh.answerable_declined) / 2
    )
    assert both.decline_recall == pytest.approx((0.5 + 1.0) / 2)
    assert floor_label(parse_floor("zh:0.8/en:0.7")) == "en:0.70/zh:0.80"
    with pytest.raises(ValueError, match="unknown language"):
        parse_floor("fr:0.7")


def test_a_per_language_floor_under_the_runs_is_refused(tmp_path: Path) -> None:
    run = _run(tmp_path, "20260101T000000Z-r", {"answerable_floor": 0.75})
    check_floor([run], parse_floor("en:0.75/zh:0.9"))
    with pytest.raises(EvalError, match="lower floor"):
        check_floor([run], parse_floor("en:0.70/zh:0.9"))


PARTS = {"retrieval": 0.9, "support": 1.0, "certainty": 0.5}


def test_a_fit_replays_as_the_service_computes_it_and_declines_under_its_level() -> None:
    """Each answer's fitted P(right) from its recorded parts and P(yes), the service's own
    ``ConfidenceFit.probability``; DOCQA_DECLINE_BELOW declines under it; an answer without
    recorded parts keeps its recorded confidence, and the floor still goes first."""
    fit = ConfidenceFit(intercept=-2.0, support=2.0, answerable=1.0)  # P(right) = P(yes)
    records = [
        {**_q("a1", True, 0.9, True, 0.5), "confidence_parts": PARTS},
        {**_q("a2", True, 0.6, False, 0.5), "confidence_parts": PARTS},
        {**_q("u1", False, 0.3, False, 0.9), "confidence_parts": PARTS},
        _q("old", True, 0.95, True, 0.8),  # a run from before parts were recorded
        {**_q("a4", True, 0.2, False, 0.3, declined=True), "confidence_parts": PARTS},
    ]
    assert outcome(records[0], 0.0, fit) == (False, pytest.approx(0.9))
    assert outcome(records[0], 0.0, fit)[1] == fit.probability(Parts(0.9, 1.0, 0.5), 0.9)
    assert outcome(records[3], 0.0, fit, 0.99) == (False, 0.8)  # no parts: nothing to refit
    assert outcome(records[0], 0.95, fit) == (True, 0.5)  # under the floor: declined first
    plain = replay(records, 0.0, 0.5)
    fitted = replay(records, 0.0, 0.5, fit)
    assert plain.kept_precision == pytest.approx(2 / 4) and plain.decline_recall == 0.0
    assert fitted.kept_precision == pytest.approx(2 / 3)  # u1 (0.3) is flagged now
    declining = replay(records, 0.0, 0.5, fit, decline_below=0.5)
    assert declining.decline_recall == 1.0  # u1 declined: its P(right) is 0.3
    assert declining.answerable_declined == pytest.approx(1 / 4)  # a4, the run's own
    assert replay(records, 0.0, 0.5, fit, decline_below=0.7).answerable_declined == 0.5
    # The question's language, as the run recorded it, goes in as the service passes it.
    by_language = ConfidenceFit(intercept=0.0, chinese=-1.0)
    zh = {**records[0], "language": "zh"}
    assert outcome(zh, 0.0, by_language)[1] == pytest.approx(0.268941, abs=1e-6)
    assert outcome(records[0], 0.0, by_language)[1] == 0.5


def test_the_cli_replays_the_settings_fit_only_for_its_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = tmp_path / "runs"
    models = {
        "generator": {"id": "qwen2.5-coder-1.5b-instruct"},
        "embedder": {"id": "multilingual-e5-small"},
    }
    run = _run(runs, "20260101T000000Z-x", {"answerable_floor": 0.0, "models": models})
    with_parts = [{**r, "confidence_parts": PARTS} for r in RECORDS]
    lines = "".join(json.dumps(r) + "\n" for r in with_parts)
    (run.path / "per_question.jsonl").write_text(lines, encoding="utf-8")
    args = ["eval", "replay", run.path.name, "--runs-dir", str(runs)]
    spec = MODELS["qwen2.5-coder-1.5b-instruct"]
    monkeypatch.setitem(MODELS, spec.name, replace(spec, confidence_fit=None))
    none = CliRunner().invoke(app, ["--profile", "default", *args, "--fitted"])
    assert none.exit_code == 2 and "no confidence fit" in none.output
    monkeypatch.setenv("DOCQA_CONFIDENCE_FIT", '{"intercept": -2.0, "answerable": 1.0}')
    out = CliRunner().invoke(app, [*args, "--fitted", "--decline-below", "none,0.8"])
    assert out.exit_code == 0, out.output
    rows = [line.split() for line in out.output.splitlines()[1:]]
    assert [r[2:4] for r in rows] == [["fitted", "–"], ["fitted", "0.80"]]
    # P(right) = sigmoid(log-odds of P(yes) - 2), at most 0.72 here: 0.8 declines every answer
    assert rows[0][7] == "50.0%" and rows[1][7] == "100.0%"  # decline recall
    assert rows[1][6] == "100.0%"  # answerable declined
    # The catalog's fit (no DOCQA_CONFIDENCE_FIT) is for its generator and embedder only.
    monkeypatch.delenv("DOCQA_CONFIDENCE_FIT")
    fitted_spec = replace(
        spec,
        confidence_fit=(("intercept", -2.0), ("answerable", 1.0)),
        confidence_fit_embedder="multilingual-e5-small",
        decline_below=0.8,
        low_confidence=0.65,
    )
    monkeypatch.setitem(MODELS, spec.name, fitted_spec)
    catalog = CliRunner().invoke(app, ["--profile", "default", *args, "--fitted"])
    assert catalog.exit_code == 0, catalog.output
    # its decline level and its low-confidence threshold (the fit's scale)
    assert catalog.output.splitlines()[1].split()[2:5] == ["fitted", "0.80", "0.65"]
    recorded = CliRunner().invoke(app, ["--profile", "default", *args])
    assert recorded.output.splitlines()[1].split()[2:5] == ["–", "–", "0.50"]  # the sum's
    other = _run(runs, "20260101T000000Z-y", {"answerable_floor": 0.0})  # made with no models
    refused = CliRunner().invoke(
        app, ["--profile", "default", *args[:2], other.path.name, *args[3:], "--fitted"]
    )
    assert refused.exit_code == 2 and "the catalog's fit is for" in refused.output
