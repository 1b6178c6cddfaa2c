"""Collections and their documents: list, upload (through the ingest pipeline), delete."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Form, UploadFile

from app.collections import existing_collection
from app.deps import BackendDep
from app.errors import ConflictError, DocumentRejectedError, NotFoundError
from app.schemas import (
    CollectionInfo,
    CollectionsResponse,
    DeleteResponse,
    DocumentInfo,
    DocumentsResponse,
    ErrorResponse,
    UploadFailure,
    UploadReport,
)
from app.upload_limit import file_limit_bytes
from app.uploads import KeyedLocks, check_size, check_type, safe_filename, safe_source
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


_uploading = KeyedLocks()  # per (collection, source), for this process's uploads

_UPLOAD_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": what}
    for status, what in (
        (409, "A different document already has this source; send replace=true to replace it."),
        (413, "The file is over DOCQA_MAX_FILE_MB."),
        (415, "The file type is not accepted."),
        (422, "Invalid request, or a file that could not be ingested (with `report`)."),
    )
}


@router.post("/{name}/documents", response_model=UploadReport, responses=_UPLOAD_ERRORS)
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
) -> UploadReport:
    """Ingest one uploaded file (creating the collection if needed); returns the ingest report.

    The document is known by its ``source``. Uploading the same content again changes nothing;
    different content under an existing source replaces that document only with
    ``replace=true``. A file that cannot be ingested is a 422 whose body keeps the report.
    """
    collection = validate_collection_name(name)
    filename = safe_filename(file.filename)
    check_type(filename)
    identity = safe_source(source, filename)
    limit = file_limit_bytes(backend.settings)
    with (
        _uploading.hold((collection, identity)),
        tempfile.TemporaryDirectory(prefix="docqa-upload-") as folder,
    ):
        path = Path(folder) / filename
        sha = _save(file, path, limit)
        existing = backend.manifest.get(collection, identity)
        if existing is not None and existing.content_sha != sha and not replace:
            raise ConflictError(
                f"collection {collection!r} already has a different document with source "
                f"{identity!r} (doc_id {existing.doc_id}); send replace=true to replace it, or "
                f"give this one its own `source` (for example a path such as folder/{filename})"
            )
        report = backend.ingestor(collection).ingest_file(path, source=identity)
    data = report.to_json()
    result = UploadReport(
        **{k: data[k] for k in UploadReport.model_fields if k != "failures"},
        failures=[UploadFailure(path=identity, error=f.error) for f in report.failures],
    )
    if report.files_failed:
        reasons = "; ".join(f.error for f in report.failures)
        raise DocumentRejectedError(
            f"{identity} could not be ingested: {reasons}", extra={"report": result.model_dump()}
        )
    return result


def _save(file: UploadFile, path: Path, limit: int) -> str:
    """Copy the upload to ``path``, refusing it past ``limit`` bytes; its sha256."""
    digest = hashlib.sha256()
    size = 0
    with path.open("wb") as out:
        while chunk := file.file.read(1 << 20):
            size += len(chunk)
            check_size(size, limit)
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


@router.delete("/{name}/documents/{doc_id}", response_model=DeleteResponse)
def delete_document(name: str, doc_id: str, backend: BackendDep) -> DeleteResponse:
    collection = existing_collection(backend, name)
    if backend.manifest.by_doc_id(collection, doc_id) is None:
        raise NotFoundError(f"no document {doc_id!r} in collection {collection!r}")
    removed = backend.ingestor(collection).delete_document(doc_id)
    return DeleteResponse(doc_id=doc_id, chunks_removed=removed)
