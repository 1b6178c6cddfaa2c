"""Run folders: appending lines, a cut-short last line, resolving and resuming runs."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from eval.errors import EvalError, RunNotFoundError
from eval.store import PER_QUESTION, create_run, find_resumable, resolve_run, safe_name
from tests.eval.conftest import make_run

NOW = dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.UTC)


def test_run_folder_names(tmp_path: Path) -> None:
    first = create_run(tmp_path, "xquad zh", NOW)
    second = create_run(tmp_path, "xquad zh", NOW)
    assert first.name == "20260304T050607Z-xquad-zh"
    assert second.name == "20260304T050607Z-xquad-zh-2"
    assert safe_name("../../etc") == "etc"


def test_append_and_read_back(tmp_path: Path) -> None:
    run = create_run(tmp_path, "r", NOW)
    assert run.records() == []
    run.append({"id": "q1", "answer": "九十天"})
    run.append({"id": "q2", "answer": None})
    assert [r["id"] for r in run.records()] == ["q1", "q2"]
    raw = (run.path / PER_QUESTION).read_text(encoding="utf-8")
    assert raw.endswith("\n") and "九十天" in raw  # UTF-8, not \u escapes


def test_a_cut_short_last_line_is_dropped_and_cut(tmp_path: Path) -> None:
    run = create_run(tmp_path, "r", NOW)
    for i in range(3):
        run.append({"id": f"q{i}", "metrics": {"f1": 0.5}})
    path = run.path / PER_QUESTION
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 9])  # SIGKILL in the middle of writing line 3
    assert [r["id"] for r in run.records()] == ["q0", "q1"]
    assert path.read_bytes() == data[: data.index(b"\n", data.index(b"q1")) + 1]
    run.append({"id": "q2", "metrics": {"f1": 0.5}})  # the resumed run starts on a clean line
    assert [r["id"] for r in run.records()] == ["q0", "q1", "q2"]
    assert path.read_bytes() == data


def test_a_complete_last_line_without_its_newline_is_kept(tmp_path: Path) -> None:
    run = create_run(tmp_path, "r", NOW)
    path = run.path / PER_QUESTION
    path.write_text('{"id": "q0"}\n{"id": "q1"}', encoding="utf-8")
    assert [r["id"] for r in run.records()] == ["q0", "q1"]
    run.append({"id": "q2"})
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["q0", "q1", "q2"]


def test_a_damaged_line_in_the_middle_is_an_error(tmp_path: Path) -> None:
    run = create_run(tmp_path, "r", NOW)
    (run.path / PER_QUESTION).write_text('{"id": "q0"}\n{"id": \n{"id": "q2"}\n')
    with pytest.raises(EvalError, match=r"per_question.jsonl:2: damaged line"):
        run.records()


def test_resolve_by_path_name_or_prefix(tmp_path: Path) -> None:
    a = make_run(tmp_path, "20260101T000000Z-alpha", {})
    make_run(tmp_path, "20260101T000000Z-beta", {})
    assert resolve_run(str(a.path), tmp_path / "elsewhere") == a
    assert resolve_run("20260101T000000Z-alpha", tmp_path) == a
    assert resolve_run("20260101T000000Z-al", tmp_path) == a
    with pytest.raises(RunNotFoundError, match="several runs"):
        resolve_run("20260101", tmp_path)
    with pytest.raises(RunNotFoundError, match="no run 'gamma'"):
        resolve_run("gamma", tmp_path)


def test_find_resumable_wants_an_unfinished_run_with_the_same_inputs(tmp_path: Path) -> None:
    make_run(tmp_path, "20260101T000000Z-tiny", {"hit@5": 1.0})  # finished: never resumed
    unfinished = make_run(tmp_path, "20260102T000000Z-tiny", None)
    assert find_resumable(tmp_path, "tiny", "f" * 64) == unfinished
    assert find_resumable(tmp_path, "tiny", "0" * 64) is None  # other inputs
    assert find_resumable(tmp_path, "other", "f" * 64) is None
    assert find_resumable(tmp_path / "missing", "tiny", "f" * 64) is None


def test_backfilled_parts_fill_in_what_a_line_lacks_and_the_file_stays_as_recorded(
    tmp_path: Path,
) -> None:
    from eval.store import BACKFILL, write_json

    run = make_run(tmp_path, "20260101T000000Z-old", None)
    old = {"retrieval": 0.9, "support": 0.5, "certainty": 0.7}
    run.append({"id": "a", "confidence_parts": dict(old)})
    run.append({"id": "b", "confidence_parts": {**old, "coverage": 0.25}})  # measured: kept
    run.append({"id": "c", "confidence_parts": None})  # a retrieval-only line
    run.append({"id": "d", "confidence_parts": dict(old)})  # not backfilled: stays without
    before = (run.path / PER_QUESTION).read_bytes()
    write_json(run.path / BACKFILL, {"parts": {"coverage": {"a": 0.5, "b": 1.0, "c": 1.0}}})
    got = {r["id"]: r["confidence_parts"] for r in run.records()}
    assert got["a"] == {**old, "coverage": 0.5}
    assert got["b"]["coverage"] == 0.25
    assert got["c"] is None and "coverage" not in got["d"]
    raw = {r["id"]: r["confidence_parts"] for r in run.records(backfilled=False)}
    assert raw["a"] == old and raw["d"] == old
    assert (run.path / PER_QUESTION).read_bytes() == before
