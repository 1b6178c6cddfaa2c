"""The records that cross the index's seams: chunks with provenance, and scored hits."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

CHUNKER_VERSION = "1"


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def document_id(source: str) -> str:
    """A document's id derives from its source path, so a changed file keeps its id."""
    return sha256_text(f"doc\x00{source}")[:32]


def chunk_id(doc_id: str, text: str, chunk_index: int, version: str = CHUNKER_VERSION) -> str:
    """Content-derived: the same document text always gives the same ids.

    The index is part of the key so that a passage repeated within one document (a boilerplate
    disclaimer) still gives two distinct chunks.
    """
    return sha256_text(f"chunk\x00{version}\x00{doc_id}\x00{chunk_index}\x00{text}")[:32]


@dataclass(frozen=True)
class Chunk:
    """A passage of a document, with everything needed to cite it."""

    id: str
    text: str
    doc_id: str
    source: str  # the path as given to ingest, or the uploaded file name
    title: str
    chunk_index: int
    start: int  # character offsets in the document's extracted text
    end: int
    page: int | None = None  # 1-based, PDFs only
    heading_path: tuple[str, ...] = ()

    def metadata(self) -> dict[str, str | int]:
        """Flat metadata for stores that take only scalars (Chroma)."""
        meta: dict[str, str | int] = {
            "doc_id": self.doc_id,
            "source": self.source,
            "title": self.title,
            "chunk_index": self.chunk_index,
            "start": self.start,
            "end": self.end,
            "heading_path": " > ".join(self.heading_path),
        }
        if self.page is not None:
            meta["page"] = self.page
        return meta

    @classmethod
    def from_metadata(cls, chunk_id: str, text: str, meta: dict[str, Any]) -> Chunk:
        heading = str(meta.get("heading_path") or "")
        page = meta.get("page")
        return cls(
            id=chunk_id,
            text=text,
            doc_id=str(meta["doc_id"]),
            source=str(meta["source"]),
            title=str(meta.get("title", "")),
            chunk_index=int(meta["chunk_index"]),
            start=int(meta["start"]),
            end=int(meta["end"]),
            page=int(page) if page is not None else None,
            heading_path=tuple(heading.split(" > ")) if heading else (),
        )


@dataclass
class Hit:
    """A retrieved chunk with the score each stage gave it (``dense``, ``keyword``, ``rrf``...)."""

    chunk: Chunk
    score: float
    scores: dict[str, float] = field(default_factory=dict)
