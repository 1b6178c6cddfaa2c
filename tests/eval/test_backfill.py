"""``docqa eval backfill``: the coverage measured after a run is the one its service measured.

Real models (SmolLM2, MiniLM), Chroma and BM25: a run records coverage as the service computed
it; with it stripped from the lines (a run made before coverage was a part), the backfill asks
the run's retrieval again and must give every answer the same value, the noise run's shuffled
passages included, and none to an answer whose record no longer matches its retrieval.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings
from eval.backfill import backfill_coverage, needs_coverage
from eval.runconfig import RunSpec
from eval.runner import run_evaluation
from eval.store import BACKFILL, PER_QUESTION, Run
from modelstore.cache import ModelCache

TINY = Path(__file__).resolve().parents[1] / "data" / "eval" / "tiny.jsonl"


def _strip_coverage(run: Run) -> dict[str, float]:
    """Remove coverage from every line as an older run lacks it; return what was recorded."""
    lines = run.records(backfilled=False)
    recorded = {}
    for line in lines:
        parts = line.get("confidence_parts") or {}
        if parts.get("support") is not None:
            recorded[line["id"]] = parts.pop("coverage")
    text = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
    (run.path / PER_QUESTION).write_text(text, encoding="utf-8")
    return recorded


def _rewrite(run: Run, qid: str, **changes: Any) -> None:
    lines = run.records(backfilled=False)
    for line in lines:
        if line["id"] == qid:
            line.update(changes)
    text = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
    (run.path / PER_QUESTION).write_text(text, encoding="utf-8")


@pytest.mark.slow
@pytest.mark.parametrize("noise", [0, 2])
def test_the_backfill_measures_the_coverage_the_service_recorded(
    settings: Settings, test_models: ModelCache, noise: int
) -> None:
    small = settings.model_copy(update={"answer_max_tokens": 8, "evidence_floor": 0.0})
    spec = RunSpec(dataset=TINY, format="jsonl", top_k=2, noise_passages=noise, name="bf")
    run = run_evaluation(small, spec, progress=False).run
    recorded = _strip_coverage(run)
    assert len(recorded) >= 3 and all(isinstance(v, float) for v in recorded.values())
    assert len(set(recorded.values())) > 1  # questions differ in how much the top passage holds
    assert all(needs_coverage(r) for r in run.records() if r["id"] in recorded)
    # One answer's record no longer matches its retrieval (the index changed since, say).
    broken = sorted(recorded)[0]
    if noise:
        _rewrite(run, broken, citations=[{"n": 1, "chunk_id": "gone", "doc_id": "x"}])
    else:
        line = next(r for r in run.records() if r["id"] == broken)
        _rewrite(run, broken, retrieved=list(reversed(line["retrieved"])))
    before = (run.path / PER_QUESTION).read_bytes()

    done = backfill_coverage(small, run, progress=False)

    assert done.unchecked == [broken] and done.measured == len(recorded) - 1
    got = {r["id"]: (r["confidence_parts"] or {}).get("coverage") for r in run.records()}
    assert got[broken] is None
    assert {k: got[k] for k in recorded if k != broken} == {
        k: v for k, v in recorded.items() if k != broken
    }
    assert (run.path / PER_QUESTION).read_bytes() == before  # the record stays as recorded
    assert json.loads((run.path / BACKFILL).read_text())["code"]["commit"] is not None
    # Again: only the unmatched answer is tried again; what was measured is kept.
    again = backfill_coverage(small, run, progress=False)
    assert again.measured == 0 and again.unchecked == [broken]
    assert {r["id"]: (r["confidence_parts"] or {}).get("coverage") for r in run.records()} == got


def _old_run(tmp_path: Path, settings: Settings, collection: str | None = None) -> Run:
    """A run folder recorded before coverage existed, over a copy of the tiny data set."""
    from eval.collection import collection_key, collection_name
    from eval.datasets import load_dataset
    from eval.provenance import dataset_sha256
    from eval.store import create_run, write_json

    tmp_path.mkdir(parents=True, exist_ok=True)
    data = tmp_path / "tiny.jsonl"
    data.write_bytes(TINY.read_bytes())
    evalset = load_dataset(data, "jsonl")
    sha = dataset_sha256(data, evalset.files)
    own = collection_name(evalset.name, collection_key(settings, sha, frozenset()))
    run = create_run(tmp_path / "runs", "old")
    write_json(
        run.path / "config.json",
        {
            "name": "old",
            "seed": 0,
            "dataset": {"path": str(data), "format": "jsonl", "sha256": sha},
            "selection": {"removed_docs": []},
            "collection": {"name": collection or own},
            "mode": {"top_k": 2, "noise_passages": 0},
        },
    )
    parts = {"retrieval": 0.9, "support": 0.5, "certainty": 0.7}
    run.append({"id": "q-vacation", "question": "How many days?", "confidence_parts": parts})
    return run


def test_the_backfill_refuses_a_run_whose_retrieval_it_cannot_rebuild(
    tmp_path: Path, settings: Settings
) -> None:
    from eval.errors import EvalError

    changed = _old_run(tmp_path / "a", settings)
    data = tmp_path / "a" / "tiny.jsonl"
    data.write_text(data.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    with pytest.raises(EvalError, match="changed since the run"):
        backfill_coverage(settings, changed, progress=False)
    other = _old_run(tmp_path / "b", settings, collection="eval-tiny-0123456789ab")
    with pytest.raises(EvalError, match="use the run's --profile"):
        backfill_coverage(settings, other, progress=False)
    gone = _old_run(tmp_path / "c", settings)
    (tmp_path / "c" / "tiny.jsonl").unlink()
    with pytest.raises(EvalError, match="not there"):
        backfill_coverage(settings, gone, progress=False)
    # Nothing to measure: nothing is opened, so a missing data set does not matter.
    parts = {"retrieval": 0.9, "support": 0.5, "certainty": 0.7, "coverage": 0.5}
    done = _old_run(tmp_path / "d", settings)
    (done.path / PER_QUESTION).write_text(
        json.dumps({"id": "q-vacation", "confidence_parts": parts}) + "\n", encoding="utf-8"
    )
    (tmp_path / "d" / "tiny.jsonl").unlink()
    assert backfill_coverage(settings, done, progress=False).measured == 0
    assert not (done.path / BACKFILL).exists()
