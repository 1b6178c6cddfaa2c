"""A real uvicorn server on a loopback port, in a thread, for tests of connection-level
behaviour (raw sockets, http.client) that an in-process client cannot show."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any, cast

import uvicorn
from fastapi import FastAPI

from app.backend import Backend
from app.main import create_app
from config.settings import Settings
from ingest.jobs import SqlJobStore
from tests.processes import http_ready


class EmptyBackend:
    """A backend without models or documents, for tests of what happens before a route runs
    (keys, limits, connections): ready, with no collections and an empty job queue; ``answers``
    and ``asks`` are absent."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.embedder = SimpleNamespace(hits=0, misses=0, model_id="none")
        self.jobs = SqlJobStore.sqlite(settings.data_dir / "jobs.sqlite")
        self.manifest = None

    @property
    def answers(self) -> Any:
        raise RuntimeError("no generator in this test")

    @property
    def asks(self) -> Any:
        raise RuntimeError("no generator in this test")

    def collections(self) -> list[str]:
        return []

    def ingestor(self, collection: str) -> Any:
        raise RuntimeError("no ingest in this test")

    def close(self) -> None:
        self.jobs.close()


def empty_backend(settings: Settings) -> Backend:
    return cast(Backend, EmptyBackend(settings))


@contextmanager
def serving(app: FastAPI) -> Iterator[tuple[str, int]]:
    """Serve ``app`` on 127.0.0.1 until the block ends; yields (host, port).

    ``log_config=None`` leaves uvicorn's loggers propagating, so ``caplog`` sees its errors.
    """
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    host, port = sock.getsockname()
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="on", timeout_notify=5))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        # The backend is built after startup (the lifespan does not wait for it): a request in
        # between gets the 503 "models are still loading", which a CI run once met.
        deadline = time.monotonic() + 120
        ready = http_ready(f"http://{host}:{port}/readyz")
        while not ready():
            assert thread.is_alive() and time.monotonic() < deadline, "the app never got ready"
            time.sleep(0.05)
        yield host, port
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@contextmanager
def serving_settings(settings: Settings) -> Iterator[tuple[str, int]]:
    """``create_app(settings)`` with an ``EmptyBackend``, served."""
    with serving(create_app(settings, empty_backend)) as address:
        yield address


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names) and body of one HTTP/1.1 response with a
    Content-Length, read from a raw socket (its timeout applies to each read)."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        assert piece, f"connection closed before a response: {data!r}"
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        piece = sock.recv(65536)
        assert piece, "connection closed inside the response body"
        body += piece
    return int(status_line.split()[1]), headers, body[:length]
