"""The UI's event handlers without a browser: what an ask, a source pick, an upload or a refresh
puts on screen, with the API answered by httpx's MockTransport or not reachable at all."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import gradio as gr
import httpx

from tests.ui.jobs import REPORT, JobApi, job_json
from ui.callbacks import Callbacks
from ui.client import DocqaClient
from ui.conversation import Exchange

ANSWER = {
    "answer": "Keys rotate every 90 days [1].",
    "citations": [
        {
            "n": 1,
            "chunk_id": "c1",
            "source": "security-policy.pdf",
            "title": "Security Policy",
            "page": 2,
            "snippet": "Access.\n\nAll API keys are rotated every 90 days.",
            "score": 0.03,
        }
    ],
    "confidence": 0.8,
    "low_confidence": False,
    "declined": False,
    "degraded": False,
    "timings_ms": {},
    "model": {"generator": "g", "quantization": "none", "embedder": "e"},
    "usage": {"prompt_tokens": 1, "completion_tokens": 1},
    "query": "How often do keys rotate?",
}


def streaming_api(seen: list[httpx.Request]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/v1/collections":
            return httpx.Response(
                200, json={"collections": [{"name": "docs", "chunks": 9, "documents": 2}]}
            )
        if request.url.path.endswith("/documents"):
            return httpx.Response(
                415,
                json={"error": {"code": "unsupported_media_type", "message": "use .md or .pdf"}},
            )
        body = "".join(
            f"event: {e}\ndata: {json.dumps(d)}\n\n"
            for e, d in [("token", {"text": "Keys "}), ("token", {"text": "rotate"})]
        )
        body += f"event: final\ndata: {json.dumps(ANSWER)}\n\n"
        return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})

    return httpx.MockTransport(handler)


def run_ask(cb: Callbacks, question: str, exchanges: list[Exchange]) -> list[tuple[Any, ...]]:
    async def go() -> list[tuple[Any, ...]]:
        return [out async for out in cb.ask(question, exchanges, "docs", 4)]

    return asyncio.run(go())


def run_upload(cb: Callbacks, path: str | None, collection: str) -> list[tuple[Any, ...]]:
    async def go() -> list[tuple[Any, ...]]:
        return [out async for out in cb.upload(path, collection)]

    return asyncio.run(go())


def test_ask_streams_then_lists_sources_and_opens_one() -> None:
    seen: list[httpx.Request] = []
    client = DocqaClient("http://127.0.0.1:9", transport=streaming_api(seen))
    cb = Callbacks(client, "docs")
    earlier = Exchange("Who owns Orbit?", answer=None, error="busy")
    outs = run_ask(cb, "  How often do keys rotate?  ", [earlier])
    assert len(outs) == 4  # placeholder, two tokens, final
    chat, exchanges, box, radio, panel, shown = outs[0]
    assert box == "" and "Searching" in chat[-1]["content"] and "Pick a numbered" in panel
    assert outs[2][0][-1]["content"].startswith("Keys rotate ▌")
    chat, exchanges, _, radio, _, shown = outs[-1]
    assert "docqa-badge" in chat[-1]["content"] and exchanges[-1].answer is not None
    assert isinstance(radio, gr.Radio) and radio.choices == [("[1] Security Policy · p. 2", "1")]
    assert shown == 1
    sent = json.loads(seen[0].content)
    assert sent["question"] == "How often do keys rotate?" and sent["top_k"] == 4
    assert "history" not in sent  # the failed earlier exchange is not history

    html = cb.show_source("1", exchanges, shown)
    assert "security-policy.pdf" in html and "<mark>All API keys are rotated" in html
    assert "Pick a numbered" in cb.show_source(None, exchanges, shown)
    assert "Pick a numbered" in cb.show_source("7", exchanges, shown)

    # A follow-up sends the answered exchange as history.
    run_ask(cb, "And who rotates them?", exchanges)
    history = json.loads(seen[-1].content)["history"]
    assert history == [
        {"role": "user", "content": "How often do keys rotate?"},
        {"role": "assistant", "content": ANSWER["answer"]},
    ]

    # Clicking a chat message lists that exchange's sources.
    radio, panel, index = cb.pick_exchange(
        exchanges, gr.SelectData(None, {"index": 3, "value": ""})
    )
    assert index == 1 and isinstance(radio, gr.Radio) and radio.choices
    radio, panel, index = cb.pick_exchange(
        exchanges, gr.SelectData(None, {"index": 1, "value": ""})
    )
    assert index is None and isinstance(radio, gr.Radio) and radio.choices == []


def test_unreachable_server_is_a_sentence_in_the_chat_and_beside_the_controls(
    tmp_path: Path,
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cb = Callbacks(DocqaClient(f"http://127.0.0.1:{port}", timeout_s=5), "docs")
    chat, exchanges, *_ = run_ask(cb, "还在吗？", [])[-1]
    assert "Cannot reach the docqa server" in chat[-1]["content"]
    assert "docqa-error" in chat[-1]["content"] and "Traceback" not in chat[-1]["content"]
    assert exchanges[-1].answer is None
    _, note = asyncio.run(cb.collections(None))
    assert "Cannot reach" in note
    path = tmp_path / "手册.md"
    path.write_text("# 手册\n", encoding="utf-8")
    report, *_ = run_upload(cb, str(path), "docs")[-1]
    assert "Cannot reach" in report


def test_refused_upload_and_collections_refresh(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []
    cb = Callbacks(DocqaClient("http://127.0.0.1:9", transport=streaming_api(seen)), "docs")
    path = tmp_path / "tool.exe"
    path.write_bytes(b"MZ")
    (report, picker, note, file_box), *more = run_upload(cb, str(path), "  ")
    assert more == []
    assert "File type not accepted: use .md or .pdf" in report and file_box is None
    assert seen[-1].url.path == "/v1/collections/docs/documents"  # blank picks the default
    picker, note = asyncio.run(cb.collections("handbook"))
    assert isinstance(picker, gr.Dropdown) and note == ""
    assert picker.choices == [
        ("docs (2 documents, 9 chunks)", "docs"),
        ("handbook (new)", "handbook"),
    ]


def test_an_empty_server_gets_a_hint_not_an_error() -> None:
    empty = httpx.MockTransport(lambda r: httpx.Response(200, json={"collections": []}))
    cb = Callbacks(DocqaClient("http://127.0.0.1:9", transport=empty), "docs")
    picker, note = asyncio.run(cb.collections(None))
    assert "No collections yet" in note and "docqa-error" not in note
    assert isinstance(picker, gr.Dropdown) and picker.choices == [("docs (new)", "docs")]


def test_unexpected_failures_are_logged_not_shown(caplog: Any) -> None:
    class Broken(DocqaClient):
        async def collections(self) -> Any:
            raise RuntimeError("secret internals")

    cb = Callbacks(Broken("http://127.0.0.1:9"), "docs")
    _, note = asyncio.run(cb.collections("docs"))
    assert "Something went wrong in the chat UI (RuntimeError)" in note
    assert "secret internals" not in note and "secret internals" in caplog.text


def upload_through(
    tmp_path: Path, api: JobApi, name: str = "值班手册.md", **kw: float
) -> list[tuple[Any, ...]]:
    path = tmp_path / name
    path.write_text("# 值班\n\n每周一交接。\n", encoding="utf-8")
    cb = Callbacks(DocqaClient("http://127.0.0.1:9", transport=api.transport), "docs", **kw)
    return run_upload(cb, str(path), "docs")


def test_an_upload_shows_its_jobs_progress_then_its_report(tmp_path: Path) -> None:
    api = JobApi(
        [
            job_json(),
            job_json(),
            job_json("running", "embedding", 1, 3),
            job_json("running", "embedding", 1, 3),
            job_json("done", report=REPORT),
        ]
    )
    outs = upload_through(tmp_path, api, poll_s=0.001)
    reports = [out[0] for out in outs]
    assert len(outs) == 3, reports  # queued, embedding 1/3, the report: no repeats
    assert "值班手册.md: queued" in reports[0] and "docqa-report-running" in reports[0]
    assert "值班手册.md: embedding 1/3 chunks" in reports[1]
    assert "docqa-report-ok" in reports[2] and "值班手册.md added to docs" in reports[2]
    assert "3 chunks added" in reports[2]
    skip = gr.skip()
    assert all(out[1:] == (skip, skip, skip) for out in outs[:-1])  # the file stays meanwhile
    _, picker, note, file_box = outs[-1]
    assert isinstance(picker, gr.Dropdown) and picker.value == "docs" and note == ""
    assert file_box is None
    assert [r.url.path for r in api.seen].count("/v1/jobs/job-1") == 4


def test_a_failed_job_shows_its_error(tmp_path: Path) -> None:
    lost = "worker lost: no heartbeat after 3 attempts"
    api = JobApi([job_json(), job_json("running"), job_json("failed", attempts=3, error=lost)])
    outs = upload_through(tmp_path, api, poll_s=0.001)
    assert "值班手册.md: parsing" in outs[1][0]
    report = outs[-1][0]
    assert "docqa-report-failed" in report and f"could not be ingested: {lost}" in report
    assert "job-1" in report

    bad = {**REPORT, "files_new": 0, "files_failed": 1, "chunks_added": 0}
    bad["failures"] = [{"path": "scan.pdf", "error": "PDF has no text layer (scanned?)"}]
    error = "scan.pdf could not be ingested: PDF has no text layer (scanned?)"
    api = JobApi([job_json(), job_json("failed", error=error, report=bad)])
    report = upload_through(tmp_path, api, "scan.pdf", poll_s=0.001)[-1][0]
    assert "docqa-report-failed" in report
    assert "scan.pdf could not be ingested: PDF has no text layer (scanned?)" in report


def test_a_job_unfinished_past_the_limit_says_it_is_still_running(tmp_path: Path) -> None:
    running = job_json("running", "embedding", 120, 300, job_id="job-7")
    api = JobApi([job_json(job_id="job-7"), running])
    outs = upload_through(tmp_path, api, poll_s=0.01, job_limit_s=0.3)
    assert "embedding 120/300 chunks" in outs[1][0]
    report, picker, note, file_box = outs[-1]
    assert "still running" in report and "job-7" in report and "docqa-error" not in report
    assert picker == note == gr.skip() and file_box is None
    assert api.polls > 3  # it kept asking until the limit, then stopped

    api = JobApi([job_json(job_id="job-8")])
    api.states.append({"bogus": True})  # a poll answered with something that is not a job
    report = upload_through(tmp_path, api, poll_s=0.001)[-1][0]
    assert "docqa-error" in report and "not docqa&#x27;s" in report and "job job-8" in report
