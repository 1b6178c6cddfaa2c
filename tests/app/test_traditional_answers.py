"""Answers in the question's script (fast tier, on fakes): a question in traditional Chinese gets
its answer, its decline and its extractive fallback in traditional script, streamed or not, while
citations keep quoting the (simplified) documents; simplified and English questions are left
alone. The fake model answers in simplified script whatever it is asked, as small models do.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.answer.confidence import support_score
from app.answer.prompt import DECLINE_EN, DECLINE_ZH, is_decline
from app.answer.units import content_units
from app.generation.fake import FakeGenerator
from app.generation.protocol import Messages
from tests.app.fake_backend import sse_events

DOCS = {
    "keys.txt": "Orbit API 密钥 每 30 天 轮换 一次 ，由 安全 团队 签约 管理。",
    "backups.txt": "Nebula 数据库 备份 每晚 运行，保留 14 天。",
}
# Words apart: the fake embedder matches whitespace-separated words (and 密鑰 is not 密钥 to it).
TRADITIONAL_Q = "Orbit API 密鑰 每 30 天 輪換 一次 嗎？"
SIMPLIFIED_Q = "Orbit API 密钥 每 30 天 轮换 一次 吗？"
# What the fake model writes for either question: simplified script, as small models do. 签 on
# its own converts to 籤; only with 约 after it does OpenCC make it 簽.
SIMPLIFIED_ANSWER = "Orbit API 密钥每 30 天轮换一次，由安全团队签约管理 [1]。"
TRADITIONAL_ANSWER = "Orbit API 密鑰每 30 天輪換一次，由安全團隊簽約管理 [1]。"
TRADITIONAL_OFF_TOPIC = "餐廳的哪些菜裡有花生？"
SIMPLIFIED_OFF_TOPIC = "餐厅的哪些菜里有花生？"
TRADITIONAL_DECLINE = "根據提供的文檔，我無法回答這個問題。"


def reply(messages: Messages) -> str:
    prompt = messages[-1]["content"]
    if f"Question: {TRADITIONAL_Q}" in prompt or f"Question: {SIMPLIFIED_Q}" in prompt:
        return SIMPLIFIED_ANSWER
    return DECLINE_EN


@pytest.fixture
def client(make_client: Any) -> TestClient:
    made: TestClient = make_client(FakeGenerator(reply))
    return made


def _ask(client: TestClient, question: str) -> dict[str, Any]:
    r = client.post("/v1/ask", json={"question": question})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_a_traditional_question_gets_a_traditional_answer_citing_the_source_as_written(
    client: TestClient,
) -> None:
    body = _ask(client, TRADITIONAL_Q)
    assert body["answer"] == TRADITIONAL_ANSWER
    assert not body["declined"] and not body["degraded"]
    [citation] = body["citations"]
    assert citation["source"] == "keys.txt" and citation["snippet"] == DOCS["keys.txt"]


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        (SIMPLIFIED_Q, SIMPLIFIED_ANSWER),
        (SIMPLIFIED_OFF_TOPIC, DECLINE_ZH),
        ("Which dishes in the cafeteria have peanuts?", DECLINE_EN),
        ("How often does the Orbit 密鑰 rotate?", DECLINE_EN),  # English, naming a 繁體 term
    ],
)
def test_simplified_and_english_questions_are_answered_as_before(
    client: TestClient, question: str, answer: str
) -> None:
    assert _ask(client, question)["answer"] == answer


def test_a_traditional_question_is_declined_in_traditional(make_client: Any) -> None:
    generator = FakeGenerator(reply)
    client = make_client(generator)
    body = _ask(client, TRADITIONAL_OFF_TOPIC)  # under the evidence floor: no model call
    assert body["declined"] and body["answer"] == TRADITIONAL_DECLINE and body["citations"] == []
    # Past the floor the model declines (in English, as the prompt tells it): the same phrase.
    low_floor = make_client(generator, evidence_floor=0.0)
    calls = len(generator.calls)
    body = _ask(low_floor, TRADITIONAL_OFF_TOPIC)
    assert len(generator.calls) == calls + 1
    assert body["declined"] and body["answer"] == TRADITIONAL_DECLINE


def test_a_decline_the_model_writes_in_traditional_script_is_a_decline() -> None:
    assert is_decline("根據提供的文檔，我無法回答這個問題。")
    assert is_decline("我無法回答這個問題")
    assert not is_decline("密鑰每 30 天輪換一次 [1]。")


def test_a_traditional_answer_overlaps_its_simplified_passage() -> None:
    """Content units fold the scripts together: support, confidence, the citation fallback and
    the extractive sentence see 日誌 and 日志 as one word."""
    assert content_units("日誌保留90天") == content_units("日志保留90天")
    assert support_score("密鑰每 30 天輪換 [1]", ["密钥每 30 天轮换一次。"]) == 1.0


def test_the_extractive_fallback_is_in_traditional_and_its_citation_is_not(
    make_client: Any,
) -> None:
    client = make_client(FakeGenerator(reply, fail_with=RuntimeError("the model fell over")))
    body = _ask(client, TRADITIONAL_Q)
    assert body["degraded"]
    assert body["answer"] == "Orbit API 密鑰 每 30 天 輪換 一次 ，由 安全 團隊 簽約 管理。 [1]"
    assert body["citations"][0]["snippet"] == DOCS["keys.txt"]
    simplified = _ask(client, SIMPLIFIED_Q)
    assert simplified["degraded"] and simplified["answer"] == f"{DOCS['keys.txt']} [1]"


def _stream(client: TestClient, question: str) -> tuple[list[str], dict[str, Any]]:
    with client.stream("POST", "/v1/ask", json={"question": question, "stream": True}) as r:
        assert r.status_code == 200
        events = sse_events(r.read().decode())
    assert events[-1][0] == "final"
    return [data["text"] for kind, data in events if kind == "token"], events[-1][1]


def test_streamed_tokens_of_a_traditional_question_are_traditional(client: TestClient) -> None:
    tokens, final = _stream(client, TRADITIONAL_Q)
    assert final["answer"] == TRADITIONAL_ANSWER
    # Converted in context, not character by character: 签约 streams as 簽約, never 籤.
    assert "".join(tokens) == TRADITIONAL_ANSWER
    assert all(tokens)  # a held-back character sends no empty token
    tokens, final = _stream(client, SIMPLIFIED_Q)
    assert "".join(tokens) == SIMPLIFIED_ANSWER == final["answer"]


def test_the_chat_stream_of_a_traditional_question_carries_the_answer_once(
    client: TestClient,
) -> None:
    request = {"messages": [{"role": "user", "content": TRADITIONAL_Q}], "stream": True}
    with client.stream("POST", "/v1/chat/completions", json=request) as r:
        raw = r.read().decode()
    chunks = [
        json.loads(line.removeprefix("data: "))
        for line in raw.split("\n")
        if line.startswith("data: {")
    ]
    content = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert content.startswith(TRADITIONAL_ANSWER)
    assert content.count(TRADITIONAL_ANSWER) == 1 and "Sources:" in content
