"""How the UI is put in front of people: mounted at /ui by `docqa serve` (calling the server's own
address, with a key and a login when the API has keys), or alone with `docqa ui --api URL`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from typer.testing import CliRunner

from config.settings import Settings
from docqa.cli.main import app as cli
from docqa.cli.serve_cmd import build_app
from wiring.ui_setup import mount_chat_ui, own_address, ui_config, ui_key

ELEM_IDS = {"chat", "question", "ask", "sources", "source-panel", "collection", "top-k", "upload"}


def _settings(tmp_path: Path, **kw: Any) -> Settings:
    return Settings(data_dir=tmp_path / "data", profile="test", **kw)


def _elem_ids(config: dict[str, Any]) -> set[str]:
    return {c["props"].get("elem_id") for c in config["components"]} - {None}


def test_serve_mounts_the_ui_at_ui_unless_disabled(tmp_path: Path) -> None:
    def mounts(app: FastAPI) -> set[str]:
        return {getattr(r, "path", "") for r in app.routes}

    assert "/ui" in mounts(build_app(_settings(tmp_path)))
    assert "/ui" not in mounts(build_app(_settings(tmp_path, ui_enabled=False)))


def test_open_api_means_an_open_ui_calling_the_servers_own_address(tmp_path: Path) -> None:
    app = FastAPI()
    config = mount_chat_ui(app, _settings(tmp_path, host="0.0.0.0", port=8123))
    assert (config.api_url, config.api_key, config.login_keys) == (
        "http://127.0.0.1:8123",
        None,
        (),
    )
    client = TestClient(app)
    home = client.get("/", follow_redirects=False)
    assert home.status_code == 307 and home.headers["location"] == "/ui/"
    assert client.get("/favicon.ico").status_code == 200
    page = client.get("/ui/")
    assert page.status_code == 200 and "gradio" in page.text.lower()
    gradio_config = client.get("/ui/config").json()
    assert gradio_config["analytics_enabled"] is False
    assert _elem_ids(gradio_config) >= ELEM_IDS
    assert "fonts.googleapis" not in client.get("/ui/theme.css").text


def test_with_api_keys_the_ui_sends_one_and_asks_for_one_at_login(tmp_path: Path) -> None:
    settings = _settings(tmp_path, api_keys=[SecretStr("k-first"), SecretStr("k-second")])
    app = FastAPI()
    config = mount_chat_ui(app, settings)
    assert config.api_key == "k-first" and set(config.login_keys) == {"k-first", "k-second"}
    assert "k-first" not in repr(config)
    client = TestClient(app)
    assert client.get("/ui/config").status_code == 401
    wrong = client.post("/ui/login", data={"username": "ana", "password": "nope"})
    assert wrong.status_code >= 400
    assert client.get("/ui/config").status_code == 401
    right = client.post("/ui/login", data={"username": "ana", "password": "k-second"})
    assert right.status_code == 200, right.text
    assert _elem_ids(client.get("/ui/config").json()) >= ELEM_IDS


def test_which_key_and_which_address(tmp_path: Path) -> None:
    keys = [SecretStr("k-api")]
    assert ui_key(_settings(tmp_path)) is None
    assert ui_key(_settings(tmp_path, api_keys=keys)) == "k-api"
    both = _settings(tmp_path, api_keys=keys, ui_api_key=SecretStr("k-ui"))
    assert ui_key(both) == "k-ui" and ui_key(both, "k-flag") == "k-flag"
    assert set(ui_config(both, "http://x", "k-ui").login_keys) == {"k-api", "k-ui"}
    assert own_address("127.0.0.1", 80) == "http://127.0.0.1:80"
    assert own_address("::1", 80) == "http://[::1]:80"
    assert own_address("docs.internal", 80) == "http://docs.internal:80"
    redirected = _settings(tmp_path, ui_api_url="http://10.1.2.3:9000")
    assert mount_chat_ui(FastAPI(), redirected).api_url == "http://10.1.2.3:9000"


def test_docqa_ui_serves_the_ui_alone(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import uvicorn

    started: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: started.update(app=app, **kw))
    env = {"DOCQA_DATA_DIR": str(tmp_path / "data"), "DOCQA_API_KEYS": "[]"}
    result = CliRunner().invoke(
        cli, ["ui", "--api", "http://127.0.0.1:8001/", "--port", "7999"], env=env
    )
    assert result.exit_code == 0, result.output
    assert "http://127.0.0.1:7999/" in result.stdout and "http://127.0.0.1:8001" in result.stdout
    assert (started["host"], started["port"]) == ("127.0.0.1", 7999)
    client = TestClient(started["app"])
    assert client.get("/").status_code == 200
    assert _elem_ids(client.get("/config").json()) >= ELEM_IDS
    keyed = CliRunner().invoke(
        cli, ["ui", "--api", "http://127.0.0.1:8001", "--api-key", "k-cli"], env=env
    )
    assert keyed.exit_code == 0, keyed.output
    assert TestClient(started["app"]).get("/config").status_code == 401  # login first
    bad = CliRunner().invoke(cli, ["ui", "--api", "localhost:8000"], env=env)
    assert bad.exit_code == 2 and "http(s) URL" in bad.stderr
