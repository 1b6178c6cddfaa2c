"""The UI's HTTP client: streamed answers, the request it sends, and every failure as a readable
message (API error shapes, an unreachable server, a broken stream, a body that is not docqa's)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.ui.jobs import REPORT, JobApi, job_json
from ui.client import DocqaClient, is_loopback
from ui.errors import UiError
from ui.sse import SseParser
from ui.types import Answer, Job

FINAL = {
    "answer": "API keys rotate every 90 days [1].",
    "citations": [
        {
            "n": 1,
            "chunk_id": "c1",
            "source": "security-policy.pdf",
            "title": "Security Policy",
            "page": 2,
            "snippet": "Keys are rotated every 90 days.",
            "score": 0.03,
        }
    ],
    "confidence": 0.81,
    "low_confidence": False,
    "declined": False,
    "degraded": False,
    "timings_ms": {"total": 12.5},
    "model": {"generator": "g", "quantization": "none", "embedder": "e"},
    "usage": {"prompt_tokens": 10, "completion_tokens": 5},
    "query": "How often do API keys rotate?",
}


def sse(event: str, data: object) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def client_for(
    handler: Callable[[httpx.Request], httpx.Response], key: str | None = "k-1"
) -> DocqaClient:
    return DocqaClient("http://127.0.0.1:9", key, transport=httpx.MockTransport(handler))


def collect(client: DocqaClient, question: str = "How often?", **kw: Any) -> list[str | Answer]:
    async def run() -> list[str | Answer]:
        return [item async for item in client.ask_stream(question, **kw)]

    return asyncio.run(run())


def error_of(call: Callable[[], object]) -> UiError:
    with pytest.raises(UiError) as info:
        call()
    return info.value


def test_stream_yields_tokens_then_the_answer_and_sends_key_history_and_options() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = sse("token", {"text": "API keys "}) + ": keep-alive\n\n"
        body += sse("token", {"text": "rotate"}) + sse("final", FINAL)
        return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})

    history = [{"role": "user", "content": f"q{i}"} for i in range(30)]
    items = collect(
        client_for(handler), "密钥多久轮换？", collection="docs", top_k=7, history=history
    )
    assert items[:2] == ["API keys ", "rotate"]
    answer = items[2]
    assert isinstance(answer, Answer) and len(items) == 3
    assert answer.citation(1) is not None and answer.citation(1).page == 2  # type: ignore[union-attr]
    request = seen[0]
    assert request.url.path == "/v1/ask"
    assert request.headers["authorization"] == "Bearer k-1"
    sent = json.loads(request.content)
    assert sent["question"] == "密钥多久轮换？" and sent["stream"] is True
    assert (sent["collection"], sent["top_k"]) == ("docs", 7)
    assert sent["history"] == history[-10:]  # the most recent turns only


def test_no_key_no_authorization_header_and_no_empty_history() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=FINAL)  # a server that ignored `stream`

    items = collect(client_for(handler, key=None))
    assert "authorization" not in seen[0].headers
    assert "history" not in json.loads(seen[0].content)
    assert isinstance(items[0], Answer) and items[0].confidence == pytest.approx(0.81)


@pytest.mark.parametrize(
    ("status", "body", "headers", "needles"),
    [
        (401, {"error": {"code": "unauthorized", "message": "missing key"}}, {}, ["API key"]),
        (
            404,
            {"error": {"code": "not_found", "message": "collection 'x' does not exist"}},
            {},
            ["Not found", "collection 'x' does not exist"],
        ),
        (
            422,
            {"error": {"code": "invalid_request", "message": "question must not be empty"}},
            {},
            ["Invalid request", "question must not be empty"],
        ),
        (
            429,
            {"error": {"code": "rate_limited", "message": "slow down"}},
            {"Retry-After": "7"},
            ["rate limit", "7 s"],
        ),
        (
            503,
            {"error": {"code": "overloaded", "message": "the server is busy; retry later"}},
            {"Retry-After": "5"},
            ["busy", "5 s"],
        ),
        (
            503,
            {"error": {"code": "not_ready", "message": "loading"}},
            {},
            ["still loading its models"],
        ),
        (502, "<html>Bad Gateway</html>", {}, ["HTTP 502", "Bad Gateway", "not a docqa"]),
    ],
)
def test_http_errors_become_readable_messages(
    status: int, body: object, headers: dict[str, str], needles: list[str]
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(body, str):
            return httpx.Response(status, text=body, headers=headers)
        return httpx.Response(status, json=body, headers=headers)

    error = error_of(lambda: collect(client_for(handler)))
    assert error.status == status
    for needle in needles:
        assert needle in str(error)
    assert "Traceback" not in str(error) and "{" not in str(error)


def test_error_event_and_truncated_stream_and_foreign_body() -> None:
    def failing(request: httpx.Request) -> httpx.Response:
        body = sse("token", {"text": "x"}) + sse(
            "error", {"error": {"code": "overloaded", "message": "the server is busy"}}
        )
        return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})

    error = error_of(lambda: collect(client_for(failing)))
    assert "The answer failed: the server is busy" in str(error) and error.code == "overloaded"

    def truncated(request: httpx.Request) -> httpx.Response:
        body = sse("token", {"text": "x"})
        return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})

    assert "ended before the final answer" in str(error_of(lambda: collect(client_for(truncated))))

    def foreign(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"hello": "world"})

    assert "not docqa's" in str(error_of(lambda: collect(client_for(foreign))))
    garbled = error_of(lambda: asyncio.run(client_for(foreign).collections()))
    assert "not docqa's" in str(garbled)


def test_unreachable_server_and_timeout_and_bad_url() -> None:
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = DocqaClient(f"http://127.0.0.1:{port}", timeout_s=5)
    error = error_of(lambda: asyncio.run(client.collections()))
    assert f"Cannot reach the docqa server at http://127.0.0.1:{port}" in str(error)
    assert error.status is None

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    timeout = error_of(lambda: collect(client_for(slow)))
    assert "did not answer within" in str(timeout)

    bad = DocqaClient("ftp://example")
    assert "not a valid http(s) URL" in str(error_of(lambda: asyncio.run(bad.collections())))


def test_collections_and_upload_with_a_chinese_file_name_return_its_job(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.method == "GET":
            cols = [{"name": "zeta", "chunks": 1, "documents": 1}]
            cols.append({"name": "docs", "chunks": 49, "documents": 5})
            return httpx.Response(200, json={"collections": cols})
        if b'name="replace"\r\n\r\nfalse' in request.content:
            message = "collection 'docs' already has a different document with source '值班手册.md'"
            return httpx.Response(409, json={"error": {"code": "conflict", "message": message}})
        return httpx.Response(202, json=job_json(source="值班手册.md"))

    client = client_for(handler)
    names = [c.name for c in asyncio.run(client.collections())]
    assert names == ["docs", "zeta"]
    path = tmp_path / "值班手册.md"
    path.write_text("# 值班\n\n每周一交接。\n", encoding="utf-8")
    job = asyncio.run(client.upload("my docs", path))
    assert (job.id, job.state, job.stage) == ("job-1", "queued", "queued")
    assert job.source == "值班手册.md"
    assert not job.finished and job.report is None
    upload = seen[-1]
    assert upload.url.raw_path == b"/v1/collections/my%20docs/documents"
    assert "值班手册.md".encode() in upload.content and "每周一交接".encode() in upload.content
    assert b'name="replace"\r\n\r\ntrue\r\n' in upload.content  # the UI's upload replaces
    missing = error_of(lambda: asyncio.run(client.upload("docs", tmp_path / "gone.md")))
    assert "Cannot read the uploaded file 'gone.md'" in str(missing)
    conflict = error_of(lambda: asyncio.run(client.upload("docs", path, replace=False)))
    assert conflict.status == 409 and "already has a different document" in str(conflict)


def follow(client: DocqaClient, job: Job, **kw: float) -> list[Job]:
    async def run() -> list[Job]:
        return [j async for j in client.follow(job, poll_s=0.001, **kw)]

    return asyncio.run(run())


def test_follow_yields_each_change_of_a_job_until_it_is_done_or_failed() -> None:
    running = job_json("running", "embedding", 1, 3)
    api = JobApi([job_json(), job_json(), running, running, job_json("done", report=REPORT)])
    client = client_for(api)
    first = Job.from_json(api.states[0])
    jobs = follow(client, first)
    assert [(j.state, j.stage, j.chunks_done, j.chunks_total) for j in jobs] == [
        ("running", "embedding", 1, 3),
        ("done", "done", 0, 0),
    ]  # unchanged polls are not repeated
    assert jobs[-1].finished and jobs[-1].report is not None and jobs[-1].report.chunks_added == 3
    assert api.polls == 4 and api.seen[-1].url.path == "/v1/jobs/job-1"
    assert api.seen[-1].headers["authorization"] == "Bearer k-1"
    assert asyncio.run(client.job("job-1")).state == "done"

    bad = {**REPORT, "files_new": 0, "files_failed": 1}
    bad["failures"] = [{"path": "scan.pdf", "error": "PDF has no text layer (scanned?)"}]
    error = "scan.pdf could not be ingested: PDF has no text layer (scanned?)"
    api = JobApi([job_json(), job_json("failed", error=error, report=bad)])
    (failed,) = follow(client_for(api), first)
    assert failed.state == "failed" and failed.error == error
    assert failed.report is not None and failed.report.failures[0].path == "scan.pdf"
    assert follow(client_for(api), failed) == []  # a finished job is not polled
    gone = error_of(lambda: asyncio.run(client_for(api).job("nope")))
    assert gone.status == 404 and "no ingest job 'nope'" in str(gone)


def test_follow_stops_at_its_limit_with_the_job_unfinished() -> None:
    api = JobApi([job_json(), job_json("running", "embedding", 1, 300)])
    client = client_for(api)
    start = time.monotonic()
    jobs = follow(client, Job.from_json(api.states[0]), limit_s=0.2)
    assert 0.2 <= time.monotonic() - start < 5
    assert [j.stage for j in jobs] == ["embedding"] and not jobs[-1].finished
    assert api.polls > 2  # kept asking until the limit


def test_a_job_body_that_is_not_docqas_is_a_readable_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={**job_json(), "state": "sleeping"})

    assert "not docqa's" in str(error_of(lambda: asyncio.run(client_for(handler).job("job-1"))))


def test_sse_parser_joins_data_lines_and_ignores_other_fields() -> None:
    parser = SseParser()
    lines = ["id: 3", "retry: 10", "event: final", "data: {", "data:}", "", ""]
    events = [e for e in (parser.feed(line) for line in lines) if e is not None]
    assert [(e.event, e.data) for e in events] == [("final", "{\n}")]
    parser.feed("data: tail")
    last = parser.close()
    assert last is not None and (last.event, last.data) == ("message", "tail")


def test_loopback_detection() -> None:
    assert is_loopback("http://localhost:8000") and is_loopback("http://[::1]:80")
    assert not is_loopback("https://docqa.example.com")
