"""Collections and their documents: list, upload (through the ingest pipeline), delete."""

from __future__ import annotations

import tempfile
from pathlib import Path

from fastapi import APIRouter, UploadFile

from app.collections import existing_collection
from app.deps import BackendDep
from app.errors import NotFoundError
from app.schemas import (
    CollectionInfo,
    CollectionsResponse,
    DeleteResponse,
    DocumentInfo,
    DocumentsResponse,
    UploadFailure,
    UploadReport,
)
from app.uploads import check_size, check_type, safe_filename
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


@router.post("/{name}/documents", response_model=UploadReport)
def upload_document(name: str, file: UploadFile, backend: BackendDep) -> UploadReport:
    """Ingest one uploaded file (creating the collection if needed); returns the ingest report."""
    collection = validate_collection_name(name)
    filename = safe_filename(file.filename)
    check_type(filename)
    limit = int(backend.settings.max_file_mb * 1024 * 1024)
    with tempfile.TemporaryDirectory(prefix="docqa-upload-") as folder:
        path = Path(folder) / filename
        size = 0
        with path.open("wb") as out:
            while chunk := file.file.read(1 << 20):
                size += len(chunk)
                check_size(size, limit)
                out.write(chunk)
        report = backend.ingestor(collection).ingest_file(path, source=filename)
    data = report.to_json()
    return UploadReport(
        **{k: data[k] for k in UploadReport.model_fields if k != "failures"},
        failures=[UploadFailure(path=filename, error=f.error) for f in report.failures],
    )


@router.delete("/{name}/documents/{doc_id}", response_model=DeleteResponse)
def delete_document(name: str, doc_id: str, backend: BackendDep) -> DeleteResponse:
    collection = existing_collection(backend, name)
    if backend.manifest.by_doc_id(collection, doc_id) is None:
        raise NotFoundError(f"no document {doc_id!r} in collection {collection!r}")
    removed = backend.ingestor(collection).delete_document(doc_id)
    return DeleteResponse(doc_id=doc_id, chunks_removed=removed)
