"""`docqa models list|prepare` through the real command line, on the prepared test models."""

from __future__ import annotations

from typer.testing import CliRunner

from docqa.cli.main import app
from modelstore.cache import ModelCache
from tests.conftest import TEST_MODELS_DIR


def test_list_shows_the_test_profile_ready(test_models: ModelCache) -> None:
    env = {"DOCQA_MODELS_DIR": str(TEST_MODELS_DIR)}
    result = CliRunner().invoke(app, ["models", "list", "--profile", "test"], env=env)
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if line.startswith("  ")]
    assert any("generator" in r and "smollm2-135m-instruct" in r and "ready" in r for r in rows)
    assert any("embedder" in r and "all-minilm-l6-v2" in r and "ready" in r for r in rows)
    assert "NOT READY" not in result.output


def test_second_prepare_is_a_no_op(test_models: ModelCache) -> None:
    env = {"DOCQA_MODELS_DIR": str(TEST_MODELS_DIR)}
    result = CliRunner().invoke(app, ["models", "prepare", "--profile", "test"], env=env)
    assert result.exit_code == 0, result.output
    assert "nothing to do" in result.output


def test_unknown_profile_is_a_clear_error() -> None:
    result = CliRunner().invoke(app, ["models", "prepare", "--profile", "huge"])
    assert result.exit_code != 0
    assert "huge" in result.output
