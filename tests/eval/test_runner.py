"""The runner with the real MiniLM embedder, Chroma and BM25, retrieval only (no generator):
collection build and reuse, resume after a kill, unanswerable removal, file documents."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from config.settings import Settings
from eval.errors import ResumeMismatchError
from eval.runconfig import RunSpec
from eval.runner import run_evaluation
from eval.store import write_json
from modelstore.cache import ModelCache

DATA = Path(__file__).resolve().parents[1] / "data"
TINY = DATA / "eval" / "tiny.jsonl"
QUALITY = ("hit@1", "hit@5", "hit@10", "mrr@10")


def _lines(run_dir: Path) -> list[dict[str, object]]:
    text = (run_dir / "per_question.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def test_a_killed_run_resumes_where_it_stopped(settings: Settings, test_models: ModelCache) -> None:
    spec = RunSpec(dataset=TINY, format="jsonl", retrieval_only=True, name="tiny-ret")
    first = run_evaluation(settings, spec, progress=False)
    assert first.resumed == 0
    assert first.run.path.parent == settings.data_dir / "runs"
    assert first.metrics["run"]["collection_reused"] is False
    assert first.metrics["metrics"]["hit@5"] == 1.0  # five documents: every gold is in the top 5
    assert first.metrics["metrics"]["f1"] is None  # no answers in a retrieval-only run
    before = _lines(first.run.path)
    assert [r["id"] for r in before] == [
        *("q-vacation", "q-laptop", "q-parking", "q-canteen-zh", "q-offtopic"),
    ]
    # every chunk maps back to a data set document
    known = {"vacation", "laptops", "parking", "canteen-zh", "library"}
    assert all(set(r["retrieved"]) <= known for r in before)  # type: ignore[arg-type]

    # SIGKILL while the last line was being written: half a line, no metrics, no report
    path = first.run.path / "per_question.jsonl"
    data = path.read_bytes()
    last_start = data.rstrip(b"\n").rfind(b"\n") + 1
    path.write_bytes(data[: last_start + (len(data) - last_start) // 2])
    (first.run.path / "metrics.json").unlink()
    (first.run.path / "report.html").unlink()

    second = run_evaluation(settings, spec, progress=False)  # same name and inputs: continues
    assert second.run.path == first.run.path
    assert second.resumed == 4
    assert second.metrics["run"]["collection_reused"] is True
    after = _lines(second.run.path)
    assert [r["id"] for r in after] == [r["id"] for r in before]
    assert after[-1]["retrieved"] == before[-1]["retrieved"]
    for name in QUALITY:
        assert second.metrics["metrics"][name] == first.metrics["metrics"][name]
    assert (second.run.path / "report.html").is_file()
    # The cost to ask is summed over every line, the resumed session's and the first one's.
    assert all(isinstance(r["cpu_ms"], float) and r["cpu_ms"] > 0 for r in after)
    cost = second.metrics["run"]
    assert cost["question_cpu_s"] == round(sum(r["cpu_ms"] for r in after) / 1000.0, 3)  # type: ignore[misc]
    assert cost["question_wall_s"] > 0

    # a finished run is not continued: the same command starts a new run
    third = run_evaluation(settings, spec, progress=False)
    assert third.run.path != first.run.path and third.resumed == 0
    # ... unless named: then nothing is asked, metrics and report are written again
    again = run_evaluation(settings, spec, resume=first.run.name, progress=False)
    assert again.run.path == first.run.path and again.resumed == 5
    assert again.metrics["metrics"] == second.metrics["metrics"]

    # --resume with other inputs is refused, naming what differs
    other = RunSpec(dataset=TINY, format="jsonl", retrieval_only=True, name="tiny-ret", seed=9)
    with pytest.raises(ResumeMismatchError, match="seed"):
        run_evaluation(settings, other, resume=first.run.name, progress=False)


def test_unanswerable_questions_lose_their_documents(
    settings: Settings, test_models: ModelCache
) -> None:
    spec = RunSpec(
        dataset=TINY, format="jsonl", retrieval_only=True, unanswerable_fraction=0.4, seed=1
    )
    result = run_evaluation(settings, spec, progress=False)
    config = json.loads((result.run.path / "config.json").read_text(encoding="utf-8"))
    removed = set(config["selection"]["removed_docs"])
    assert len(removed) == 2  # ceil(0.4 * 5) = 2 questions, one gold document each
    lines = _lines(result.run.path)
    unanswerable = {r["id"] for r in lines if not r["answerable"]}
    assert len(unanswerable) == 3  # the two drawn + the data set's own off-topic question
    for r in lines:
        assert not removed & set(r["retrieved"])  # type: ignore[arg-type]
        if not r["answerable"]:
            assert r["metrics"]["hit@1"] is None  # type: ignore[index]
    staged = settings.data_dir / "eval" / "staging" / config["collection"]["name"]
    assert {p.stem for p in staged.iterdir()} == {
        "vacation",
        "laptops",
        "parking",
        "canteen-zh",
        "library",
    } - removed
    assert result.metrics["counts"]["unanswerable"] == 3


def test_documents_given_by_path_go_through_their_parsers(
    settings: Settings, test_models: ModelCache
) -> None:
    spec = RunSpec(dataset=DATA / "eval_gate.jsonl", format="jsonl", retrieval_only=True)
    result = run_evaluation(settings, spec, progress=False)
    ingest = result.metrics["run"]["ingest"]
    assert ingest["files_new"] == 5 and ingest["files_failed"] == 0  # md, html, pdf, docx
    staged = settings.data_dir / "eval" / "staging" / result.metrics["run"]["collection"]
    assert sorted(p.suffix for p in staged.iterdir()) == [".docx", ".html", ".md", ".md", ".pdf"]
    docs = {"orbit-runbook", "orbit-faq-zh", "release-notes", "security-policy", "onboarding-zh"}
    lines = _lines(result.run.path)
    assert all(set(r["retrieved"]) <= docs for r in lines)  # type: ignore[arg-type]
    assert result.metrics["metrics"]["hit@1"] >= 0.5


def test_a_conversation_set_measures_rewrite_and_retrieval(
    settings: Settings, test_models: ModelCache
) -> None:
    """Each follow-up goes through /v1/ask's flow with its history: the rewritten question is
    recorded and is what the ranking comes from (SmolLM2's rewrites are weak: the test checks
    the path, the quality is measured with the default profile in docs/EVALUATION.md)."""
    small = settings.model_copy(update={"answer_max_tokens": 8})
    spec = RunSpec(dataset=DATA / "conversations.jsonl", format="jsonl", limit=3, seed=1)
    result = run_evaluation(small, spec, progress=False)
    lines = _lines(result.run.path)
    assert len(lines) == 3
    for line in lines:
        history = line["history"]
        assert isinstance(history, list) and history[0]["role"] == "user"  # type: ignore[index]
        query = line["query"]
        assert isinstance(query, str) and query and query != line["question"]
        assert "\n" not in query  # one standalone question, never turns joined
        parts = line["confidence_parts"]  # recorded, to refit the confidence on runs
        assert isinstance(parts, dict) and "retrieval" in parts
    assert result.metrics["metrics"]["hit@5"] is not None


def test_a_run_is_not_continued_by_other_code(settings: Settings, test_models: ModelCache) -> None:
    """A run's numbers come from one code version (its config names the commit): an unfinished
    run started at another commit is not continued automatically, and --resume refuses to add
    answers to it, naming both commits; a finished one can still be re-reported."""
    spec = RunSpec(dataset=TINY, format="jsonl", retrieval_only=True, name="tiny-code")
    first = run_evaluation(settings, spec, progress=False)
    config = first.run.config()
    config["code"] = {"commit": "0123456789abcdef", "dirty": False}
    write_json(first.run.path / "config.json", config)
    again = run_evaluation(settings, spec, resume=first.run.name, progress=False)
    assert again.run.path == first.run.path  # finished: metrics recomputed, nothing asked
    lines = (first.run.path / "per_question.jsonl").read_text(encoding="utf-8").splitlines()
    (first.run.path / "per_question.jsonl").write_text("\n".join(lines[:2]) + "\n")
    (first.run.path / "metrics.json").unlink()
    with pytest.raises(ResumeMismatchError, match="started at code 0123456789"):
        run_evaluation(settings, spec, resume=first.run.name, progress=False)
    fresh = run_evaluation(settings, spec, progress=False)  # not continued: a new run
    assert fresh.run.path != first.run.path and fresh.resumed == 0
