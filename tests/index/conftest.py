"""Backends for the VectorIndex contract suite: embedded Chroma, and a real `chroma run` server.

The server is started once per session on a free loopback port with telemetry off, and the suite
fails (never skips) with the server's own output when it does not come up.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from chromadb.api import ClientAPI
from chromadb.utils.embedding_functions.onnx_mini_lm_l6_v2 import ONNXMiniLM_L6_V2

from index.chroma_store import ChromaVectorIndex, close_client, make_client

SERVER_START_TIMEOUT_S = 30.0
EMBEDDER_ID = "fake-embedder-v1"
DIMENSION = 8


def free_port() -> int:
    """A loopback port nothing listens on (at the moment of asking)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _chroma_executable() -> str:
    beside_python = Path(sys.executable).parent / "chroma"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("chroma")
    if found is None:
        pytest.fail("the `chroma` console script is not installed (pip install chromadb)")
    return found


def _heartbeat(port: int) -> bool:
    # http.client, not urllib: it ignores proxy variables, so loopback stays loopback.
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        connection.request("GET", "/api/v2/heartbeat")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def _tail(path: Path, chars: int = 4000) -> str:
    return path.read_text(encoding="utf-8", errors="replace")[-chars:] if path.exists() else ""


@contextlib.contextmanager
def running_chroma_server(root: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Start `chroma run` on a free loopback port with data under ``root``; yield (URL, process).

    Fails the test, with the server's stderr, when it exits or does not answer its heartbeat.
    """
    port = free_port()
    stdout_log, stderr_log = root / "stdout.log", root / "stderr.log"
    command = [
        _chroma_executable(),
        *("run", "--path", str(root / "data"), "--host", "127.0.0.1", "--port", str(port)),
    ]
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False", "NO_COLOR": "1"}
    with stdout_log.open("wb") as out, stderr_log.open("wb") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, env=env)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while not _heartbeat(port):
            if process.poll() is not None or time.monotonic() > deadline:
                state = (
                    f"exited with code {process.returncode}"
                    if process.poll() is not None
                    else f"did not answer /api/v2/heartbeat within {SERVER_START_TIMEOUT_S:.0f} s"
                )
                pytest.fail(
                    f"`{' '.join(command)}` {state}\n--- stderr ---\n{_tail(stderr_log)}"
                    f"\n--- stdout ---\n{_tail(stdout_log)}"
                )
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}", process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a `chroma run` server that lives for the whole test session."""
    with running_chroma_server(tmp_path_factory.mktemp("chroma-server")) as (url, _process):
        yield url


@dataclass
class Backend:
    """Where a test's Chroma lives; ``connect()`` gives a new client, closed after the test."""

    kind: str
    path: Path | None
    url: str | None
    _clients: list[ClientAPI] = field(default_factory=list)

    def connect(self) -> ClientAPI:
        client = make_client(self.path, self.url)
        self._clients.append(client)
        return client

    def reopen(self, client: ClientAPI) -> ClientAPI:
        """Close ``client`` and connect again: embedded Chroma then really re-reads the disk."""
        close_client(client)
        return self.connect()

    def close_all(self) -> None:
        for client in self._clients:
            close_client(client)


@pytest.fixture(params=["embedded", pytest.param("server", marks=pytest.mark.slow)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "embedded":
        chosen = Backend("embedded", tmp_path / "chroma", None)
    else:
        chosen = Backend("server", None, request.getfixturevalue("chroma_server"))
    yield chosen
    chosen.close_all()


@pytest.fixture
def client(backend: Backend) -> ClientAPI:
    return backend.connect()


@pytest.fixture
def collection_name() -> str:
    """Unique per test, since every server-backed test shares one server."""
    return f"t-{uuid.uuid4().hex[:16]}"


IndexFactory = Callable[..., ChromaVectorIndex]


@pytest.fixture
def make_index(client: ClientAPI, collection_name: str) -> IndexFactory:
    """``make_index()`` opens the test's collection with the fake embedder; kwargs override."""

    def make(**overrides: object) -> ChromaVectorIndex:
        args: dict[str, object] = {
            "client": client,
            "name": collection_name,
            "embedder_id": EMBEDDER_ID,
            "dimension": DIMENSION,
        }
        args.update(overrides)
        return ChromaVectorIndex(**args)  # type: ignore[arg-type]

    return make


@pytest.fixture(autouse=True)
def _no_default_embedding_function(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chroma's default embedding function downloads an ONNX model: it must never run."""

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("Chroma's default embedding function was used")

    monkeypatch.setattr(ONNXMiniLM_L6_V2, "__call__", refuse)
    monkeypatch.setattr(ONNXMiniLM_L6_V2, "_download_model_if_not_exists", refuse)
