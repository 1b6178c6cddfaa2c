"""Fixtures for ingest tests: a copy of the sample corpus and services on the real test models."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.settings import Settings
from modelstore.cache import ModelCache
from wiring.compose import Services

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    target = tmp_path / "corpus"
    shutil.copytree(EXAMPLES, target)
    return target


@pytest.fixture(params=["embedded", "server"])
def services(
    request: pytest.FixtureRequest, settings: Settings, test_models: ModelCache
) -> Iterator[Services]:
    """Services on embedded Chroma, and on a real Chroma server (`chroma run` on loopback)."""
    if request.param == "server":
        settings = settings.model_copy(
            update={"chroma_url": request.getfixturevalue("chroma_server")}
        )
    built = Services.build(settings)
    yield built
    if request.param == "server":  # the server outlives the test: leave it empty
        for name in built.collections():
            built.drop_collection(name)
    built.close()
