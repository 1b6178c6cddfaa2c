"""The HTTP API on fakes (fast tier): /v1/ask (JSON, its event stream, the batch), /v1/retrieve,
the error statuses and the metrics, through ``create_app`` with the real composition on the
``HashEmbedder`` and the ``FakeGenerator`` (tests/app/fake_backend.py). No model is loaded.

The documents are a few short text files whose words the questions share (the hashing embedder
matches words), so every retrieval, decline and answer here is known in advance.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from app.generation.fake import FakeGenerator
from app.generation.protocol import Messages
from app.main import create_app
from tests.app.fake_backend import (
    fake_backend,
    fake_settings,
    sse_events,
    wait_ready,
)

DOCS = {
    "keys.txt": "API keys rotate every 30 days.",
    "backups.txt": "Database backups run nightly and are kept for 14 days.",
    "orbit.txt": "Orbit scheduler listens at port 8450.",
    # Over the 300 characters of a citation's snippet: cited, it is cut to 299 and "…".
    "release.txt": " ".join(
        f"Release train {n} leaves from platform {n} after the cutoff." for n in range(1, 8)
    ),
}
ANSWERABLE = "How often do API keys rotate"
ANSWER = "API keys rotate every 30 days [1]."
RELEASE = "Which platform does release train 3 leave from"
RELEASE_ANSWER = "Release train 3 leaves platform 3 [1]."
OFF_TOPIC = "Which cafeteria dishes contain peanuts"
DECLINE = "I don't know based on the provided documents."
SNIPPET_CHARS = 300  # a citation's snippet: the passage, or its first 299 characters and "…"


def reply(messages: Messages) -> str:
    """The fake model: knows the answers to two questions, and cites the first passage."""
    prompt = messages[-1]["content"]
    if f"Question: {ANSWERABLE}" in prompt:
        return ANSWER
    if f"Question: {RELEASE}" in prompt:
        return RELEASE_ANSWER
    return DECLINE


@pytest.fixture
def generator() -> FakeGenerator:
    return FakeGenerator(reply)


@pytest.fixture
def client(make_client: Any, generator: FakeGenerator) -> TestClient:
    made: TestClient = make_client(generator)
    return made


def _passages(client: TestClient, question: str, **extra: object) -> list[dict[str, Any]]:
    r = client.post("/v1/retrieve", json={"question": question, **extra})
    assert r.status_code == 200, r.text
    passages: list[dict[str, Any]] = r.json()["passages"]
    return passages


# ------------------------------------------------------------------------------- retrieval
def test_retrieve_finds_the_passage_that_shares_the_words(client: TestClient) -> None:
    passages = _passages(client, ANSWERABLE, top_k=2)
    assert len(passages) == 2
    top = passages[0]
    assert (top["source"], top["text"]) == ("keys.txt", DOCS["keys.txt"])
    assert top["scores"]["dense"] > passages[1]["scores"].get("dense", -1.0)
    assert set(top) >= {"chunk_id", "doc_id", "title", "page", "heading_path", "score"}
    keyword = _passages(client, "port 8450", mode="keyword", top_k=5)
    assert [p["source"] for p in keyword] == ["orbit.txt"]  # BM25: the only one with the words
    only = _passages(client, ANSWERABLE, filters={"source": "backups.txt"})
    assert {p["source"] for p in only} == {"backups.txt"}


# ------------------------------------------------------------------------------------- ask
def test_ask_answers_with_the_cited_passage(client: TestClient, generator: FakeGenerator) -> None:
    r = client.post("/v1/ask", json={"question": ANSWERABLE})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["answer"] == ANSWER
    assert not body["declined"] and not body["degraded"]
    top = _passages(client, ANSWERABLE, top_k=1)[0]
    [citation] = body["citations"]
    assert citation["n"] == 1
    assert citation["chunk_id"] == top["chunk_id"] and citation["source"] == "keys.txt"
    assert citation["snippet"] == DOCS["keys.txt"]  # shorter than a snippet: all of it
    assert body["model"] == {
        "generator": "fake-generator",
        "engine": "fake",
        "quantization": "none",
        "embedder": "hash-words",
    }
    assert body["usage"]["completion_tokens"] == len(ANSWER.split())
    assert body["usage"]["prompt_tokens"] > 0
    assert 0.0 < body["confidence"] <= 1.0
    assert body["query"] == ANSWERABLE
    stages = {"embed", "retrieve", "rerank", "generate", "first_token", "total"}
    assert set(body["timings_ms"]) == stages
    assert 0 < body["timings_ms"]["first_token"] <= body["timings_ms"]["total"]
    # The prompt the model saw held the passage and the question.
    prompt = generator.calls[-1][-1]["content"]
    assert DOCS["keys.txt"] in prompt and ANSWERABLE in prompt


def test_total_and_first_token_share_the_request_clock_across_a_follow_up_rewrite(
    make_client: Any,
) -> None:
    """Both are measured from the request's start: the rewrite of a follow-up (here about 0.6 s of
    slow model tokens) counts in both, so the first token never comes after the total."""

    def slow_reply(messages: Messages) -> str:
        if "Last question:" in messages[-1]["content"]:  # the rewrite prompt
            return ANSWERABLE + "?"
        return ANSWER

    client = make_client(FakeGenerator(slow_reply, seconds_per_token=0.1))
    history = [
        {"role": "user", "content": "Tell me about API keys"},
        {"role": "assistant", "content": "They are bearer tokens [1]."},
    ]
    body = client.post("/v1/ask", json={"question": "How often?", "history": history}).json()
    assert body["query"] == ANSWERABLE + "?" and body["answer"] == ANSWER
    timings = body["timings_ms"]
    rewrite_ms = 6 * 100  # six tokens at 0.1 s, all before retrieval
    answer_ms = len(ANSWER.split()) * 100
    assert timings["first_token"] >= rewrite_ms + 100
    assert timings["total"] >= timings["first_token"] + answer_ms - 100
    assert timings["total"] >= rewrite_ms + timings["generate"]


def test_a_long_passage_is_cited_by_its_first_299_characters(client: TestClient) -> None:
    body = client.post("/v1/ask", json={"question": RELEASE}).json()
    assert body["answer"] == RELEASE_ANSWER
    [citation] = body["citations"]
    text = DOCS["release.txt"]
    assert len(text) > SNIPPET_CHARS and citation["source"] == "release.txt"
    assert citation["snippet"] == text[: SNIPPET_CHARS - 1] + "…"


def test_an_off_topic_question_is_declined_without_the_model(
    client: TestClient, generator: FakeGenerator
) -> None:
    calls = len(generator.calls)
    body = client.post("/v1/ask", json={"question": OFF_TOPIC}).json()
    assert body["declined"] and body["answer"] == DECLINE and body["citations"] == []
    assert body["usage"]["completion_tokens"] == 0 and body["timings_ms"]["generate"] == 0.0
    assert len(generator.calls) == calls


def test_the_stream_sends_the_tokens_then_the_final_answer(client: TestClient) -> None:
    with client.stream("POST", "/v1/ask", json={"question": ANSWERABLE, "stream": True}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r.read().decode())
    kinds = [kind for kind, _ in events]
    assert kinds == ["token"] * len(ANSWER.split()) + ["final"]
    tokens = [data["text"] for kind, data in events if kind == "token"]
    final = events[-1][1]
    assert "".join(tokens) == ANSWER == final["answer"]
    assert not final["degraded"] and final["citations"][0]["source"] == "keys.txt"


def test_a_declined_stream_has_no_tokens(client: TestClient) -> None:
    with client.stream("POST", "/v1/ask", json={"question": OFF_TOPIC, "stream": True}) as r:
        events = sse_events(r.read().decode())
    assert [kind for kind, _ in events] == ["final"]
    assert events[0][1]["declined"] and events[0][1]["answer"] == DECLINE


def test_batch_answers_in_order(client: TestClient) -> None:
    questions = [{"question": ANSWERABLE}, {"question": OFF_TOPIC}, {"question": RELEASE}]
    r = client.post("/v1/ask/batch", json={"questions": questions})
    assert r.status_code == 200, r.text
    answers = r.json()["answers"]
    assert [a["answer"] for a in answers] == [ANSWER, DECLINE, RELEASE_ANSWER]


def test_a_failing_model_degrades_to_the_best_sentence_of_the_top_passage(
    make_client: Any,
) -> None:
    client = make_client(FakeGenerator(reply, fail_with=RuntimeError("the model fell over")))
    r = client.post("/v1/ask", json={"question": ANSWERABLE})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["degraded"] and not body["declined"]
    assert body["answer"] == f"{DOCS['keys.txt']} [1]"
    assert [c["source"] for c in body["citations"]] == ["keys.txt"]


def test_a_generation_past_its_time_limit_degrades(make_client: Any) -> None:
    slow = FakeGenerator(reply, seconds_per_token=0.5)
    client = make_client(slow, generation_timeout_s=0.2)
    body = client.post("/v1/ask", json={"question": ANSWERABLE}).json()
    assert body["degraded"] and body["answer"] == f"{DOCS['keys.txt']} [1]"


# ---------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"question": "x" * 2001}, 422, "over the limit of 2000"),
        ({"question": "   "}, 422, "empty"),
        ({"question": "x", "top_k": 51}, 422, "top_k"),
        ({"question": "x", "history": [{"role": "robot", "content": "hi"}]}, 422, "role"),
        ({"question": "x", "surprise": 1}, 422, "surprise"),
        ({"question": "x", "collection": "absent"}, 404, "absent"),
    ],
)
def test_bad_requests_get_their_status_in_the_error_shape(
    client: TestClient, body: dict[str, object], status: int, needle: str
) -> None:
    for path in ("/v1/ask", "/v1/retrieve"):
        if path == "/v1/retrieve" and "history" in body:
            continue
        r = client.post(path, json=body)
        assert r.status_code == status, (path, r.text)
        error = r.json()["error"]
        assert needle in error["message"] and error["code"], (path, error)
    # A stream is refused before it starts, so it gets the status too.
    if "history" not in body:
        r = client.post("/v1/ask", json={**body, "stream": True})
        assert r.status_code == status and needle in r.json()["error"]["message"]


def test_a_batch_over_its_limit_is_a_422(client: TestClient) -> None:
    r = client.post("/v1/ask/batch", json={"questions": [{"question": "q"}] * 17})
    assert r.status_code == 422 and "batch limit of 16" in r.json()["error"]["message"]


def test_a_key_is_required_when_keys_are_set_and_each_key_is_rate_limited(
    tmp_path: Path,
) -> None:
    settings = fake_settings(tmp_path, api_keys=[SecretStr("k-1")], rate_limit_per_minute=2)
    with TestClient(create_app(settings, fake_backend(FakeGenerator(reply)))) as client:
        wait_ready(client)
        assert client.get("/healthz").status_code == 200  # health needs no key
        for headers in ({}, {"Authorization": "Bearer k-2"}, {"Authorization": "k-1"}):
            r = client.post("/v1/retrieve", json={"question": ANSWERABLE}, headers=headers)
            assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
            assert r.json()["error"]["code"] == "unauthorized"
        good = {"Authorization": "Bearer k-1"}
        for _ in range(2):  # a minute's worth: two requests
            assert client.get("/v1/collections", headers=good).json() == {"collections": []}
        limited = client.get("/v1/collections", headers=good)
        assert limited.status_code == 429 and limited.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(limited.headers["Retry-After"]) <= 30


def test_before_the_backend_is_loaded_the_api_answers_503(tmp_path: Path) -> None:
    loaded = threading.Event()
    inner = fake_backend(FakeGenerator(reply))

    def slow_backend(settings: Any) -> Any:
        assert loaded.wait(30)
        return inner(settings)

    with TestClient(create_app(fake_settings(tmp_path), slow_backend)) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 503
        r = client.post("/v1/ask", json={"question": ANSWERABLE})
        assert r.status_code == 503 and r.headers["Retry-After"] == "5"
        assert r.json()["error"]["code"] == "not_ready"
        loaded.set()
        wait_ready(client)


def test_a_full_queue_answers_503_with_retry_after(make_client: Any) -> None:
    gated = FakeGenerator(reply)
    client = make_client(gated, queue_size=1)
    gated.release.clear()
    gated.started.clear()
    first: dict[str, Any] = {}
    worker = threading.Thread(
        target=lambda: first.update(r=client.post("/v1/ask", json={"question": ANSWERABLE}))
    )
    worker.start()
    try:
        assert gated.started.wait(10), "the first generation never started"
        busy = client.post("/v1/ask", json={"question": ANSWERABLE})
        assert busy.status_code == 503 and busy.headers["Retry-After"] == "5"
        assert busy.json()["error"]["code"] == "overloaded"
        streamed = client.post("/v1/ask", json={"question": ANSWERABLE, "stream": True})
        assert streamed.status_code == 503 and streamed.json()["error"]["code"] == "overloaded"
        # A decline needs no generation, and retrieval needs no queue: both still answer.
        assert client.post("/v1/ask", json={"question": OFF_TOPIC}).json()["declined"]
        assert client.post("/v1/retrieve", json={"question": ANSWERABLE}).status_code == 200
        assert _scrape(client)["docqa_queue_depth{}"] == 1
    finally:
        gated.release.set()
        worker.join(30)
    assert first["r"].status_code == 200 and first["r"].json()["answer"] == ANSWER
    assert client.post("/v1/ask", json={"question": ANSWERABLE}).status_code == 200
    assert _scrape(client)["docqa_queue_depth{}"] == 0


# --------------------------------------------------------------------------------- metrics
def _scrape(client: TestClient) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for s in family.samples:
            out[s.name + json.dumps(s.labels, sort_keys=True)] = s.value
    return out


def test_answer_metrics_move_by_what_the_answers_were(client: TestClient) -> None:
    before = _scrape(client)
    answered = client.post("/v1/ask", json={"question": ANSWERABLE}).json()
    declined = client.post("/v1/ask", json={"question": OFF_TOPIC}).json()
    after = _scrape(client)

    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    outcome = "low_confidence" if answered["low_confidence"] else "answered"
    assert delta(f'docqa_answers_total{{"outcome": "{outcome}"}}') == 1
    assert delta('docqa_answers_total{"outcome": "declined"}') == 1
    assert delta("docqa_generated_tokens_total{}") == len(ANSWER.split())
    assert delta("docqa_answer_confidence_count{}") == 2
    assert delta("docqa_answer_confidence_sum{}") == pytest.approx(
        answered["confidence"] + declined["confidence"]
    )
    assert delta("docqa_time_to_first_token_seconds_count{}") == 1  # the decline generated nothing
    assert delta("docqa_retrieval_top_score_count{}") == 2
    for stage in ("embed", "retrieve", "rerank", "generate", "total"):
        assert delta(f'docqa_stage_latency_seconds_count{{"stage": "{stage}"}}') == 2, stage
    assert delta('docqa_requests_total{"endpoint": "/v1/ask", "status": "200"}') == 2
    assert delta('docqa_request_latency_seconds_count{"endpoint": "/v1/ask"}') == 2
    # The first two answers of this service: the decline is low-confidence, the answer maybe.
    assert after["docqa_low_confidence_ratio{}"] == (1 + answered["low_confidence"]) / 2
    assert after["docqa_queue_depth{}"] == 0
    assert after["docqa_query_drift_pvalue{}"] == 1.0  # fewer scores than a reference window
    info = [k for k in after if k.startswith("docqa_model_info")]
    assert len(info) == 1 and '"generator": "fake-generator"' in info[0]
    assert '"embedder": "hash-words"' in info[0]
