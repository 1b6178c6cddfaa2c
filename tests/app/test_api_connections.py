"""What the API does at the connection level, over a real uvicorn server on loopback: odd header
bytes, keys on /metrics, and upload bodies over the limit (declared, or chunked and endless).

These need no models: every answer here comes before a route touches the backend.
"""

from __future__ import annotations

import http.client
import json
import logging
import select
import socket
import time

import pytest
from pydantic import SecretStr

from app.backend import Backend
from app.main import create_app
from config.settings import Settings
from tests.app.live import empty_backend, read_response, serving, serving_settings

KEY = "k-1"
UPLOAD = "/v1/collections/docs/documents"
BOUNDARY = "docqa-test-boundary"
MB = 1024 * 1024


def _settings(tmp_path: object, **kw: object) -> Settings:
    return Settings(data_dir=f"{tmp_path}/data", profile="test", **kw)  # type: ignore[arg-type]


def _error(body: bytes) -> dict[str, str]:
    data = json.loads(body)
    assert set(data) == {"error"} and set(data["error"]) == {"code", "message"}, data
    return dict(data["error"])


def test_a_non_ascii_bearer_token_is_a_401_and_the_connection_stays_usable(
    tmp_path: object, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(tmp_path, api_keys=[SecretStr(KEY), SecretStr("clé-2")])
    with serving_settings(settings) as (host, port):
        conn = http.client.HTTPConnection(host, port, timeout=30)
        # http.client sends str header values as latin-1: the byte 0xE9 goes on the wire.
        conn.request("GET", "/v1/collections", headers={"Authorization": "Bearer \xe9"})
        first = conn.getresponse()
        assert first.status == 401, first.read()
        assert _error(first.read())["code"] == "unauthorized"
        assert first.getheader("WWW-Authenticate") == "Bearer"
        sock = conn.sock
        conn.request("GET", "/v1/collections", headers={"Authorization": f"Bearer {KEY}"})
        second = conn.getresponse()
        assert second.status == 200 and json.loads(second.read()) == {"collections": []}
        assert conn.sock is sock and sock is not None, "the connection was not kept"
        # A key with non-ASCII characters matches a client that sends it in UTF-8.
        conn.request("GET", "/v1/collections", headers={"Authorization": "Bearer clé-2".encode()})
        utf8 = conn.getresponse()
        assert utf8.status == 200, utf8.read()
        utf8.read()
        conn.close()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_protected_metrics_answer_401_and_429_in_the_error_shape_without_a_traceback(
    tmp_path: object, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(
        tmp_path, api_keys=[SecretStr(KEY)], protect_metrics=True, rate_limit_per_minute=2
    )
    with serving_settings(settings) as (host, port):
        conn = http.client.HTTPConnection(host, port, timeout=30)

        def scrape(auth: str | None) -> http.client.HTTPResponse:
            conn.request("GET", "/metrics", headers={"Authorization": auth} if auth else {})
            return conn.getresponse()

        for auth in (None, "Bearer wrong", "Basic k-1", "Bearer \xe9"):
            refused = scrape(auth)
            assert refused.status == 401, (auth, refused.status)
            assert refused.getheader("WWW-Authenticate") == "Bearer"
            assert _error(refused.read())["code"] == "unauthorized"
        for _ in range(2):
            ok = scrape(f"Bearer {KEY}")
            assert ok.status == 200
            text = ok.read().decode()
        assert 'docqa_requests_total{endpoint="/metrics",status="401"} 4.0' in text
        limited = scrape(f"Bearer {KEY}")
        assert limited.status == 429 and int(limited.getheader("Retry-After", "0")) >= 1
        assert _error(limited.read())["code"] == "rate_limited"
        conn.close()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not errors, [r.getMessage() for r in errors]


def _upload_head(extra: str) -> bytes:
    return (
        f"POST {UPLOAD} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n{extra}\r\n"
    ).encode()


def _file_part_head(name: str) -> bytes:
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: text/plain\r\n\r\n"
    ).encode()


def test_an_upload_declared_over_the_limit_is_refused_before_its_body(tmp_path: object) -> None:
    """The old service spooled the whole body to disk first: with 200 MB declared and none
    sent, it waited for the body and never answered (here: the socket timeout fails it)."""
    with (
        serving_settings(_settings(tmp_path, max_file_mb=1)) as (host, port),
        socket.create_connection((host, port), timeout=60) as sock,
    ):
        sock.sendall(_upload_head(f"Content-Length: {200 * MB}\r\n") + _file_part_head("a.txt"))
        status, headers, body = read_response(sock)
    assert status == 413 and headers.get("connection") == "close"
    error = _error(body)
    assert error["code"] == "payload_too_large"
    assert f"the upload is {200 * MB} bytes, over the limit" in error["message"]


def test_a_chunked_upload_is_refused_at_the_limit_and_read_no_further(tmp_path: object) -> None:
    """A chunked body that never ends: the 413 must come once the limit is passed (the old
    service read on, waiting for the end). The server reads no more than about the limit."""
    piece = b"a" * 65536
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    with (
        serving_settings(_settings(tmp_path, max_file_mb=1)) as (host, port),
        socket.create_connection((host, port), timeout=60) as sock,
    ):
        head = _file_part_head("a.txt")
        sock.sendall(
            _upload_head("Transfer-Encoding: chunked\r\n") + f"{len(head):x}\r\n".encode() + head
        )
        sock.sendall(b"\r\n")
        sent = 0
        # Send up to 16 MB, stopping once the server has answered; never the final chunk.
        while sent < 16 * MB and not select.select([sock], [], [], 0)[0]:
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(piece)
        status, headers, body = read_response(sock)
    assert status == 413 and headers.get("connection") == "close"
    message = _error(body)["message"]
    assert "the upload passed" in message and "over the limit" in message
    received = int(message.split("the upload passed ")[1].split()[0])
    limit = MB + 64 * 1024
    assert limit < received <= limit + 4 * len(piece), message
    assert sent < 16 * MB


def test_the_live_server_is_handed_over_once_its_backend_is_built(tmp_path: object) -> None:
    """The lifespan builds the backend after uvicorn reports started; a request in between
    gets a 503 "models are still loading" (a CI run met one). The helper waits for /readyz."""

    def slow_backend(settings: Settings) -> Backend:
        time.sleep(1.0)
        return empty_backend(settings)

    with serving(create_app(_settings(tmp_path), slow_backend)) as (host, port):
        conn = http.client.HTTPConnection(host, port, timeout=30)
        conn.request("GET", "/v1/collections")
        response = conn.getresponse()
        assert response.status == 200, response.read()
        conn.close()
