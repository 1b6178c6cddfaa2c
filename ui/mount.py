"""Mount the chat UI on a FastAPI app, with every Gradio option that could reach the network off.

Gradio is told: no analytics or version check (``analytics_enabled=False`` on the Blocks), no
share link (``mount_gradio_app`` never creates one), no server-side rendering (it would start a
Node process), no MCP server, no PWA, no run history kept in the browser, no footer links. The
theme uses Gradio's bundled fonts, so the page loads nothing from a CDN.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from pathlib import Path

import gradio as gr
from fastapi import FastAPI

from ui.blocks import build_blocks
from ui.config import UiConfig

STYLE = Path(__file__).with_name("style.css")
LOGIN_MESSAGE = (
    "This docqa server needs an API key. Enter any name, and one of its API keys "
    "(DOCQA_API_KEYS) as the password."
)


def key_login(keys: tuple[str, ...]) -> Callable[[str, str], bool]:
    """A Gradio ``auth`` check: the password must be one of ``keys`` (compared in constant time)."""

    def check(username: str, password: str) -> bool:
        given = (password or "").encode()
        return any(hmac.compare_digest(given, key.encode()) for key in keys)

    return check


def theme() -> gr.themes.Base:
    return gr.themes.Default(primary_hue="indigo", neutral_hue="slate")


def mount_ui(app: FastAPI, path: str, config: UiConfig) -> FastAPI:
    """Mount the UI at ``path`` ("/ui", or "/" when it is served alone) and return ``app``."""
    blocks = build_blocks(config)
    gr.mount_gradio_app(
        app,
        blocks,
        path=path,
        footer_links=[],
        run_history=False,
        ssr_mode=False,
        mcp_server=False,
        pwa=False,
        enable_monitoring=False,
        show_error=False,  # a failed event shows Gradio's generic notice, never a trace
        max_file_size=int(config.max_file_mb * 1024 * 1024),
        auth=key_login(config.login_keys) if config.login_keys else None,
        auth_message=LOGIN_MESSAGE if config.login_keys else None,
        theme=theme(),
        css_paths=[STYLE],
    )
    return app
