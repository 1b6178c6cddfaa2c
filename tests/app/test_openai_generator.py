"""The OpenAI-compatible generator against scripted servers (httpx.MockTransport): streaming,
log-probabilities, the deadline, cancel, bounded retries, garbage, concurrency, yes/no scores;
and the service degrading (never a 500) when the server is down."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from app.generation.openai_generator import OpenAICompatibleGenerator, RemoteGeneratorError
from app.main import create_app
from config.settings import Settings
from tests.app.fake_backend import HashWords, fake_settings, wait_ready
from tests.index.conftest import free_port
from wiring.compose import Services

MESSAGES = [{"role": "user", "content": "Which port does orbit-agent use?"}]


def _chunk(text: str | None, logprob: float | None = None, finish: str | None = None) -> bytes:
    choice: dict[str, object] = {"index": 0, "delta": {} if text is None else {"content": text}}
    choice["logprobs"] = (
        None if logprob is None else {"content": [{"token": text, "logprob": logprob}]}
    )
    choice["finish_reason"] = finish
    return f"data: {json.dumps({'choices': [choice]})}\n\n".encode()


def _stream(*parts: bytes, pause: float = 0.0) -> Callable[[httpx.Request], httpx.Response]:
    def body() -> Iterator[bytes]:
        for part in parts:
            if pause:
                time.sleep(pause)
            yield part
        yield b"data: [DONE]\n\n"

    return lambda request: httpx.Response(200, content=body())


def _generator(
    handler: Callable[[httpx.Request], httpx.Response], **kw: object
) -> OpenAICompatibleGenerator:
    options: dict[str, object] = {"model": "served-model", "backoff_s": 0.01, **kw}
    return OpenAICompatibleGenerator(
        "http://generator.test/v1",
        transport=httpx.MockTransport(handler),
        **options,  # type: ignore[arg-type]
    )


def test_tokens_stream_with_their_logprobs() -> None:
    seen: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        assert request.headers["Authorization"] == "Bearer k-1"
        return _stream(
            _chunk("Port", -0.1),
            _chunk(" 7070", -0.3),
            _chunk(" [1].", -0.2),
            _chunk(None, finish="stop"),
        )(request)

    pieces: list[str] = []
    gen = _generator(handler, api_key="k-1").generate(MESSAGES, 32, on_token=pieces.append)
    assert pieces == ["Port", " 7070", " [1]."] and gen.text == "Port 7070 [1]."
    assert gen.finish_reason == "stop" and gen.completion_tokens == 3
    assert gen.mean_logprob == pytest.approx(-0.2) and gen.first_token_s is not None
    assert gen.prompt_tokens > 0  # estimated: this server sends no usage
    body = seen[0]
    assert body["model"] == "served-model" and body["stream"] is True
    assert body["logprobs"] is True and body["max_tokens"] == 32 and body["temperature"] == 0.0
    assert body["messages"] == MESSAGES


def test_a_server_without_logprobs_leaves_the_certainty_unknown() -> None:
    handler = _stream(_chunk("Port"), _chunk(" 7070", finish="length"))
    gen = _generator(handler).generate(MESSAGES, 2)
    assert (gen.text, gen.mean_logprob, gen.finish_reason, gen.completion_tokens) == (
        "Port 7070",
        None,
        "length",
        2,
    )


def test_connection_failures_are_retried_with_backoff_then_succeed() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise httpx.ConnectError("connection refused", request=request)
        return _stream(_chunk("ok"))(request)

    gen = _generator(handler, retries=3, backoff_s=0.05).generate(MESSAGES, 8)
    assert gen.text == "ok" and len(calls) == 3
    assert calls[1] - calls[0] >= 0.05 and calls[2] - calls[1] >= 0.1  # 0.05, then 0.1


def test_retries_are_bounded() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(503, text="overloaded")

    with pytest.raises(RemoteGeneratorError, match=r"HTTP 503: overloaded \(after 3 tries\)"):
        _generator(handler, retries=2).generate(MESSAGES, 8)
    assert len(calls) == 3


def test_a_client_error_is_not_retried() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(400, json={"error": "model 'x' not found"})

    with pytest.raises(RemoteGeneratorError, match="HTTP 400"):
        _generator(handler).generate(MESSAGES, 8)
    assert len(calls) == 1


@pytest.mark.parametrize(
    "garbage",
    [
        b"data: <html>oops</html>\n\n",
        b'data: ["a list"]\n\n',
        b'data: {"error": "boom"}\n\n',
        b'data: {"choices": "nope"}\n\n',
    ],
)
def test_garbage_is_an_error_not_an_answer(garbage: bytes) -> None:
    with pytest.raises(RemoteGeneratorError, match="outside the protocol"):
        _generator(_stream(_chunk("Port"), garbage)).generate(MESSAGES, 8)


def test_the_deadline_returns_the_text_so_far() -> None:
    handler = _stream(*[_chunk(f" w{i}", -0.1) for i in range(50)], pause=0.05)
    started = time.monotonic()
    gen = _generator(handler).generate(MESSAGES, 64, deadline=time.monotonic() + 0.5)
    assert gen.finish_reason == "timeout" and 0 < gen.completion_tokens < 50
    assert time.monotonic() - started < 1.5


def test_cancel_stops_the_stream() -> None:
    cancel = threading.Event()
    handler = _stream(*[_chunk(f" w{i}") for i in range(50)], pause=0.02)
    pieces: list[str] = []

    def on_token(piece: str) -> None:
        pieces.append(piece)
        if len(pieces) == 3:
            cancel.set()

    gen = _generator(handler).generate(MESSAGES, 64, on_token=on_token, cancel=cancel)
    assert gen.finish_reason == "cancelled" and gen.text == " w0 w1 w2"


class InFlight:
    """Calls running at once: ``peak`` is the most seen; each call takes 50 ms."""

    def __init__(self) -> None:
        self.live = self.peak = 0
        self._lock = threading.Lock()

    def call(self) -> None:
        with self._lock:
            self.live += 1
            self.peak = max(self.peak, self.live)
        time.sleep(0.05)
        with self._lock:
            self.live -= 1


def test_requests_in_flight_are_bounded_by_the_concurrency() -> None:
    flight = InFlight()

    def handler(request: httpx.Request) -> httpx.Response:
        flight.call()
        return _stream(_chunk("ok"))(request)

    gen = _generator(handler, concurrency=2)
    threads = [threading.Thread(target=gen.generate, args=(MESSAGES, 4)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert flight.peak == 2


def test_yes_probability_from_the_first_tokens_logprobs() -> None:
    def reply(top: list[tuple[str, float]] | None, content: str) -> httpx.Response:
        logprobs = None
        if top is not None:
            entries = [{"token": t, "logprob": lp} for t, lp in top]
            logprobs = {"content": [{**entries[0], "top_logprobs": entries}]}
        return httpx.Response(
            200,
            json={"choices": [{"message": {"content": content}, "logprobs": logprobs}]},
        )

    answers = iter(
        [
            reply([("Yes", -0.1), ("No", -2.4)], "Yes"),
            reply([("No", -0.05), (" maybe", -4.0)], "No"),  # "yes" below the list
            reply(None, "yes"),  # no logprobs: the token itself
            reply(None, "perhaps"),
        ]
    )
    bodies: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return next(answers)

    scores = _generator(handler).yes_probability([MESSAGES] * 4)
    assert scores[0] == pytest.approx(1 / (1 + math.exp(-2.3)))  # logistic of -0.1 - -2.4
    assert scores[1] < 0.01 and scores[2] == 1.0 and scores[3] == 0.5
    assert bodies[0]["max_tokens"] == 1 and bodies[0]["top_logprobs"] == 20


def test_the_model_is_asked_of_the_server_when_not_named() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"data": [{"id": "qwen2.5-7b-instruct"}]})
        assert json.loads(request.content)["model"] == "qwen2.5-7b-instruct"
        return _stream(_chunk("ok"))(request)

    gen = _generator(handler, model=None)
    assert gen.load() is gen and gen.model_id == "qwen2.5-7b-instruct"
    assert gen.generate(MESSAGES, 4).text == "ok" and gen.engine == "remote"


def test_a_server_that_is_down_degrades_the_answer_not_a_500(tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    settings: Settings = fake_settings(tmp_path, generator_url=down, generator_model="m")

    def build(s: Settings) -> Services:
        return Services.build_for_serving(s, embedder=HashWords())

    with TestClient(create_app(settings, build)) as client:
        wait_ready(client)
        r = client.post(
            "/v1/collections/docs/documents?wait=true",
            files={"file": ("runbook.md", b"# Runbook\n\norbit-agent listens on port 7070.\n")},
        )
        assert r.status_code == 200, r.text
        answer = client.post("/v1/ask", json={"question": "Which port does orbit-agent use?"})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["degraded"] is True and "7070" in body["answer"]
        assert body["model"]["engine"] == "remote"


def test_the_generation_queue_runs_a_remote_generators_concurrency_at_once() -> None:
    from app.queue import GenerationQueue

    for workers, expected in ((3, 3), (1, 1)):  # remote: DOCQA_GENERATOR_CONCURRENCY; local: 1
        flight = InFlight()
        queue = GenerationQueue(2, workers=workers)  # pending is never under the workers
        assert queue.max_pending == max(2, workers)
        futures = [queue.submit(flight.call) for _ in range(min(3, queue.max_pending))]
        for f in futures:
            f.result()
        queue.shutdown()
        assert flight.peak == expected
