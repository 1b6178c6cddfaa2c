"""Settings come from overrides, environment, a TOML file and defaults, in that order."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from app.answer.confidence import ConfidenceFit
from config.settings import ConfigFileError, Settings, load_settings, origin_of
from docqa.cli.main import app
from modelstore.catalog import MODELS, QWEN_15B
from wiring.compose import (
    answer_config,
    answerable_floor,
    confidence_fit,
    decline_below,
    low_confidence,
    rerank_enabled,
)


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "docqa.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_when_nothing_is_set() -> None:
    s = load_settings(environ={})
    assert s.profile == "default"
    assert s.data_dir == Path(".docqa")
    assert s.model_cache_dir == Path(".docqa/models")
    assert origin_of(s, "profile") == "default"


def test_precedence_override_then_env_then_file_then_default(tmp_path: Path) -> None:
    config = _toml(tmp_path, 'profile = "fast"\nport = 9000\ncollection = "from-file"\n')
    env = {"DOCQA_PORT": "9100", "DOCQA_COLLECTION": "from-env"}
    s = load_settings(config, environ=env, collection="from-flag")
    assert (s.collection, origin_of(s, "collection")) == ("from-flag", "override")
    assert (s.port, origin_of(s, "port")) == (9100, "env")
    assert (s.profile, origin_of(s, "profile")) == ("fast", f"file:{config}")
    assert (s.host, origin_of(s, "host")) == ("127.0.0.1", "default")


def test_config_file_named_by_environment(tmp_path: Path) -> None:
    config = _toml(tmp_path, 'profile = "test"\n')
    s = load_settings(environ={"DOCQA_CONFIG": str(config)})
    assert s.profile == "test"


def test_env_lists_are_json_and_secrets_are_masked(tmp_path: Path) -> None:
    s = load_settings(environ={"DOCQA_API_KEYS": '["k-one", "k-two"]'})
    assert [k.get_secret_value() for k in s.api_keys] == ["k-one", "k-two"]
    assert "k-one" not in repr(s)


@pytest.mark.parametrize(
    ("value", "keys"),
    [
        ("mykey", ["mykey"]),
        ("k-one, k-two,", ["k-one", "k-two"]),
        ('  ["k,with,commas"]', ["k,with,commas"]),
        ("", []),
    ],
)
def test_env_api_keys_may_be_comma_separated(value: str, keys: list[str]) -> None:
    s = load_settings(environ={"DOCQA_API_KEYS": value})
    assert [k.get_secret_value() for k in s.api_keys] == keys
    assert origin_of(s, "api_keys") == "env"


def test_env_api_keys_that_look_like_json_but_are_not_get_a_clear_error() -> None:
    with pytest.raises(ValidationError, match="not a JSON list of keys"):
        load_settings(environ={"DOCQA_API_KEYS": '["k-one"'})


def test_bad_inputs_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="not found"):
        load_settings(tmp_path / "missing.toml", environ={})
    with pytest.raises(ConfigFileError, match="not valid TOML"):
        load_settings(_toml(tmp_path, "profile = \n"), environ={})
    with pytest.raises(ConfigFileError, match="unknown setting 'colection'"):
        load_settings(_toml(tmp_path, 'colection = "x"\n'), environ={})
    with pytest.raises(ValidationError, match="port"):
        load_settings(environ={"DOCQA_PORT": "eighty"})
    with pytest.raises(ValidationError, match="profile"):
        load_settings(environ={"DOCQA_PROFILE": "huge"})


def test_settings_constructor_ignores_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests build Settings(...) directly; only load_settings reads the environment."""
    monkeypatch.setenv("DOCQA_PROFILE", "fast")
    assert Settings().profile == "default"
    assert load_settings().profile == "fast"


def test_config_show_prints_values_origins_and_masks_secrets(tmp_path: Path) -> None:
    config = _toml(tmp_path, 'collection = "handbook"\n')
    result = CliRunner().invoke(
        app,
        ["--config", str(config), "config", "show"],
        env={"DOCQA_API_KEYS": '["super-secret"]', "DOCQA_PORT": "8123"},
    )
    assert result.exit_code == 0, result.output
    assert "super-secret" not in result.output
    lines = {line.split()[0]: line for line in result.output.splitlines() if line.strip()}
    assert "handbook" in lines["collection"] and f"file:{config}" in lines["collection"]
    assert "8123" in lines["port"] and "env" in lines["port"]
    assert "masked" in lines["api_keys"]


def test_cli_reports_invalid_settings_without_traceback(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["config", "show"], env={"DOCQA_PORT": "nope"})
    assert result.exit_code == 1
    assert "invalid settings" in result.output
    assert "Traceback" not in result.output


def test_config_show_names_the_engine(tmp_path: Path) -> None:
    auto = CliRunner().invoke(app, ["config", "show"], env={"DOCQA_DEVICE": "cpu"})
    assert auto.exit_code == 0, auto.output
    assert "engine: llamacpp (auto: CPU, and the generator is a GGUF)" in auto.output
    forced = CliRunner().invoke(
        app, ["config", "show", "--json"], env={"DOCQA_LLM_ENGINE": "transformers"}
    )
    resolved = json.loads(forced.output)["resolved"]["llm_engine"]
    assert resolved == {"value": "transformers", "reason": "set by DOCQA_LLM_ENGINE"}
    folder = tmp_path / "hf-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    not_gguf = CliRunner().invoke(
        app, ["config", "show"], env={"DOCQA_DEVICE": "cpu", "DOCQA_GENERATOR": str(folder)}
    )
    assert "engine: transformers (auto: CPU, but the generator is not a GGUF file)" in (
        not_gguf.output
    )


@pytest.mark.parametrize(
    ("kwargs", "floor"),
    [
        ({"profile": "default"}, 0.0),  # Qwen2.5-1.5B's catalog fit declines, P(yes) feeds it
        ({"profile": "default", "embedder": "all-minilm-l6-v2"}, 0.75),  # no fit: its floor
        ({"profile": "test"}, None),  # SmolLM2: not measured, so no check
        ({"profile": "default", "answerable_floor": 0.8}, 0.8),
        ({"profile": "default", "answerable_floor": 0.0}, 0.0),  # asked and recorded only
        ({"profile": "default", "generator": "/models/my-own-gguf"}, None),
        ({"profile": "default", "generator_url": "http://127.0.0.1:9/v1"}, None),
    ],
)
def test_the_answerability_floor_is_the_generator_models_unless_set(
    kwargs: dict[str, object], floor: float | None
) -> None:
    """P(yes) is calibrated per model: the profile's model brings its measured floor, a user's
    own or remote model none, and DOCQA_ANSWERABLE_FLOOR always wins."""
    settings = Settings(**kwargs)  # type: ignore[arg-type]
    assert answerable_floor(settings) == floor
    assert answer_config(settings).answerable_floor == floor


def test_the_confidence_fit_is_the_setting_or_the_generators_with_its_embedder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A catalog fit applies only with the embedder it was fitted with (the retrieval part is in
    that embedder's cosines) and never to a remote generator; DOCQA_CONFIDENCE_FIT wins."""
    fitted = dataclasses.replace(
        QWEN_15B,
        confidence_fit=(("intercept", -2.0), ("support", 3.0)),
        confidence_fit_embedder="multilingual-e5-small",
        decline_below=None,
        low_confidence=None,
    )
    monkeypatch.setitem(MODELS, QWEN_15B.name, fitted)
    assert confidence_fit(Settings(profile="default")) == ConfidenceFit(-2.0, support=3.0)
    assert answer_config(Settings(profile="default")).confidence_fit == ConfidenceFit(
        -2.0, support=3.0
    )
    assert confidence_fit(Settings(profile="default", embedder="all-minilm-l6-v2")) is None
    assert confidence_fit(Settings(profile="default", generator_url="http://127.0.0.1:1")) is None
    own = {"intercept": 0.5, "answerable": 1.0}
    assert confidence_fit(Settings(profile="test", confidence_fit=own)) == ConfidenceFit(
        0.5, answerable=1.0
    )
    assert decline_below(Settings(profile="default")) is None  # the catalog fit has none
    # With the catalog's fit, P(yes) is asked for the fit and the fit declines, not a floor;
    # without it (another embedder, a user's own fit) the model's floor stays.
    assert answerable_floor(Settings(profile="default")) == 0.0
    assert answerable_floor(Settings(profile="default", answerable_floor=0.6)) == 0.6
    assert answerable_floor(Settings(profile="default", embedder="all-minilm-l6-v2")) == 0.75
    assert answerable_floor(Settings(profile="default", confidence_fit=own)) == 0.75
    monkeypatch.setitem(MODELS, QWEN_15B.name, dataclasses.replace(fitted, decline_below=0.3))
    assert decline_below(Settings(profile="default")) == 0.3
    assert answer_config(Settings(profile="default")).decline_below == 0.3
    assert decline_below(Settings(profile="default", decline_below=0.4)) == 0.4
    # A user's own fit does not take the catalog's threshold, fitted for another confidence.
    assert decline_below(Settings(profile="default", confidence_fit=own)) is None
    assert decline_below(Settings(profile="default", embedder="all-minilm-l6-v2")) is None
    # The low-confidence threshold is on the fit's scale: the catalog's goes with its fit only.
    assert low_confidence(Settings(profile="default")) == 0.5  # the catalog fit has none
    monkeypatch.setitem(MODELS, QWEN_15B.name, dataclasses.replace(fitted, low_confidence=0.8))
    assert low_confidence(Settings(profile="default")) == 0.8
    assert answer_config(Settings(profile="default")).low_confidence == 0.8
    assert low_confidence(Settings(profile="default", low_confidence=0.6)) == 0.6
    assert low_confidence(Settings(profile="default", confidence_fit=own)) == 0.5
    assert low_confidence(Settings(profile="default", embedder="all-minilm-l6-v2")) == 0.5
    assert low_confidence(Settings(profile="test")) == 0.5
    with pytest.raises(ValueError, match="DOCQA_CONFIDENCE_FIT needs an intercept"):
        confidence_fit(Settings(confidence_fit={"support": 1.0}))
    with pytest.raises(ValueError, match="got \\['intercept', 'typo'\\]"):
        confidence_fit(Settings(confidence_fit={"intercept": 0.0, "typo": 1.0}))


@pytest.mark.parametrize("device", ["cpu", "cuda", "auto"])
def test_reranking_is_off_unless_asked_for(device: str) -> None:
    """bench/rerank.py measured the LLM reranker worse than the fusion alone (MRR@10 1.000 ->
    0.739 on XQuAD-en with the 0.5B model), so no device turns it on by itself."""
    assert rerank_enabled(Settings(device=device)) is False  # type: ignore[arg-type]
    assert rerank_enabled(Settings(device=device, rerank=True)) is True  # type: ignore[arg-type]
