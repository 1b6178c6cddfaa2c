"""Ingest jobs: one job's state and progress, and a collection's recent jobs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.deps import BackendDep
from app.ingest_jobs import job_info, require_job
from app.schemas import ErrorResponse, JobInfo, JobsResponse
from index.chroma_store import validate_collection_name
from ingest.jobs import JobState

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.get("/{job_id}", response_model=JobInfo, responses={404: {"model": ErrorResponse}})
def get_job(job_id: str, backend: BackendDep) -> JobInfo:
    """A job's state, its progress while it runs, and its ingest report when it has run."""
    return job_info(require_job(backend.jobs, job_id))


@router.get("", response_model=JobsResponse)
def list_jobs(
    backend: BackendDep,
    collection: Annotated[str | None, Query(description="Only this collection's jobs.")] = None,
    state: Annotated[JobState | None, Query(description="Only jobs in this state.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many.")] = 100,
) -> JobsResponse:
    """The newest jobs first."""
    name = validate_collection_name(collection) if collection is not None else None
    jobs = backend.jobs.list(name, state, limit)
    return JobsResponse(jobs=[job_info(j) for j in jobs])
