"""Fixtures for ingest tests: a copy of the sample corpus and services on the real test models."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from docqa.compose import Services
from docqa.models.cache import ModelCache
from docqa.settings import Settings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    target = tmp_path / "corpus"
    shutil.copytree(EXAMPLES, target)
    return target


@pytest.fixture
def services(settings: Settings, test_models: ModelCache) -> Iterator[Services]:
    built = Services.build(settings)
    yield built
    built.manifest.close()
    built.cache.close()
