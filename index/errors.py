"""The index layer's errors. Each carries the HTTP status the service layer should answer with.

Core code raises these; only the HTTP layer (one exception handler) and the CLI turn them into
responses or messages, so nothing here knows about FastAPI.
"""

from __future__ import annotations


class DocqaIndexError(Exception):
    """Base class for every error the index layer raises on purpose."""

    status_code: int = 500


class EmbedderMismatchError(DocqaIndexError):
    """A collection was built with another embedder or dimension than this run uses."""

    status_code = 409

    def __init__(
        self,
        collection: str,
        stored_embedder: str | None,
        stored_dimension: int | None,
        embedder: str,
        dimension: int,
    ) -> None:
        self.collection = collection
        self.stored_embedder = stored_embedder
        self.stored_dimension = stored_dimension
        self.embedder = embedder
        self.dimension = dimension
        built = (
            f"embedder {stored_embedder} (dim {stored_dimension})"
            if stored_embedder is not None
            else "an unknown embedder (no embedder recorded in its metadata)"
        )
        super().__init__(
            f"collection {collection!r} was built with {built}; this run uses {embedder} "
            f"(dim {dimension}): re-index it with "
            f"`docqa ingest --collection {collection} --reindex` or choose another collection"
        )


class StoreUnavailableError(DocqaIndexError):
    """A store cannot be reached (a Chroma server or the database down, a wrong URL)."""

    status_code = 503


class CollectionNotFoundError(DocqaIndexError):
    """The named collection does not exist (or was dropped meanwhile)."""

    status_code = 404


class InvalidCollectionNameError(DocqaIndexError):
    """A collection name the store would reject; the message says which rule it breaks."""

    status_code = 422
