"""`docqa serve`: one process holding the models, serving the HTTP API with uvicorn."""

from __future__ import annotations

import typer

from docqa.compose import Services
from docqa.settings import Settings


def serve(
    ctx: typer.Context,
    host: str | None = typer.Option(None, "--host", help="Overrides DOCQA_HOST."),
    port: int | None = typer.Option(None, "--port", help="Overrides DOCQA_PORT."),
) -> None:
    """Serve the API (models load in the background; /readyz says when they are ready)."""
    import uvicorn

    from app.main import create_app

    settings: Settings = ctx.obj
    update = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    settings = settings.model_copy(update=update)
    # One worker: the models live in this process, and the metrics are not split.
    uvicorn.run(
        create_app(settings, Services.build_for_serving),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        workers=1,
    )
