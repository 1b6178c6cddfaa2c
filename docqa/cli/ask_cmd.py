"""`docqa ask "QUESTION"`: an answer in-process, or from a running server with --url."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import typer

from config.settings import Settings


def ask(
    ctx: typer.Context,
    question: str = typer.Argument(..., help="The question."),
    collection: str | None = typer.Option(None, "--collection", "-c", help="Default: settings."),
    top_k: int = typer.Option(5, "--top-k", min=1, max=50),
    as_json: bool = typer.Option(False, "--json", help="Print the whole response object."),
    url: str | None = typer.Option(None, "--url", help="Ask a docqa server instead."),
) -> None:
    """Answer a question from the documents, with numbered citations."""
    settings: Settings = ctx.obj
    body: dict[str, object] = {"question": question, "collection": collection, "top_k": top_k}
    data = _remote(url, body, settings) if url else _local(settings, body)
    if as_json:
        typer.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    typer.echo(data["answer"])
    for c in data["citations"]:
        page = f", page {c['page']}" if c["page"] is not None else ""
        typer.echo(f"  [{c['n']}] {c['title'] or c['source']} ({c['source']}{page})")
    flags = [f for f in ("declined", "degraded", "low_confidence") if data[f]]
    typer.echo(f"confidence {data['confidence']:.2f}" + (f" ({', '.join(flags)})" if flags else ""))


def _remote(url: str, body: dict[str, object], settings: Settings) -> dict[str, Any]:
    import httpx

    headers = {}
    if settings.api_keys:
        headers["Authorization"] = f"Bearer {settings.api_keys[0].get_secret_value()}"
    try:
        r = httpx.post(f"{url.rstrip('/')}/v1/ask", json=body, headers=headers, timeout=600)
    except httpx.TransportError as exc:
        typer.echo(f"error: cannot reach {url}: {exc}", err=True)
        raise typer.Exit(1) from exc
    if r.status_code != 200:
        message = r.json().get("error", {}).get("message", r.text)
        typer.echo(f"error: {r.status_code}: {message}", err=True)
        raise typer.Exit(1)
    return dict(r.json())


def _local(settings: Settings, body: dict[str, object]) -> dict[str, Any]:
    from app.errors import ApiError
    from app.schemas import AskRequest
    from index.errors import DocqaIndexError
    from modelstore.errors import ModelError
    from wiring.compose import Services

    try:
        services = Services.build_for_serving(settings)
    except (ModelError, DocqaIndexError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    try:
        response = asyncio.run(services.asks.ask(AskRequest.model_validate(body)))
    except (ApiError, DocqaIndexError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        services.close()
    return response.model_dump()
