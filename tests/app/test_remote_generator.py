"""The remote generator against a real llama.cpp server (``python -m llama_cpp.server``, from
llama-cpp-python's ``server`` extra) serving the test profile's GGUF on loopback: streaming with
log-probabilities, yes/no scores, answers through /v1/ask, and a degraded answer once the
server is gone."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from app.generation.openai_generator import OpenAICompatibleGenerator
from app.main import create_app
from config.settings import Settings
from modelstore.cache import ModelCache
from modelstore.catalog import MODELS
from tests.app.fake_backend import wait_ready
from tests.conftest import TEST_MODELS_DIR
from tests.index.conftest import free_port
from wiring.compose import Services

pytestmark = pytest.mark.slow  # a server process
START_S = 120.0


@pytest.fixture
def llama_server(
    tmp_path: Path, test_models: ModelCache
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    gguf = test_models.status(MODELS["smollm2-135m-instruct"], "gguf").path
    assert gguf is not None
    port = free_port()
    log = tmp_path / "llama-server.log"
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(gguf),
        "--model_alias",
        "smollm2",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "4096",
        "--n_threads",
        "2",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + START_S
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                if httpx.get(f"{base}/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.3)
        yield base, proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_real_llama_cpp_server_streams_with_logprobs(
    llama_server: tuple[str, subprocess.Popen[bytes]],
) -> None:
    base, _ = llama_server
    gen = OpenAICompatibleGenerator(base)
    gen.load()
    assert gen.model_id == "smollm2"  # from the server's model list
    pieces: list[str] = []
    out = gen.generate(
        [{"role": "user", "content": "Name one colour of the sky."}], 12, on_token=pieces.append
    )
    assert out.text and "".join(pieces) == out.text
    assert out.mean_logprob is not None and out.mean_logprob < 0
    assert 0 < out.completion_tokens <= 12 and out.finish_reason in ("stop", "length")
    (p,) = gen.yes_probability(
        [[{"role": "user", "content": "Is the sky blue on a clear day? Answer yes or no."}]]
    )
    assert 0.0 <= p <= 1.0
    gen.close()


def test_the_service_answers_through_the_server_and_degrades_when_it_is_gone(
    tmp_path: Path, llama_server: tuple[str, subprocess.Popen[bytes]]
) -> None:
    base, proc = llama_server
    settings = Settings(
        data_dir=tmp_path / "data",
        models_dir=TEST_MODELS_DIR,
        profile="test",
        generator_url=base,
        generation_timeout_s=60,
    )
    with TestClient(create_app(settings, Services.build_for_serving)) as client:
        wait_ready(client, 120)
        r = client.post(
            "/v1/collections/docs/documents?wait=true",
            files={
                "file": (
                    "runbook.md",
                    b"# Runbook\n\nThe orbit-agent daemon listens on port 7070.\n",
                )
            },
        )
        assert r.status_code == 200, r.text
        answer = client.post("/v1/ask", json={"question": "Which port does orbit-agent listen on?"})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["model"]["engine"] == "remote" and body["model"]["generator"] == "smollm2"
        assert body["degraded"] is False and body["usage"]["completion_tokens"] > 0
        proc.terminate()
        proc.wait(timeout=30)
        gone = client.post("/v1/ask", json={"question": "Which port does orbit-agent listen on?"})
        assert gone.status_code == 200, gone.text
        assert gone.json()["degraded"] is True and "7070" in gone.json()["answer"]
