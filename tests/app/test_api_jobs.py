"""Uploads are ingest jobs (the service on fakes): 202 and a job to poll, ``?wait=true`` for the
synchronous answer, API-only hosts (``DOCQA_WORKER=false``) that leave jobs to a worker."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from app.generation.fake import FakeGenerator
from app.main import create_app
from ingest.worker import JobWorker
from tests.app.fake_backend import fake_backend, fake_settings, wait_ready

DOCS: dict[str, str] = {}  # make_client uploads nothing; each test uploads its own
RUNBOOK = b"# Runbook\n\norbit-agent listens on port 7070. Lin Wei owns orbit-agent.\n"


def _poll(client: TestClient, job_id: str, seconds: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in ("done", "failed"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


def test_an_upload_is_a_job_the_worker_runs(make_client: Callable[..., TestClient]) -> None:
    client = make_client(FakeGenerator())
    r = client.post("/v1/collections/docs/documents", files={"file": ("runbook.md", RUNBOOK)})
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert (job["collection"], job["source"], job["size"]) == ("docs", "runbook.md", len(RUNBOOK))
    assert job["state"] in ("queued", "running", "done")
    done = _poll(client, job["id"])
    assert (done["state"], done["attempts"], done["error"]) == ("done", 1, None)
    assert done["progress"]["stage"] == "done"
    assert done["report"]["files_new"] == 1 and done["report"]["chunks_added"] >= 1
    assert done["started_at"] >= done["created_at"] and done["finished_at"] >= done["started_at"]
    docs = client.get("/v1/collections/docs/documents").json()["documents"]
    assert [d["source"] for d in docs] == ["runbook.md"]
    passages = client.post("/v1/retrieve", json={"question": "orbit-agent port"}).json()
    assert passages["passages"][0]["source"] == "runbook.md"
    listed = client.get("/v1/jobs", params={"collection": "docs"}).json()["jobs"]
    assert [j["id"] for j in listed] == [job["id"]]
    assert client.get("/v1/jobs", params={"collection": "other"}).json() == {"jobs": []}
    assert client.get("/v1/jobs", params={"state": "failed"}).json() == {"jobs": []}
    metrics = client.get("/metrics").text
    assert 'docqa_ingest_jobs{state="done"} 1.0' in metrics
    assert 'docqa_ingest_jobs{state="queued"} 0.0' in metrics


def test_a_bad_file_is_a_failed_job_with_its_reason(make_client: Callable[..., TestClient]) -> None:
    client = make_client(FakeGenerator())
    r = client.post("/v1/collections/docs/documents", files={"file": ("bad.pdf", b"%PDF-1 junk")})
    assert r.status_code == 202, r.text
    failed = _poll(client, r.json()["id"])
    assert failed["state"] == "failed" and failed["error"].startswith("bad.pdf could not")
    assert failed["report"]["files_failed"] == 1
    assert (
        client.get("/v1/jobs", params={"state": "failed"}).json()["jobs"][0]["id"] == failed["id"]
    )


def test_unknown_jobs_and_bad_queries_are_4xx(make_client: Callable[..., TestClient]) -> None:
    client = make_client(FakeGenerator())
    r = client.get("/v1/jobs/nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert client.get("/v1/jobs", params={"state": "sleeping"}).status_code == 422
    assert client.get("/v1/jobs", params={"limit": 0}).status_code == 422
    assert client.get("/v1/jobs", params={"collection": "a"}).status_code == 422


def test_an_api_only_host_queues_and_a_worker_elsewhere_runs_the_job(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(FakeGenerator(), worker=False, request_timeout_s=0.5)
    started = time.monotonic()
    r = client.post(
        "/v1/collections/docs/documents?wait=true", files={"file": ("runbook.md", RUNBOOK)}
    )
    # Nobody runs jobs here: after the request's time limit, the job as it stands.
    assert r.status_code == 202 and r.json()["state"] == "queued", r.text
    assert time.monotonic() - started >= 0.5
    again = client.post("/v1/collections/docs/documents", files={"file": ("runbook.md", RUNBOOK)})
    assert again.json()["id"] == r.json()["id"]  # the same upload while unfinished: one job
    backend = client.app.state.docqa.backend  # type: ignore[attr-defined]
    worker = JobWorker(backend.jobs, backend.ingestor, backend.manifest, name="elsewhere")
    assert worker.run_once()
    done = client.get(f"/v1/jobs/{r.json()['id']}").json()
    assert (done["state"], done["report"]["files_new"]) == ("done", 1)


def test_queued_jobs_survive_a_restart_and_run_when_a_worker_starts(tmp_path: Path) -> None:
    settings = fake_settings(tmp_path, worker=False)
    with TestClient(create_app(settings, fake_backend(FakeGenerator()))) as first:
        wait_ready(first)
        r = first.post("/v1/collections/docs/documents", files={"file": ("runbook.md", RUNBOOK)})
        assert r.status_code == 202 and r.json()["state"] == "queued"
    # The same data dir, now with the in-process worker: the job left queued runs.
    restarted = settings.model_copy(update={"worker": True})
    with TestClient(create_app(restarted, fake_backend(FakeGenerator()))) as second:
        wait_ready(second)
        done = _poll(second, r.json()["id"])
        assert (done["state"], done["report"]["files_new"]) == ("done", 1)
