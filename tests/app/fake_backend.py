"""The service on fakes, for the fast tier: the real composition (``Services.build_for_serving``:
embedded Chroma, BM25, the retriever, the ingestor, the answer flow and its queue) with the
deterministic ``HashEmbedder`` and ``FakeGenerator`` in place of the models. No model is read:
the settings point at an empty models folder.

>>> HashWords().embed_raw(["a b"]).shape
(1, 256)
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from app.generation.fake import FakeGenerator
from app.main import create_app
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


def wait_ready(client: TestClient, seconds: float = 60) -> None:
    """Until ``/readyz`` answers 200 (the lifespan loads the backend in the background)."""
    deadline = time.monotonic() + seconds
    while (r := client.get("/readyz")).status_code != 200:
        assert time.monotonic() < deadline, r.text
        time.sleep(0.02)


class ClientFactory:
    """``make(generator, **settings)``: a started service on fakes with ``docs`` uploaded (name to
    text); ``close()`` stops every client it made. Tests wrap it in a fixture."""

    def __init__(self, root: Path, docs: Mapping[str, str]) -> None:
        self.root, self.docs = root, docs
        self.opened: list[TestClient] = []

    def make(self, generator: FakeGenerator, **extra: object) -> TestClient:
        settings = fake_settings(self.root / f"service-{len(self.opened)}", **extra)
        client = TestClient(create_app(settings, fake_backend(generator)))
        client.__enter__()
        self.opened.append(client)
        wait_ready(client)
        for name, text in self.docs.items():
            r = client.post(
                "/v1/collections/docs/documents?wait=true", files={"file": (name, text.encode())}
            )
            assert r.status_code == 200, r.text
        return client

    def close(self) -> None:
        for client in self.opened:
            client.__exit__(None, None, None)


def sse_events(raw: str) -> list[tuple[str, dict[str, Any]]]:
    """An event stream's body as (event, data) pairs."""
    out = []
    for block in raw.split("\n\n"):
        if block.strip():
            event, data = block.split("\n")
            out.append((event.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return out
