"""Collection lookups shared by routes: the default name, and 404 for unknown collections."""

from __future__ import annotations

from app.backend import Backend
from app.errors import NotFoundError
from index.chroma_store import validate_collection_name


def existing_collection(backend: Backend, name: str | None) -> str:
    chosen = validate_collection_name(name or backend.settings.collection)
    if chosen not in backend.collections():
        raise NotFoundError(f"collection {chosen!r} does not exist; ingest documents into it first")
    return chosen
