"""`docqa compact`: make deleted documents' text physically gone from the data directory."""

from __future__ import annotations

import json
import logging
import sqlite3

import typer

from config.settings import Settings
from index.chroma_store import make_client
from index.errors import DocqaIndexError
from ingest.compact import compact as compact_stores

log = logging.getLogger(__name__)


def compact(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON object."),
) -> None:
    """Purge Chroma's write log and rewrite the SQLite files, so deleted text is gone from disk.

    Stop `docqa serve` and any ingest on this data directory first. Exit code 0 when done, 2
    when some deleted text may remain (the report says why), 1 on an error (a file in use, an
    unreachable Chroma server).
    """
    settings: Settings = ctx.obj
    embedded = settings.chroma_url is None
    try:
        client = make_client(settings.chroma_dir if embedded else None, settings.chroma_url)
        report = compact_stores(
            client,
            chroma_dir=settings.chroma_dir if embedded else None,
            keywords=settings.data_dir / "keywords.sqlite",
            manifest=settings.data_dir / "manifest.sqlite",
            database_url=(
                settings.database_url.get_secret_value() if settings.database_url else None
            ),
            progress=None if as_json else lambda step: typer.echo(step, err=True),
        )
    except (DocqaIndexError, sqlite3.Error) as exc:
        typer.echo(f"error: {exc} (is `docqa serve` or an ingest running?)", err=True)
        raise typer.Exit(1) from exc
    typer.echo(json.dumps(report.to_json()) if as_json else report.summary())
    raise typer.Exit(0 if report.complete else 2)
