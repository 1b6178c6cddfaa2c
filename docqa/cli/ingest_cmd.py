"""`docqa ingest`, `docqa delete` and `docqa cache stats`: the batch side of docqa."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer
from tqdm import tqdm

from config.settings import Settings
from index.errors import DocqaIndexError
from ingest.errors import IngestError
from modelstore.errors import ModelError
from wiring.compose import Services

log = logging.getLogger(__name__)


def _services(settings: Settings) -> Services:
    try:
        return Services.build(settings)
    except (ModelError, DocqaIndexError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


def ingest(
    ctx: typer.Context,
    paths: list[Path] = typer.Argument(..., help="Files or folders to ingest."),
    collection: str | None = typer.Option(None, "--collection", "-c", help="Default: settings."),
    prune: bool = typer.Option(False, "--prune", help="Remove files gone from these folders."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON object."),
    reindex: bool = typer.Option(
        False, "--reindex", help="Drop the collection first (after changing the embedder)."
    ),
    url: str | None = typer.Option(
        None, "--url", help="Upload to this docqa server as ingest jobs instead of ingesting here."
    ),
    api_key: str | None = typer.Option(
        None, "--api-key", help="With --url: the key sent (default: the first DOCQA_API_KEYS)."
    ),
    wait: bool = typer.Option(
        True, "--wait/--no-wait", help="With --url: follow the jobs until they have finished."
    ),
) -> None:
    """Ingest documents: new and changed files go in, unchanged ones are skipped.

    With --url, each file is uploaded to that server as an ingest job, its source the file's path
    relative to the folder given; the jobs' progress is followed unless --no-wait.

    Exit code 0 when every file went in, 2 when some failed (the rest went in), 1 on a fatal error.
    """
    settings: Settings = ctx.obj
    name = collection or settings.collection
    if url:
        if prune or reindex:
            typer.echo("error: --prune and --reindex work on a local ingest only", err=True)
            raise typer.Exit(1)
        key = api_key or (settings.api_keys[0].get_secret_value() if settings.api_keys else None)
        raise typer.Exit(_remote(url, key, paths, name, wait=wait, as_json=as_json))
    services = _services(settings)
    try:
        if reindex and services.drop_collection(name):
            log.info("dropped collection %s for re-indexing", name)
        ingestor = services.ingestor(name)
        with tqdm(desc="ingest", unit="file", disable=as_json) as bar:

            def progress(done: int, total: int, chunks: int) -> None:
                bar.total = total
                bar.n = done
                rate = chunks / bar.format_dict["elapsed"] if bar.format_dict["elapsed"] else 0
                bar.set_postfix(chunks=chunks, chunks_per_s=f"{rate:.1f}", refresh=False)
                bar.refresh()

            report = ingestor.ingest(paths, prune=prune, progress=progress)
    except (DocqaIndexError, IngestError, ModelError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(json.dumps(report.to_json(), ensure_ascii=False) if as_json else report.summary())
    raise typer.Exit(report.exit_code)


def _remote(
    url: str, key: str | None, paths: list[Path], collection: str, *, wait: bool, as_json: bool
) -> int:
    """Upload to the server at ``url``; the exit code."""
    from docqa.cli import ingest_remote

    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per poll

    def say(line: str) -> None:
        if not as_json:
            typer.echo(line)

    try:
        client = ingest_remote.JobClient(url, key)
        try:
            uploads = ingest_remote.run(
                client, paths, collection, say=say, wait=wait, quiet=as_json
            )
        finally:
            client.close()
    except ingest_remote.RemoteError as exc:
        typer.echo(f"error: {exc}", err=True)
        return 1
    if as_json:
        typer.echo(ingest_remote.as_json(collection, uploads))
    else:
        typer.echo(ingest_remote.summary(collection, uploads))
    return ingest_remote.exit_code(uploads)


def delete(
    ctx: typer.Context,
    source: str = typer.Option(..., "--source", help="The document's path as ingested."),
    collection: str | None = typer.Option(None, "--collection", "-c", help="Default: settings."),
) -> None:
    """Remove one document's chunks from the vectors, the keyword index and the manifest."""
    settings: Settings = ctx.obj
    services = _services(settings)
    try:
        removed = services.ingestor(collection or settings.collection).delete_source(source)
    except (DocqaIndexError, IngestError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"removed {removed} chunks of {source}")


cache_app = typer.Typer(no_args_is_help=True, help="The persistent embedding cache.")


@cache_app.command("stats")
def cache_stats(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="One JSON object."),
) -> None:
    """Entries, size on disk, and hit rate of the embedding cache."""
    from index.embedding_cache import EmbeddingCache

    settings: Settings = ctx.obj
    stats = EmbeddingCache(settings.cache_dir / "embeddings.sqlite").stats()
    data = {
        "entries": stats.entries,
        "bytes": stats.bytes,
        "by_model": stats.by_model,
        "hits": stats.hits,
        "misses": stats.misses,
        "hit_rate": round(stats.hit_rate, 4),
    }
    if as_json:
        typer.echo(json.dumps(data))
        return
    typer.echo(f"entries {stats.entries}, {stats.bytes / 1e6:.1f} MB on disk")
    for model, n in stats.by_model.items():
        typer.echo(f"  {model}: {n}")
    typer.echo(f"hits {stats.hits}, misses {stats.misses}, hit rate {stats.hit_rate:.1%}")
