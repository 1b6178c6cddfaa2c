"""Ingest jobs as the API shows them, and waiting for one (``?wait=true``)."""

from __future__ import annotations

import time
from typing import Any

from app.errors import NotFoundError
from app.schemas import JobInfo, JobProgress, UploadFailure, UploadReport
from ingest.jobs import Job, JobStore

WAIT_POLL_S = 0.1


def job_info(job: Job) -> JobInfo:
    return JobInfo(
        id=job.id,
        collection=job.collection,
        source=job.source,
        state=job.state,
        attempts=job.attempts,
        max_attempts=job.max_attempts,
        progress=JobProgress(stage=job.stage, chunks_done=job.done, chunks_total=job.total),
        size=job.size,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        worker=job.worker,
        error=job.error,
        report=None if job.report is None else upload_report(job.report),
    )


def upload_report(data: dict[str, Any]) -> UploadReport:
    """The API's report from a job's stored ingest report (``IngestReport.to_json`` with
    failures named by the upload's source)."""
    fields = {k: data[k] for k in UploadReport.model_fields if k != "failures"}
    failures = [UploadFailure.model_validate(f) for f in data.get("failures") or []]
    return UploadReport(**fields, failures=failures)


def require_job(store: JobStore, job_id: str) -> Job:
    job = store.get(job_id)
    if job is None:
        raise NotFoundError(f"no ingest job {job_id!r}")
    return job


def wait_for(store: JobStore, job: Job, timeout_s: float) -> Job:
    """The job once it has finished, or as it stands after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not job.finished and time.monotonic() < deadline:
        time.sleep(WAIT_POLL_S)
        job = require_job(store, job.id)
    return job
