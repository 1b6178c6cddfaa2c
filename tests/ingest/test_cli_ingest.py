"""`docqa ingest|delete|cache stats` through the real command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from docqa.cli.main import app
from modelstore.cache import ModelCache
from modelstore.catalog import MODELS
from modelstore.onnx_export import choose_backend, embedder_id
from tests.conftest import TEST_MODELS_DIR

KEYS = {
    "files_new",
    "files_changed",
    "files_unchanged",
    "files_failed",
    "failures",
    "chunks_added",
    "chunks_removed",
    "cache_hits",
    "cache_misses",
    "seconds",
}


@pytest.fixture
def env(tmp_path: Path, test_models: ModelCache) -> dict[str, str]:
    return {
        "DOCQA_DATA_DIR": str(tmp_path / "data"),
        "DOCQA_MODELS_DIR": str(TEST_MODELS_DIR),
        "DOCQA_PROFILE": "test",
    }


def _run(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, args, env=env)
    return result.exit_code, result.stdout + result.stderr


def _report(out: str) -> dict[str, object]:
    line = next(ln for ln in reversed(out.splitlines()) if ln.startswith("{"))
    return dict(json.loads(line))


def test_ingest_json_report_and_exit_codes(env: dict[str, str], corpus: Path) -> None:
    code, out = _run(["ingest", str(corpus), "--json"], env)
    assert code == 0, out
    report = _report(out)
    assert set(report) >= KEYS
    assert report["files_new"] == 5 and report["failures"] == []

    code, out = _run(["ingest", str(corpus), "--json"], env)
    report = _report(out)
    assert code == 0 and report["files_unchanged"] == 5 and report["cache_misses"] == 0

    (corpus / "broken.pdf").write_bytes(b"%PDF-1.7 garbage")
    code, out = _run(["ingest", str(corpus), "--json"], env)
    report = _report(out)
    assert code == 2
    assert report["files_failed"] == 1
    assert report["failures"][0]["path"].endswith("broken.pdf") and report["failures"][0]["error"]

    code, out = _run(["ingest", str(corpus), "--collection", "x"], env)  # invalid name: fatal
    assert code == 1 and "collection" in out.lower()


def test_human_report_delete_and_cache_stats(env: dict[str, str], corpus: Path) -> None:
    code, out = _run(["ingest", str(corpus)], env)
    assert code == 0 and "files new 5" in out and "chunks/s" in out
    code, out = _run(["delete", "--source", str(corpus / "orbit-runbook.md")], env)
    assert code == 0 and "removed" in out
    code, out = _run(["delete", "--source", str(corpus / "orbit-runbook.md")], env)
    assert code == 1 and "no document" in out
    code, out = _run(["cache", "stats", "--json"], env)
    stats = json.loads(out)
    assert code == 0 and stats["entries"] > 0 and stats["misses"] > 0
    minilm = MODELS["all-minilm-l6-v2"]
    expected = embedder_id(minilm.name, choose_backend("auto", minilm, "cpu"))
    assert stats["by_model"] == {expected: stats["entries"]}


def test_another_embedder_on_an_existing_collection_says_reindex(
    env: dict[str, str], corpus: Path
) -> None:
    assert _run(["ingest", str(corpus / "orbit-runbook.md")], env)[0] == 0
    other = ModelCache(TEST_MODELS_DIR).status(MODELS["all-minilm-l6-v2"]).path
    env_other = {**env, "DOCQA_EMBEDDER": str(other)}  # same weights, another model id
    code, out = _run(["ingest", str(corpus / "orbit-runbook.md")], env_other)
    assert code == 1 and "re-index" in out
    code, out = _run(["ingest", str(corpus / "orbit-runbook.md"), "--reindex", "--json"], env_other)
    assert code == 0, out
    assert _report(out)["files_new"] == 1
