"""Which generator and embedder a run uses: the profile's, unless the settings override them."""

from __future__ import annotations

from dataclasses import dataclass

from config.settings import Settings
from modelstore.catalog import MODELS, PROFILES, ModelSpec, custom_spec


@dataclass(frozen=True)
class ProfileModels:
    generator: ModelSpec
    embedder: ModelSpec

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter((self.generator, self.embedder))


def models_for(settings: Settings, profile: str | None = None) -> ProfileModels:
    """The models of ``profile`` (default: the settings' profile), with user overrides applied."""
    chosen = PROFILES[profile or settings.profile]
    generator = (
        custom_spec("generator", settings.generator)
        if settings.generator
        else MODELS[chosen.generator]
    )
    embedder = (
        custom_spec("embedder", settings.embedder) if settings.embedder else MODELS[chosen.embedder]
    )
    return ProfileModels(generator, embedder)
