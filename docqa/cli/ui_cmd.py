"""`docqa ui --api URL`: the chat UI alone, against any docqa server, over HTTP."""

from __future__ import annotations

import typer

from config.settings import Settings

DEFAULT_PORT = 7860


def ui(
    ctx: typer.Context,
    api: str | None = typer.Option(
        None, "--api", help="The docqa server (default DOCQA_UI_API_URL or http://127.0.0.1:8000)."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address the UI listens on."),
    port: int = typer.Option(DEFAULT_PORT, "--port", help="Port the UI listens on."),
    api_key: str | None = typer.Option(
        None, "--api-key", help="Key sent to the API (default DOCQA_UI_API_KEY or DOCQA_API_KEYS)."
    ),
) -> None:
    """Run the chat UI against a docqa server (it calls the server's HTTP API only)."""
    import uvicorn
    from fastapi import FastAPI

    from ui.mount import mount_ui
    from wiring.ui_setup import STANDALONE_API, ui_config, ui_key

    settings: Settings = ctx.obj
    api_url = (api or settings.ui_api_url or STANDALONE_API).rstrip("/")
    if not api_url.startswith(("http://", "https://")):
        typer.echo(f"error: --api must be an http(s) URL, got {api_url!r}", err=True)
        raise typer.Exit(2)
    config = ui_config(settings, api_url, ui_key(settings, api_key))
    app = mount_ui(FastAPI(docs_url=None, redoc_url=None, openapi_url=None), "/", config)
    typer.echo(f"docqa chat UI on http://{host}:{port}/ (API: {api_url})")
    uvicorn.run(app, host=host, port=port, log_level=settings.log_level.lower())
