"""Shared test fixtures: no network, the real small models prepared once, fresh settings."""

from __future__ import annotations

import os

# As config.runtime.configure does for the CLI and the server, before any OpenMP runtime loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import hashlib
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
from tests.pg_server import fresh_database, running_postgres

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


# The tiers: `make test-fast` runs `pytest -m "not slow"`, unit tests on fakes; `make test` runs
# everything. A test is `slow` when it uses, directly or through another fixture, one of these:
# the prepared real models, a real packaged model file, or a `chroma run` server process. The
# closure of a test's fixtures is known at collection, so a new test on the real models lands in
# the slow tier without anyone remembering a marker. What no fixture reveals (a child process, a
# browser, a fixture param that starts a server) is marked `slow` by hand: `pytestmark` in the
# module, `@pytest.mark.slow`, or `pytest.param(..., marks=pytest.mark.slow)`.
SLOW_FIXTURES = frozenset({"test_models", "real_model_files", "chroma_server", "postgres_server"})


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def pytest_configure(config: pytest.Config) -> None:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    # Child processes started by tests cannot be patched; keep their model libraries offline.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["ANONYMIZED_TELEMETRY"] = "False"


@pytest.fixture(scope="session")
def real_model_files() -> None:
    """Requested by a fixture that reads a real packaged model (not the prepared cache), to put
    its tests in the slow tier (see SLOW_FIXTURES)."""


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


@pytest.fixture(autouse=True)
def _fast_tests_keep_off_the_test_models(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A test outside the slow tier that opens the prepared models fails at once, saying why:
    it passes only where an earlier test or run prepared them, and it is not fast."""
    if request.node.get_closest_marker("slow") is not None:
        return
    open_cache = ModelCache.__init__

    def guarded(self: ModelCache, root: Path, allow_network: bool = False) -> None:
        if Path(root).resolve() == TEST_MODELS_DIR.resolve():
            raise AssertionError(
                f"this test opens the prepared test models ({TEST_MODELS_DIR}) without the "
                "`test_models` fixture: request it (it prepares them and puts the test in the "
                "slow tier), or use the fakes (tests/app/fake_backend.py)"
            )
        open_cache(self, root, allow_network)

    monkeypatch.setattr(ModelCache, "__init__", guarded)


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    """Settings for one test: its own data dir, the test profile, the shared model cache."""
    yield Settings(data_dir=tmp_path / "data", models_dir=TEST_MODELS_DIR, profile="test")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A real PostgreSQL (tests/pg_server.py) for the session: its URL. Tests take a database of
    their own with ``postgres_url``."""
    with running_postgres() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_server: str, request: pytest.FixtureRequest) -> str:
    """An empty database of this test's own on the session's PostgreSQL."""
    name = "t_" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:16]
    return fresh_database(postgres_server, name)
