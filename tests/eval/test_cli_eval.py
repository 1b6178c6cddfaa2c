"""`docqa eval` end to end through the real command line with the test profile's real models
(SmolLM2-135M, all-MiniLM-L6-v2): run, reuse, compare, list, gates."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from docqa.cli.main import app
from eval.provenance import files_sha256
from modelstore.cache import ModelCache
from modelstore.catalog import MODELS
from tests.conftest import TEST_MODELS_DIR

TINY = Path(__file__).resolve().parents[1] / "data" / "eval" / "tiny.jsonl"
LINE_KEYS = {
    *("id", "question", "language", "gold_answers", "gold_docs", "answerable", "answer"),
    *("declined", "degraded", "confidence", "citations", "retrieved", "metrics", "timings_ms"),
    *("usage", "query_cached", "error"),
}


def _run(args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["--profile", "test", *args], env=env)
    return result.exit_code, result.stdout, result.stderr


def _eval_run(extra: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    base = ["eval", "run", "--dataset", str(TINY), "--format", "jsonl", "--no-progress"]
    return _run(base + extra, env)


def test_eval_end_to_end(tmp_path: Path, test_models: ModelCache) -> None:
    env = {
        "DOCQA_DATA_DIR": str(tmp_path / "data"),
        "DOCQA_MODELS_DIR": str(TEST_MODELS_DIR),
        "DOCQA_ANSWER_MAX_TOKENS": "16",  # SmolLM2's answers are poor anyway; keep CI quick
        "DOCQA_API_KEYS": '["very-secret-key"]',
    }
    runs_dir = tmp_path / "data" / "runs"

    # A misspelt gate fails at once, before any model loads or any run folder exists.
    code, _, err = _eval_run(["--fail-under", "hit@3=0.5"], env)
    assert code == 2 and "unknown metric 'hit@3'" in err
    assert not runs_dir.exists()

    # A full run: every question through the /v1/ask code path, two gates that hold.
    gates = ["--fail-under", "hit@5=0.75", "--fail-over", "p95_ms=600000"]
    code, out, err = _eval_run(["--name", "tiny", "--top-k", "2", *gates], env)
    assert code == 0, out + err
    assert "all 2 gates held" in out
    (run_a,) = sorted(runs_dir.iterdir())
    assert run_a.name.endswith("-tiny")
    assert {p.name for p in run_a.iterdir()} == {
        *("config.json", "metrics.json", "per_question.jsonl", "report.html"),
    }

    config = json.loads((run_a / "config.json").read_text(encoding="utf-8"))
    assert "very-secret-key" not in (run_a / "config.json").read_text(encoding="utf-8")
    assert config["settings"]["api_keys"]["value"] == "[1 masked]"
    assert config["settings"]["answer_max_tokens"] == {"value": "16", "origin": "env"}
    generator = config["models"]["generator"]
    assert generator["id"] == "smollm2-135m-instruct"
    assert generator["sha256"] == MODELS["smollm2-135m-instruct"].source.sha256  # type: ignore[union-attr]
    assert config["models"]["embedder"]["id"] == "all-minilm-l6-v2"
    assert len(config["models"]["embedder"]["sha256"]) == 64  # digest of the model folder
    assert "commit" in config["code"]
    assert config["dataset"]["sha256"] == files_sha256([TINY], TINY.parent)
    assert config["arguments"]["fail_under"] == "hit@5=0.75"
    assert config["arguments"]["global_profile"] == "test"
    assert config["seed"] == 0 and config["mode"]["top_k"] == 2

    lines = [
        json.loads(line)
        for line in (run_a / "per_question.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert [r["id"] for r in lines] == [
        *("q-vacation", "q-laptop", "q-parking", "q-canteen-zh", "q-offtopic"),
    ]
    for r in lines:
        assert set(r) >= LINE_KEYS
        stages = {"embed", "retrieve", "rerank", "generate", "total"}
        # first_token: when the LLM generated at least one token (not for a decline before it)
        assert set(r["timings_ms"]) in (stages, stages | {"first_token"})
        assert isinstance(r["answer"], str) and r["answer"]
        for citation in r["citations"]:
            assert citation["doc_id"] in {"vacation", "laptops", "parking", "canteen-zh", "library"}
    zh = next(r for r in lines if r["id"] == "q-canteen-zh")
    assert zh["language"] == "zh" and zh["gold_answers"] == ["十五元"]
    off = next(r for r in lines if r["id"] == "q-offtopic")
    assert off["answerable"] is False and off["metrics"]["f1"] is None

    result = json.loads((run_a / "metrics.json").read_text(encoding="utf-8"))
    metrics = result["metrics"]
    assert metrics["hit@5"] == 1.0
    for name in ("em", "f1", "decline_rate", "decline_recall", "ece", "p50_ms", "p95_ms"):
        assert metrics[name] is not None, name
    assert metrics["p95_ms"] >= metrics["p50_ms"] > 0
    assert result["counts"] == result["counts"] | {"questions": 5, "unanswerable": 1}
    assert result["run"]["collection_reused"] is False
    report = (run_a / "report.html").read_text(encoding="utf-8")
    assert report.count("data:image/png;base64,") == 3 and "q-canteen-zh" in report

    # A second run on the same data set and settings reuses the collection.
    code, out, err = _eval_run(["--name", "tiny-ret", "--retrieval-only"], env)
    assert code == 0, out + err
    (run_b,) = [p for p in runs_dir.iterdir() if p != run_a]
    second = json.loads((run_b / "metrics.json").read_text(encoding="utf-8"))
    assert second["run"]["collection_reused"] is True
    assert second["run"]["collection"] == result["run"]["collection"]
    assert second["metrics"]["hit@5"] == 1.0 and second["metrics"]["f1"] is None

    code, out, err = _run(["eval", "compare", run_a.name, str(run_b)], env)
    assert code == 0, out + err
    rows = {line.split()[0]: line.split() for line in out.splitlines()[3:] if line.strip()}
    assert rows["hit@5"][1:] == ["1.000", "1.000", "+0.000", "="]
    assert rows["f1"][2] == "–"  # not measured in the retrieval-only run B

    code, out, _ = _run(["eval", "runs"], env)
    assert code == 0 and run_a.name in out and run_b.name in out

    code, _, err = _run(["eval", "compare", run_a.name, "no-such-run"], env)
    assert code == 2 and "no run 'no-such-run'" in err

    # Breached gates: exit 1, one message per breach.
    breach = ["--fail-under", "f1=0.1,hit@5=0.5", "--fail-over", "p95_ms=0.001"]
    code, out, err = _eval_run(["--name", "gate", "--retrieval-only", *breach], env)
    assert code == 1
    assert "gate breached: f1 was not measured in this run" in err
    assert "gate breached: p95_ms = " in err and "is over 0.001" in err
    assert "hit@5" not in err  # that one held
