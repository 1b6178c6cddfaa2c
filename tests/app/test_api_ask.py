"""/v1/ask end to end with the real SmolLM2, the real MiniLM embedder, Chroma and BM25."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.generation.fake import FakeGenerator
from app.main import create_app
from config.settings import Settings
from modelstore.cache import ModelCache
from modelstore.catalog import MODELS
from modelstore.onnx_export import choose_backend, embedder_id
from tests.conftest import TEST_MODELS_DIR
from wiring.compose import Services

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MINILM = MODELS["all-minilm-l6-v2"]
ANSWERABLE = "How often do API keys rotate?"
OFF_TOPIC = "What is on the office cafeteria menu on Fridays?"
SNIPPET_CHARS = 300  # a citation's snippet: the passage, or its first 299 characters and "…"


def _settings(tmp: Path, **extra: object) -> Settings:
    base: dict[str, object] = {
        "data_dir": tmp / "data",
        "models_dir": TEST_MODELS_DIR,
        "profile": "test",
        "answer_max_tokens": 48,
        # Generous limits: on a loaded machine the default 60 s could degrade an answer to an
        # extractive one, and the tests below check the generated answer itself.
        "generation_timeout_s": 900.0,
        "request_timeout_s": 900.0,
    }
    return Settings(**{**base, **extra})  # type: ignore[arg-type]


def _ready(client: TestClient) -> None:
    deadline = time.monotonic() + 180
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, client.get("/readyz").text
        time.sleep(0.2)


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory, test_models: ModelCache
) -> Iterator[TestClient]:
    settings = _settings(tmp_path_factory.mktemp("ask"))
    with TestClient(create_app(settings, Services.build_for_serving)) as c:
        _ready(c)
        for path in sorted(EXAMPLES.iterdir()):
            with path.open("rb") as fh:
                assert (
                    c.post(
                        "/v1/collections/docs/documents?wait=true", files={"file": (path.name, fh)}
                    ).status_code
                    == 200
                )
        yield c


def test_answer_with_valid_citations(client: TestClient) -> None:
    r = client.post("/v1/ask", json={"question": ANSWERABLE})
    assert r.status_code == 200, r.text
    body = r.json()
    assert not body["declined"] and body["answer"]
    assert set(body) >= {
        "answer",
        "citations",
        "confidence",
        "low_confidence",
        "declined",
        "degraded",
        "timings_ms",
        "model",
        "usage",
    }
    assert set(body["timings_ms"]) == {
        "embed",
        "retrieve",
        "rerank",
        "generate",
        "first_token",
        "total",
    }
    assert 0 < body["timings_ms"]["first_token"] <= body["timings_ms"]["total"]
    # On a CPU the packaged GGUF runs on llama.cpp as it is: SmolLM2's Q4_1 is the int4 class.
    assert body["model"] == {
        "generator": "smollm2-135m-instruct",
        "engine": "llamacpp",
        "quantization": "int4",
        "embedder": embedder_id(MINILM.name, choose_backend("auto", MINILM, "cpu")),
    }
    assert 0.0 <= body["confidence"] <= 1.0
    assert body["usage"]["prompt_tokens"] > 0 and body["usage"]["completion_tokens"] > 0
    # every citation points to a real chunk that retrieval gave for this question
    passages = client.post("/v1/retrieve", json={"question": ANSWERABLE, "top_k": 5}).json()[
        "passages"
    ]
    known = {p["chunk_id"]: p for p in passages}
    assert not body["degraded"] and body["citations"]
    for c in body["citations"]:
        assert c["chunk_id"] in known and c["source"] == known[c["chunk_id"]]["source"]
        assert 1 <= c["n"] <= 5
        text = known[c["chunk_id"]]["text"]
        expected = text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1] + "…"
        assert c["snippet"] == expected


def test_decline_without_calling_the_llm(client: TestClient) -> None:
    body = client.post("/v1/ask", json={"question": OFF_TOPIC}).json()
    assert body["declined"] and body["citations"] == []
    assert body["answer"] == "I don't know based on the provided documents."
    assert body["usage"]["completion_tokens"] == 0 and body["timings_ms"]["generate"] == 0.0
    # (Chinese declines are not checked here: the test profile's MiniLM is English-only and
    # rates Chinese questions close to everything; the default profile's e5 separates them.)


def test_stream_delivers_tokens_then_the_final_object(client: TestClient) -> None:
    with client.stream("POST", "/v1/ask", json={"question": ANSWERABLE, "stream": True}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = [
            (block.split("\n")[0].removeprefix("event: "), json.loads(block.split("\n")[1][6:]))
            for block in r.read().decode().split("\n\n")
            if block.strip()
        ]
    kinds = [k for k, _ in events]
    assert kinds[-1] == "final" and kinds.count("final") == 1
    tokens = [d["text"] for k, d in events if k == "token"]
    assert len(tokens) >= 2
    final = events[-1][1]
    assert not final["degraded"] and not final["declined"]
    assert "".join(tokens).strip()[:20] in final["answer"]


@dataclass
class FollowUps:
    client: TestClient
    generator: FakeGenerator
    replies: list[str]  # what the generator says next, in order
    yes: list[float]  # the answerability check's P(yes), yes[0]


@pytest.fixture(scope="module")
def follow_up_client(
    tmp_path_factory: pytest.TempPathFactory, test_models: ModelCache
) -> Iterator[FollowUps]:
    """The real routes, embedder, Chroma and BM25 over the runbook; a scripted generator, so
    what the rewrite step does with the model's reply is all that is tested."""
    replies: list[str] = []
    yes = [0.9]
    generator = FakeGenerator(
        lambda _: replies.pop(0) if replies else "ok [1]", judge=lambda _: yes[0]
    )
    settings = _settings(tmp_path_factory.mktemp("follow-up"), answerable_floor=0.3)

    def backend(s: Settings) -> Services:
        services = Services.build_for_serving(s, generator=generator)
        services.ingestor("docs").ingest([EXAMPLES / "orbit-runbook.md"])
        return services

    with TestClient(create_app(settings, backend)) as c:
        _ready(c)
        yield FollowUps(c, generator, replies, yes)


HISTORY = [
    {"role": "user", "content": "What port does orbit-agent use?"},
    {"role": "assistant", "content": "orbit-agent uses port 7070. [1]"},
]


def test_follow_up_is_answered_with_the_model_rewrite_as_its_query(
    follow_up_client: FollowUps,
) -> None:
    client, generator = follow_up_client.client, follow_up_client.generator
    follow_up_client.replies[:] = ["Who owns orbit-agent?", "Lin Wei owns it [1]."]
    calls = len(generator.calls)
    body = client.post(
        "/v1/ask", json={"question": "And who owns it?", "history": HISTORY, "top_k": 3}
    ).json()
    assert body["query"] == "Who owns orbit-agent?"  # the rewrite alone: no turn appended
    rewrite, answer = generator.calls[calls:]
    assert "Last question: And who owns it?" in rewrite[-1]["content"]
    assert "user: What port does orbit-agent use?" in rewrite[-1]["content"]
    # The answer prompt carries the rewrite: "it" alone left the model guessing which row.
    assert "Question: Who owns orbit-agent?" in answer[-1]["content"]
    assert "Lin Wei" in answer[-1]["content"]  # retrieval found the owners' table
    assert body["answer"] == "Lin Wei owns it [1]."
    # The rewrite had a third of DOCQA_GENERATION_TIMEOUT_S (900 s here), not a fixed 20 s.
    rewrite_deadline = generator.deadlines[calls]
    assert rewrite_deadline is not None
    assert 250 < rewrite_deadline - time.monotonic() <= 300


def test_follow_up_whose_rewrite_copies_the_history_gets_the_fallback(
    follow_up_client: FollowUps,
) -> None:
    client = follow_up_client.client
    follow_up_client.replies[:] = ["What port does orbit-agent use?", "Lin Wei [1]."]
    body = client.post(
        "/v1/ask", json={"question": "And who owns it?", "history": HISTORY, "top_k": 3}
    ).json()
    assert body["query"] == "And who owns it? (What port does orbit-agent use?)"


def test_follow_up_whose_rewrite_fails_still_gets_an_answer(
    follow_up_client: FollowUps,
) -> None:
    client, generator = follow_up_client.client, follow_up_client.generator
    generator.fail_with = RuntimeError("rewrite exploded")
    try:
        response = client.post(
            "/v1/ask", json={"question": "And who owns it?", "history": HISTORY, "top_k": 3}
        )
    finally:
        generator.fail_with = None
    assert response.status_code == 200
    body = response.json()
    assert body["query"] == "And who owns it? (What port does orbit-agent use?)"
    assert body["degraded"]  # the answer's generation failed too: an extractive answer


def test_an_unanswerable_question_is_declined_without_generating(
    follow_up_client: FollowUps,
) -> None:
    client, generator = follow_up_client.client, follow_up_client.generator
    follow_up_client.yes[0] = 0.05
    calls, judged = len(generator.calls), len(generator.judged)
    try:
        body = client.post("/v1/ask", json={"question": "Who owns orbit-agent?"}).json()
    finally:
        follow_up_client.yes[0] = 0.9
    assert body["declined"] and body["answerable"] == 0.05
    assert len(generator.calls) == calls and len(generator.judged) == judged + 1
    assert "answerable" in body["timings_ms"]
    follow_up_client.replies[:] = ["Lin Wei owns it [1]."]
    answered = client.post("/v1/ask", json={"question": "Who owns orbit-agent?"}).json()
    assert not answered["declined"] and answered["answerable"] == 0.9
    # The response says what its confidence combined: a decline its retrieval evidence only.
    assert set(answered["confidence_parts"]) == {"retrieval", "support", "certainty", "coverage"}
    assert answered["confidence_parts"]["support"] is not None
    # "orbit" and "agent" are in the top passage, "owns" is not (its table says "Owner")
    assert answered["confidence_parts"]["coverage"] == pytest.approx(2 / 3, abs=1e-4)
    assert body["confidence_parts"]["support"] is None
    assert body["confidence_parts"]["coverage"] is None
    assert body["confidence"] == pytest.approx(
        0.4 * body["confidence_parts"]["retrieval"], abs=1e-3
    )


def test_batch_and_chat_completions(client: TestClient) -> None:
    batch = client.post(
        "/v1/ask/batch", json={"questions": [{"question": ANSWERABLE}, {"question": OFF_TOPIC}]}
    )
    assert batch.status_code == 200
    answers = batch.json()["answers"]
    assert [a["declined"] for a in answers] == [False, True]
    too_many = client.post("/v1/ask/batch", json={"questions": [{"question": "q"}] * 100})
    assert too_many.status_code == 422 and "batch limit" in too_many.json()["error"]["message"]
    chat = client.post(
        "/v1/chat/completions",
        json={
            "model": "any",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": OFF_TOPIC},
            ],
        },
    )
    assert chat.status_code == 200
    msg = chat.json()["choices"][0]["message"]
    assert msg["role"] == "assistant" and "I don't know" in msg["content"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"question": "x" * 2001}, "over the limit of 2000"),
        ({"question": "   "}, "empty"),
        ({"question": "x", "top_k": 51}, "top_k"),
        ({"question": "x", "history": [{"role": "robot", "content": "hi"}]}, "role"),
    ],
)
def test_ask_input_limits(client: TestClient, body: dict[str, object], needle: str) -> None:
    r = client.post("/v1/ask", json=body)
    assert r.status_code == 422 and needle in r.json()["error"]["message"]
    assert client.post("/v1/ask", json={"question": "x", "collection": "absent"}).status_code == 404


def _outcome(body: dict[str, object]) -> str:
    """The `outcome` label an answer is counted under."""
    if body["declined"]:
        return "declined"
    if body["degraded"]:
        return "degraded"
    return "low_confidence" if body["low_confidence"] else "answered"


def test_answer_metrics_move(client: TestClient) -> None:
    """Two answers move every answer metric by exactly what the two answers were."""

    def scrape() -> dict[str, float]:
        out: dict[str, float] = {}
        for family in text_string_to_metric_families(client.get("/metrics").text):
            for s in family.samples:
                out[s.name + json.dumps(s.labels, sort_keys=True)] = s.value
        return out

    def answers_so_far(metrics: dict[str, float]) -> float:
        """Answers the monitor has recorded: every outcome but a cancelled one."""
        prefix = "docqa_answers_total"
        return sum(v for k, v in metrics.items() if k.startswith(prefix) and "cancelled" not in k)

    before = scrape()
    bodies = [client.post("/v1/ask", json={"question": q}).json() for q in (OFF_TOPIC, ANSWERABLE)]
    after = scrape()

    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    declined, answered = bodies
    assert _outcome(declined) == "declined" and _outcome(answered) != "declined"
    outcomes = [_outcome(b) for b in bodies]
    for outcome in ("answered", "low_confidence", "declined", "degraded"):
        label = f'docqa_answers_total{{"outcome": "{outcome}"}}'
        assert delta(label) == outcomes.count(outcome), outcome
    tokens = sum(b["usage"]["completion_tokens"] for b in bodies)
    assert declined["usage"]["completion_tokens"] == 0 and tokens > 0
    assert delta("docqa_generated_tokens_total{}") == tokens
    assert delta("docqa_answer_confidence_count{}") == 2
    assert delta("docqa_answer_confidence_sum{}") == pytest.approx(
        sum(b["confidence"] for b in bodies), abs=1e-6
    )
    for stage in ("embed", "retrieve", "rerank", "generate", "total"):
        assert delta(f'docqa_stage_latency_seconds_count{{"stage": "{stage}"}}') == 2, stage
    generated_s = answered["timings_ms"]["generate"] / 1000.0  # the decline's generate is 0.0
    assert delta('docqa_stage_latency_seconds_sum{"stage": "generate"}') == pytest.approx(
        generated_s,
        abs=1e-5,  # timings_ms are rounded to 0.01 ms
    )
    assert delta("docqa_retrieval_top_score_count{}") == 2
    assert delta('docqa_requests_total{"endpoint": "/v1/ask", "status": "200"}') == 2
    ttft = "docqa_time_to_first_token_seconds_count{}"
    assert delta(ttft) == 1  # the declined one generated nothing
    # The ratio is over every answer this service gave (fewer than the monitor's window of 200).
    seen = answers_so_far(before)
    lows_before = before["docqa_low_confidence_ratio{}"] * seen
    lows = sum(bool(b["low_confidence"]) for b in bodies)
    assert answers_so_far(after) == seen + 2
    assert after["docqa_low_confidence_ratio{}"] == pytest.approx((lows_before + lows) / (seen + 2))
    assert after["docqa_queue_depth{}"] == 0  # both generations are done and out of the queue
    assert after["docqa_query_drift_pvalue{}"] == 1.0  # under 200 scores: no reference yet
    info = [k for k in after if k.startswith("docqa_model_info")]
    assert info and "smollm2-135m-instruct" in info[0] and '"engine": "llamacpp"' in info[0]
