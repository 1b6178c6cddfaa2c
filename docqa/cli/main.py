"""The `docqa` command: builds the settings once, then hands them to the subcommands."""

from __future__ import annotations

from pathlib import Path

import typer
from pydantic import ValidationError

from config import runtime
from config.settings import ConfigFileError, load_settings
from docqa.cli import (
    ask_cmd,
    compact_cmd,
    config_cmd,
    eval_cmd,
    ingest_cmd,
    models_cmd,
    serve_cmd,
    ui_cmd,
    worker_cmd,
)

app = typer.Typer(no_args_is_help=True, help="Answers from your own documents, with citations.")
app.add_typer(config_cmd.app, name="config")
app.add_typer(models_cmd.app, name="models")
app.add_typer(ingest_cmd.cache_app, name="cache")
app.command("ingest")(ingest_cmd.ingest)
app.command("delete")(ingest_cmd.delete)
app.command("compact")(compact_cmd.compact)
app.command("serve")(serve_cmd.serve)
app.command("ask")(ask_cmd.ask)
app.command("ui")(ui_cmd.ui)
app.command("worker")(worker_cmd.worker)
app.add_typer(eval_cmd.app, name="eval")


@app.callback()
def main_callback(
    ctx: typer.Context,
    config: Path | None = typer.Option(
        None, "--config", help="A docqa.toml file (also DOCQA_CONFIG).", dir_okay=False
    ),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Overrides DOCQA_DATA_DIR."),
    profile: str | None = typer.Option(None, "--profile", help="Overrides DOCQA_PROFILE."),
) -> None:
    try:
        settings = load_settings(config, data_dir=data_dir, profile=profile)
    except (ConfigFileError, ValidationError) as exc:
        typer.echo(f"error: invalid settings: {exc}", err=True)
        raise typer.Exit(1) from exc
    runtime.configure(settings)
    ctx.obj = settings


def main() -> None:
    app()
