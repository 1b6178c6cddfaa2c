"""Fixtures for the answer and generation tests: hand-made hits, the real SmolLM2 folder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from index.types import Chunk, Hit
from modelstore.cache import ModelCache
from modelstore.catalog import MODELS
from tests.app.fake_backend import ClientFactory

GOLDEN_DIR = Path(__file__).parent / "golden"


def make_hit(
    n: int,
    text: str,
    title: str = "",
    source: str | None = None,
    page: int | None = None,
    **scores: float,
) -> Hit:
    """A hit with a readable chunk; ``scores`` become ``hit.scores`` (dense=0.7, dense_rank=1)."""
    chunk = Chunk(
        id=f"chunk-{n}",
        text=text,
        doc_id=f"doc-{n}",
        source=source or f"docs/doc-{n}.md",
        title=title,
        chunk_index=n,
        start=0,
        end=len(text),
        page=page,
    )
    return Hit(chunk, scores.get("rrf", 1.0 / n), dict(scores))


@pytest.fixture(scope="session")
def smollm_path(test_models: ModelCache) -> Path:
    path = test_models.status(MODELS["smollm2-135m-instruct"]).path
    assert path is not None
    return path


@pytest.fixture
def make_client(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., TestClient]]:
    """``make_client(generator, **settings)``: a started service on fakes with the test module's
    ``DOCS`` (name to text) uploaded; every client made is stopped after the test."""
    factory = ClientFactory(tmp_path, request.module.DOCS)
    yield factory.make
    factory.close()
