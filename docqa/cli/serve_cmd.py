"""`docqa serve`: one process holding the models, serving the HTTP API (and the chat UI at /ui)
with uvicorn."""

from __future__ import annotations

import typer
from fastapi import FastAPI

from config.settings import Settings
from wiring.compose import Services


def build_app(settings: Settings) -> FastAPI:
    """The API, with the chat UI mounted at /ui unless DOCQA_UI_ENABLED is false."""
    from app.main import create_app

    app = create_app(settings, Services.build_for_serving)
    if settings.ui_enabled:
        from wiring.ui_setup import mount_chat_ui

        mount_chat_ui(app, settings)
    return app


def serve(
    ctx: typer.Context,
    host: str | None = typer.Option(None, "--host", help="Overrides DOCQA_HOST."),
    port: int | None = typer.Option(None, "--port", help="Overrides DOCQA_PORT."),
) -> None:
    """Serve the API and the chat UI (models load in the background; /readyz says when ready)."""
    import uvicorn

    settings: Settings = ctx.obj
    update = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    settings = settings.model_copy(update=update)
    # One worker: the models live in this process, and the metrics are not split.
    uvicorn.run(
        build_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        workers=1,
    )
