"""What the service needs from the layers below, as a Protocol.

The composition root (``wiring.compose.Services``) satisfies it; the service never builds
embedders or stores itself, so tests and other front ends can hand it what they like.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from app.answering import AnswerService
from config.settings import Settings
from index.embedding_cache import CachedEmbedder
from index.protocols import VectorIndex
from index.retriever import Retriever
from ingest.jobs import JobStore
from ingest.manifest import Manifest
from ingest.pipeline import Ingestor

if TYPE_CHECKING:
    from app.ask_service import AskService


class Backend(Protocol):
    settings: Settings
    manifest: Manifest
    embedder: CachedEmbedder

    @property
    def jobs(self) -> JobStore:
        """The ingest job queue (shared by every host with DOCQA_DATABASE_URL)."""
        ...

    @property
    def answers(self) -> AnswerService: ...

    @property
    def asks(self) -> AskService:
        """The answer flow and its generation queue (built with the generator)."""
        ...

    def retriever(self, collection: str) -> Retriever: ...

    def ingestor(self, collection: str) -> Ingestor: ...

    def vectors(self, collection: str) -> VectorIndex: ...

    def collections(self) -> list[str]: ...

    def close(self) -> None: ...
