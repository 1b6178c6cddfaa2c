"""Settings → the chat UI: where it calls the API, with which key, and who may open it.

The UI (``ui/``) takes plain values and speaks HTTP only; this module is where the settings are
read for it, by ``docqa serve`` (the UI mounted at /ui, calling the server's own address) and by
``docqa ui`` (the UI alone, against any server).
"""

from __future__ import annotations

import ipaddress
import logging

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from config.settings import Settings
from ui.config import UiConfig

log = logging.getLogger(__name__)

UI_PATH = "/ui"
STANDALONE_API = "http://127.0.0.1:8000"


def own_address(host: str, port: int) -> str:
    """The URL a process listening on ``host:port`` reaches itself at.

    >>> own_address("0.0.0.0", 8000), own_address("::", 9000), own_address("10.0.0.5", 80)
    ('http://127.0.0.1:8000', 'http://[::1]:9000', 'http://10.0.0.5:80')
    """
    if host in {"", "0.0.0.0"}:
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    try:
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    except ValueError:
        pass  # a host name
    return f"http://{host}:{port}"


def ui_key(settings: Settings, explicit: str | None = None) -> str | None:
    """The key the UI sends: ``explicit``, else DOCQA_UI_API_KEY, else the first DOCQA_API_KEYS."""
    if explicit:
        return explicit
    if settings.ui_api_key is not None:
        return settings.ui_api_key.get_secret_value()
    return settings.api_keys[0].get_secret_value() if settings.api_keys else None


def ui_config(settings: Settings, api_url: str, api_key: str | None) -> UiConfig:
    """The UI's configuration. A UI that holds a key asks for one at login (any of the API's
    keys, or its own), so it never opens a protected API to whoever can reach it."""
    keys = [k.get_secret_value() for k in settings.api_keys]
    if api_key and api_key not in keys:
        keys.append(api_key)
    return UiConfig(
        api_url=api_url,
        api_key=api_key,
        collection=settings.collection,
        timeout_s=settings.request_timeout_s + 30,
        max_file_mb=settings.max_file_mb,
        login_keys=tuple(keys) if api_key else (),
    )


def mount_chat_ui(app: FastAPI, settings: Settings) -> UiConfig:
    """Mount the UI at /ui of the API app (it calls the API over HTTP), and send / (and the
    browser's /favicon.ico) there."""
    from ui.mount import mount_ui  # imports Gradio: only when the UI is wanted

    api_url = settings.ui_api_url or own_address(settings.host, settings.port)
    config = ui_config(settings, api_url, ui_key(settings))
    mount_ui(app, UI_PATH, config)

    @app.get("/", include_in_schema=False)
    def _home() -> RedirectResponse:
        return RedirectResponse(f"{UI_PATH}/")

    @app.get("/favicon.ico", include_in_schema=False)
    def _icon() -> RedirectResponse:  # browsers ask the site root for it
        return RedirectResponse(f"{UI_PATH}/favicon.ico")

    log.info("chat UI at %s/ (calling the API at %s)", UI_PATH, api_url)
    return config
