"""Collections and their documents: list, upload (an ingest job for a worker), delete."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, UploadFile
from fastapi.responses import JSONResponse

from app.collections import existing_collection
from app.deps import BackendDep
from app.errors import ConflictError, DocumentRejectedError, NotFoundError
from app.ingest_jobs import job_info, upload_report, wait_for
from app.schemas import (
    CollectionInfo,
    CollectionsResponse,
    DeleteResponse,
    DocumentInfo,
    DocumentsResponse,
    ErrorResponse,
    JobInfo,
    UploadReport,
)
from app.upload_limit import file_limit_bytes
from app.uploads import check_size, check_type, safe_filename, safe_source
from index.chroma_store import validate_collection_name

router = APIRouter(prefix="/v1/collections", tags=["documents"])


@router.get("", response_model=CollectionsResponse)
def list_collections(backend: BackendDep) -> CollectionsResponse:
    """Every collection with its chunk and document counts."""
    infos = [
        CollectionInfo(
            name=name,
            chunks=backend.vectors(name).count(),
            documents=len(backend.manifest.entries(name)),
        )
        for name in backend.collections()
    ]
    return CollectionsResponse(collections=infos)


@router.get("/{name}/documents", response_model=DocumentsResponse)
def list_documents(name: str, backend: BackendDep) -> DocumentsResponse:
    collection = existing_collection(backend, name)
    docs = [
        DocumentInfo(
            doc_id=e.doc_id, source=e.source, title=e.title, chunks=len(e.chunk_ids), size=e.size
        )
        for e in backend.manifest.entries(collection)
    ]
    return DocumentsResponse(collection=collection, documents=docs)


_UPLOAD_ERRORS: dict[int | str, dict[str, Any]] = {
    200: {"model": UploadReport, "description": "With wait=true: ingested; the ingest report."},
    **{
        status: {"model": ErrorResponse, "description": what}
        for status, what in (
            (409, "A different document already has this source; send replace=true to replace it."),
            (413, "The file is over DOCQA_MAX_FILE_MB."),
            (415, "The file type is not accepted."),
            (
                422,
                "Invalid request, or (wait=true) a file that could not be ingested, with "
                "`report` and `job`.",
            ),
        )
    },
}


@router.post("/{name}/documents", status_code=202, response_model=JobInfo, responses=_UPLOAD_ERRORS)
def upload_document(
    name: str,
    file: UploadFile,
    backend: BackendDep,
    source: Annotated[
        str | None,
        Form(
            description="The document's identity in the collection, a relative path such as "
            "`team-a/report.md`; default: the file's name."
        ),
    ] = None,
    replace: Annotated[
        bool,
        Form(description="Replace a different document of the same source; else it is a 409."),
    ] = False,
    wait: Annotated[
        bool,
        Query(
            description="Answer when the file is ingested (200 with the report, or 422), as "
            "long as DOCQA_REQUEST_TIMEOUT_S allows; after that, the 202 of the job."
        ),
    ] = False,
) -> JobInfo | JSONResponse:
    """Store one file and queue its ingest job (creating the collection when it runs): 202 with
    the job, whose progress ``GET /v1/jobs/{id}`` shows.

    The document is known by its ``source``. Uploading the same content again changes nothing
    (while its first job is unfinished, that job is returned); different content under an
    existing source replaces that document only with ``replace=true``.
    """
    collection = validate_collection_name(name)
    filename = safe_filename(file.filename)
    check_type(filename)
    identity = safe_source(source, filename)
    data, sha = _read(file, file_limit_bytes(backend.settings))
    existing = backend.manifest.get(collection, identity)
    if existing is not None and existing.content_sha != sha and not replace:
        raise ConflictError(
            f"collection {collection!r} already has a different document with source "
            f"{identity!r} (doc_id {existing.doc_id}); send replace=true to replace it, or "
            f"give this one its own `source` (for example a path such as folder/{filename})"
        )
    job = backend.jobs.submit(
        collection,
        identity,
        filename,
        data,
        sha,
        replace=replace,
        max_attempts=backend.settings.job_attempts,
    )
    if wait:
        job = wait_for(backend.jobs, job, backend.settings.request_timeout_s)
        if job.state == "done" and job.report is not None:
            return JSONResponse(upload_report(job.report).model_dump())
        if job.state == "failed":
            info = job_info(job)
            extra: dict[str, Any] = {"job": info.model_dump()}
            if info.report is not None:
                extra["report"] = info.report.model_dump()
            raise DocumentRejectedError(job.error or "the ingest job failed", extra=extra)
    return JSONResponse(
        job_info(job).model_dump(), status_code=202, headers={"Location": f"/v1/jobs/{job.id}"}
    )


def _read(file: UploadFile, limit: int) -> tuple[bytes, str]:
    """The upload's bytes (refused past ``limit``) and their sha256."""
    digest = hashlib.sha256()
    parts, size = [], 0
    while chunk := file.file.read(1 << 20):
        size += len(chunk)
        check_size(size, limit)
        digest.update(chunk)
        parts.append(chunk)
    return b"".join(parts), digest.hexdigest()


@router.delete("/{name}/documents/{doc_id}", response_model=DeleteResponse)
def delete_document(name: str, doc_id: str, backend: BackendDep) -> DeleteResponse:
    collection = existing_collection(backend, name)
    if backend.manifest.by_doc_id(collection, doc_id) is None:
        raise NotFoundError(f"no document {doc_id!r} in collection {collection!r}")
    removed = backend.ingestor(collection).delete_document(doc_id)
    return DeleteResponse(doc_id=doc_id, chunks_removed=removed)
