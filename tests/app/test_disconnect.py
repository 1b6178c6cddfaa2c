"""A client that goes away stops its answer: SSE, OpenAI-compatible streams and plain requests,
through a real uvicorn server and real HTTP clients that disconnect, on real retrieval (MiniLM,
Chroma, BM25) with a slow fake generator whose every generation is recorded."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.generation.fake import FakeGenerator
from app.generation.protocol import Generation
from app.main import create_app
from config.settings import Settings
from modelstore.cache import ModelCache
from tests.app.live import serving
from tests.conftest import TEST_MODELS_DIR
from wiring.compose import Services

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
QUESTION = "How often do API keys rotate?"
PIECES = 1000  # at 20 ms a piece: 20 s of generation unless it is cancelled
SLOW_REPLY = " ".join(f"word{i}" for i in range(PIECES))


class RecordingGenerator(FakeGenerator):
    """A slow fake whose reply a test may change (``finished`` keeps every generation)."""

    def __init__(self) -> None:
        self.reply = SLOW_REPLY
        super().__init__(lambda _: self.reply, seconds_per_token=0.02)


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, test_models: ModelCache
) -> Iterator[tuple[str, RecordingGenerator]]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("disconnect") / "data",
        models_dir=TEST_MODELS_DIR,
        profile="test",
        embed_backend="torch",
        answer_max_tokens=PIECES + 10,
        generation_timeout_s=120,
        request_timeout_s=120,
        queue_size=2,
    )
    generator = RecordingGenerator()

    def backend(s: Settings) -> Services:
        services = Services.build_for_serving(s, generator=generator)
        services.ingestor("docs").ingest([EXAMPLES / "orbit-runbook.md"])
        return services

    with serving(create_app(settings, backend)) as (host, port):
        base = f"http://{host}:{port}"
        deadline = time.monotonic() + 120
        while httpx.get(f"{base}/readyz").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        yield base, generator


def _metric(base: str, name: str) -> float:
    for line in httpx.get(f"{base}/metrics").text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _wait_cancelled(generator: RecordingGenerator, before: int, closed: float) -> Generation:
    """The generation that ended after the client closed; fails if it ran its course."""
    deadline = closed + 10.0
    while len(generator.finished) <= before:
        assert time.monotonic() < deadline, "the generation did not stop after the disconnect"
        time.sleep(0.05)
    result, ended = generator.finished[-1]
    assert result.finish_reason == "cancelled"
    assert result.completion_tokens < PIECES // 2  # far from the 20 s it would have taken
    assert ended - closed < 5.0
    return result


def _start(generator: RecordingGenerator) -> int:
    generator.started.clear()
    return len(generator.finished)


def test_an_abandoned_sse_stream_stops_generating(served: tuple[str, RecordingGenerator]) -> None:
    base, generator = served
    before = _start(generator)
    cancelled_before = _metric(base, 'docqa_answers_total{outcome="cancelled"}')
    body = {"question": QUESTION, "stream": True}
    with (
        httpx.Client(timeout=30) as client,
        client.stream("POST", f"{base}/v1/ask", json=body) as r,
    ):
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("event: token"):
                break  # the first token arrived: now go away
    closed = time.monotonic()
    _wait_cancelled(generator, before, closed)
    deadline = time.monotonic() + 5
    while _metric(base, "docqa_queue_depth") != 0:  # the queue slot is free again
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert _metric(base, 'docqa_answers_total{outcome="cancelled"}') == cancelled_before + 1


def test_an_abandoned_openai_stream_stops_generating(
    served: tuple[str, RecordingGenerator],
) -> None:
    base, generator = served
    before = _start(generator)
    body = {"messages": [{"role": "user", "content": QUESTION}], "stream": True}
    url = f"{base}/v1/chat/completions"
    with httpx.Client(timeout=30) as client, client.stream("POST", url, json=body) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        chunks = 0
        for line in r.iter_lines():
            if line.startswith("data: "):
                event = json.loads(line[6:])
                assert event["object"] == "chat.completion.chunk"
                chunks += 1
                if chunks == 3:
                    break
    _wait_cancelled(generator, before, time.monotonic())


def test_an_abandoned_plain_request_stops_generating(
    served: tuple[str, RecordingGenerator],
) -> None:
    base, generator = served
    before = _start(generator)
    host, port = base.removeprefix("http://").split(":")
    payload = json.dumps({"question": QUESTION}).encode()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/ask HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )
        assert generator.started.wait(30), "the generation never started"
    _wait_cancelled(generator, before, time.monotonic())


def test_after_a_disconnect_the_next_stream_starts_at_once(
    served: tuple[str, RecordingGenerator],
) -> None:
    """Eight abandoned streams used to fill the queue: every one now frees its slot."""
    base, generator = served
    body = {"question": QUESTION, "stream": True}
    for _ in range(4):  # twice the queue size
        before = _start(generator)
        with httpx.Client(timeout=30) as c, c.stream("POST", f"{base}/v1/ask", json=body) as r:
            assert r.status_code == 200
            next(line for line in r.iter_lines() if line.startswith("event: token"))
        _wait_cancelled(generator, before, time.monotonic())
    with httpx.Client(timeout=30) as c, c.stream("POST", f"{base}/v1/ask", json=body) as r:
        assert r.status_code == 200  # not a 503
        assert next(line for line in r.iter_lines() if line.startswith("event: token"))


def test_a_finished_openai_stream_ends_with_sources_and_done(
    served: tuple[str, RecordingGenerator],
) -> None:
    base, generator = served
    generator.seconds_per_token, generator.reply = 0.0, "API keys rotate every 90 days [1]."
    try:
        body = {"messages": [{"role": "user", "content": QUESTION}], "stream": True}
        url = f"{base}/v1/chat/completions"
        with httpx.Client(timeout=60) as c, c.stream("POST", url, json=body) as r:
            events = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    finally:
        generator.seconds_per_token, generator.reply = 0.02, SLOW_REPLY
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    content = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert content.startswith("API keys rotate every 90 days [1].")
    assert "Sources:\n[1] " in content
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
