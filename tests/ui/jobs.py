"""Ingest jobs as ``GET /v1/jobs/{id}`` answers them, and an API that runs one job through a
scripted series of states, for the UI's fast tests (httpx's MockTransport, no server)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpx

REPORT: dict[str, Any] = {
    "files_new": 1,
    "files_changed": 0,
    "files_unchanged": 0,
    "files_failed": 0,
    "failures": [],
    "chunks_added": 3,
    "chunks_removed": 0,
    "cache_hits": 0,
    "cache_misses": 3,
    "seconds": 0.4,
}


def job_json(
    state: str = "queued",
    stage: str | None = None,
    done: int = 0,
    total: int = 0,
    *,
    job_id: str = "job-1",
    source: str = "a.md",
    attempts: int | None = None,
    error: str | None = None,
    report: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A job's JSON; ``stage`` defaults to the state's (``queued``, ``parsing``, ``done``...)."""
    default_stage = {"queued": "queued", "running": "parsing"}.get(state, state)
    return {
        "id": job_id,
        "collection": "docs",
        "source": source,
        "state": state,
        "attempts": (0 if state == "queued" else 1) if attempts is None else attempts,
        "max_attempts": 3,
        "progress": {"stage": stage or default_stage, "chunks_done": done, "chunks_total": total},
        "size": 42,
        "created_at": 1.0,
        "started_at": None if state == "queued" else 2.0,
        "finished_at": 3.0 if state in ("done", "failed") else None,
        "error": error,
        "report": report,
    }


class JobApi:
    """Answers an upload with the first of ``states`` (a 202) and each ``GET /v1/jobs/{id}``
    with the next one, repeating the last; collections with one ``docs``. ``seen`` keeps the
    requests."""

    def __init__(self, states: Iterable[dict[str, Any]]) -> None:
        self.states = list(states)
        self.seen: list[httpx.Request] = []
        self.polls = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        path = request.url.path
        if path == "/v1/collections":
            cols = [{"name": "docs", "chunks": 3, "documents": 1}]
            return httpx.Response(200, json={"collections": cols})
        if path.endswith("/documents") and request.method == "POST":
            first = self.states[0]
            headers = {"Location": f"/v1/jobs/{first['id']}"}
            return httpx.Response(202, json=first, headers=headers)
        job_id = path.removeprefix("/v1/jobs/")
        if job_id == self.states[0]["id"]:
            self.polls += 1
            return httpx.Response(200, json=self.states[min(self.polls, len(self.states) - 1)])
        message = f"no ingest job {job_id!r}" if path.startswith("/v1/jobs/") else path
        return httpx.Response(404, json={"error": {"code": "not_found", "message": message}})

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)
