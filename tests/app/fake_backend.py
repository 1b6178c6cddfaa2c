"""The service on fakes, for the fast tier: the real composition (``Services.build_for_serving``:
embedded Chroma, BM25, the retriever, the ingestor, the answer flow and its queue) with the
deterministic ``HashEmbedder`` and ``FakeGenerator`` in place of the models. No model is read:
the settings point at an empty models folder.

>>> HashWords().embed_raw(["a b"]).shape
(1, 256)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from app.generation.fake import FakeGenerator
from config.settings import Settings
from index.embedders import HashEmbedder
from wiring.compose import Services


class HashWords(HashEmbedder):
    """The hashing fake with the prefixes the embedding cache asks for. 256 dimensions keep
    hash collisions between the few words of a test rare, so a question shares a vector
    direction only with passages that share its words."""

    query_prefix = ""
    passage_prefix = ""

    def __init__(self) -> None:
        super().__init__(dimension=256, model_id="hash-words")


def fake_settings(root: Path, **extra: object) -> Settings:
    """Settings of a service on fakes: its own data dir, no models, no reranker."""
    base: dict[str, object] = {
        "data_dir": root / "data",
        "models_dir": root / "no-models",
        "profile": "test",
        "rerank": False,
    }
    return Settings(**{**base, **extra})  # type: ignore[arg-type]


def fake_backend(generator: FakeGenerator) -> Callable[[Settings], Services]:
    """A backend factory for ``create_app``: the real services on the two fakes."""

    def build(settings: Settings) -> Services:
        return Services.build_for_serving(settings, generator=generator, embedder=HashWords())

    return build
