"""`docqa config show`: the effective settings, secrets masked, and where each came from."""

from __future__ import annotations

import json

import typer

from config.settings import Settings, describe
from wiring.compose import llm_engine

app = typer.Typer(no_args_is_help=True, help="Inspect the effective settings.")


@app.command("show")
def show(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="One JSON object instead of a table."),
) -> None:
    """Print every setting with its value and its origin (override, env, file or default)."""
    settings: Settings = ctx.obj
    rows = describe(settings)
    engine = llm_engine(settings)  # what `auto` resolves to on this machine, and why
    if as_json:
        out: dict[str, object] = {n: {"value": v, "origin": o} for n, v, o in rows}
        out["resolved"] = {"llm_engine": {"value": engine.engine, "reason": engine.reason}}
        typer.echo(json.dumps(out, indent=2))
        return
    width = max(len(name) for name, _, _ in rows)
    for name, value, origin in rows:
        env = "DOCQA_" + name.upper()
        typer.echo(f"{name:<{width}}  {value or '-':<40}  {origin:<10}  ({env})")
    typer.echo(f"\nengine: {engine.engine} ({engine.reason})")
