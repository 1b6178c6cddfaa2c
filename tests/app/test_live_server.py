"""A started `docqa serve` process on loopback: load, fuzzing and the `docqa ask` client."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from typer.testing import CliRunner

from docqa.cli.main import app as cli
from modelstore.cache import ModelCache
from tests.conftest import TEST_MODELS_DIR

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, test_models: ModelCache) -> Iterator[str]:
    port = _free_port()
    env = {
        **os.environ,
        "DOCQA_DATA_DIR": str(tmp_path_factory.mktemp("live") / "data"),
        "DOCQA_MODELS_DIR": str(TEST_MODELS_DIR),
        "DOCQA_PROFILE": "test",
        "DOCQA_QUEUE_SIZE": "2",
        "DOCQA_ANSWER_MAX_TOKENS": "12",
        "DOCQA_LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "docqa", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, "docqa serve exited"
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.2)
        for path in sorted(EXAMPLES.iterdir()):
            r = httpx.post(
                f"{base}/v1/collections/docs/documents?wait=true",
                files={"file": (path.name, path.read_bytes())},
                timeout=120,
            )
            assert r.status_code == 200
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_twenty_concurrent_requests_get_answers_or_503_and_the_server_stays_ready(
    server: str,
) -> None:
    def ask(i: int) -> httpx.Response:
        question = f"How often do API keys rotate? ({i})"
        return httpx.post(f"{server}/v1/ask", json={"question": question}, timeout=300)

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(ask, range(20)))
    codes = [r.status_code for r in responses]
    assert set(codes) <= {200, 503}, codes
    assert codes.count(200) >= 2 and codes.count(503) >= 1, codes
    for r in responses:
        if r.status_code == 503:
            assert r.headers["Retry-After"] and r.json()["error"]["code"] == "overloaded"
        else:
            assert r.json()["answer"]
    assert httpx.get(f"{server}/readyz").status_code == 200
    assert httpx.get(f"{server}/healthz").status_code == 200


def test_docqa_ask_through_the_server(server: str) -> None:
    result = CliRunner().invoke(
        cli, ["ask", "What is on the cafeteria menu on Fridays?", "--url", server]
    )
    assert result.exit_code == 0, result.output
    assert "I don't know" in result.stdout and "declined" in result.stdout
    missing = CliRunner().invoke(cli, ["ask", "x", "--url", server, "--collection", "absent"])
    assert missing.exit_code == 1 and "404" in missing.stderr


def test_schemathesis_finds_no_server_error(server: str) -> None:
    """Fuzz every operation of the OpenAPI schema; 503 (overload) is allowed, other 5xx not."""
    schema = schemathesis.openapi.from_url(f"{server}/openapi.json")
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case) -> None:
            response = case.call(timeout=300)
            if response.status_code >= 500 and response.status_code != 503:
                failures.append(
                    f"{case.method} {case.formatted_path} -> {response.status_code}: "
                    f"{response.text[:300]}"
                )

        check()
    assert operations >= 10
    assert not failures, "\n".join(failures[:5])
