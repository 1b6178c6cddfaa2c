"""Shared test fixtures: no network, the real small models prepared once, fresh settings."""

from __future__ import annotations

import os

# As config.runtime.configure does for the CLI and the server, before any OpenMP runtime loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings
from index.hardware import pick_device
from modelstore.cache import ModelCache
from modelstore.catalog import MODELS, PROFILES
from modelstore.onnx_export import choose_backend
from tests.index.conftest import chroma_server  # noqa: F401  (a session fixture for all tests)

REPO = Path(__file__).resolve().parents[1]
# Prepared models survive between runs (preparing SmolLM2 takes ~40 s), like a user's cache.
TEST_MODELS_DIR = REPO / ".docqa-test" / "models"

_LOOPBACK = {"127.0.0.1", "::1", "localhost", "0.0.0.0"}
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


class NetworkBlockedError(OSError):
    """Raised when a test tries to leave the machine: a hidden download must fail loudly."""


def _check(address: Any) -> None:
    if isinstance(address, tuple) and address and str(address[0]) not in _LOOPBACK:
        host = str(address[0])
        if not host.startswith("127."):
            raise NetworkBlockedError(f"network access blocked in tests: {address!r}")


def _guarded_connect(self: socket.socket, address: Any) -> None:
    _check(address)
    _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    _check(address)
    return _real_connect_ex(self, address)


def pytest_configure(config: pytest.Config) -> None:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    # Child processes started by tests cannot be patched; keep their model libraries offline.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["ANONYMIZED_TELEMETRY"] = "False"


@pytest.fixture(scope="session")
def test_models() -> ModelCache:
    """The `test` profile's real models, prepared in a cache shared across test runs."""
    cache = ModelCache(TEST_MODELS_DIR)
    profile = PROFILES["test"]
    for name in (profile.generator, profile.embedder):
        cache.prepare(MODELS[name])
    cache.prepare(MODELS[profile.generator], fmt="gguf")  # llama.cpp, the CPU engine
    embedder = MODELS[profile.embedder]
    backend = choose_backend("auto", embedder, pick_device("auto"))
    if backend != "torch":  # what DOCQA_EMBED_BACKEND=auto runs on a CPU: an ONNX export
        cache.prepare_onnx(embedder, backend)
    return cache


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    """Settings for one test: its own data dir, the test profile, the shared model cache."""
    yield Settings(data_dir=tmp_path / "data", models_dir=TEST_MODELS_DIR, profile="test")
