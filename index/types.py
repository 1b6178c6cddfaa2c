"""The records that cross the index's seams: chunks with provenance, and scored hits."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

# 2: table chunks carry their rows rendered (``Chunk.rendered``); budgets measure that text.
CHUNKER_VERSION = "2"


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def document_id(source: str) -> str:
    """A document's id derives from its source path, so a changed file keeps its id."""
    return sha256_text(f"doc\x00{source}")[:32]


def chunk_id(
    doc_id: str,
    text: str,
    chunk_index: int,
    version: str = CHUNKER_VERSION,
    rendered: str | None = None,
) -> str:
    """Content-derived: the same document text always gives the same ids.

    The index is part of the key so that a passage repeated within one document (a boilerplate
    disclaimer) still gives two distinct chunks. So is the rendered text when there is one: it
    is what the chunk's vector and keywords are made from.
    """
    key = f"chunk\x00{version}\x00{doc_id}\x00{chunk_index}\x00{text}"
    if rendered is not None:
        key += f"\x00rendered\x00{rendered}"
    return sha256_text(key)[:32]


@dataclass(frozen=True)
class Chunk:
    """A passage of a document, with everything needed to cite it.

    ``text`` is the document's own text (``start``/``end`` slice it): citations, snippets and
    display show it. ``rendered``, when set, is a second text derived from it for reading
    (a table's rows, each naming its columns; see ``ingest.tables``): the embedder, BM25 and
    the prompt read ``index_text``, which is ``rendered`` if there is one, else ``text``.
    ``row_lines`` says which lines of ``rendered`` are table rows (the prompt puts the rows a
    question names first).
    """

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
    rendered: str | None = None
    row_lines: tuple[tuple[int, int], ...] = ()  # [start, end) lines of ``rendered`` that are rows

    @property
    def index_text(self) -> str:
        """What is embedded, keyword-indexed and shown to the model."""
        return self.text if self.rendered is None else self.rendered

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
        if self.rendered is not None:
            meta["rendered"] = self.rendered
        if self.row_lines:
            meta["row_lines"] = ",".join(f"{a}-{b}" for a, b in self.row_lines)
        return meta

    @classmethod
    def from_metadata(cls, chunk_id: str, text: str, meta: dict[str, Any]) -> Chunk:
        heading = str(meta.get("heading_path") or "")
        page = meta.get("page")
        rendered = meta.get("rendered")
        row_lines = str(meta.get("row_lines") or "")
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
            rendered=str(rendered) if rendered is not None else None,
            row_lines=tuple(
                (int(a), int(b))
                for a, b in (span.split("-") for span in row_lines.split(",") if span)
            ),
        )


@dataclass
class Hit:
    """A retrieved chunk with the score each stage gave it (``dense``, ``keyword``, ``rrf``...)."""

    chunk: Chunk
    score: float
    scores: dict[str, float] = field(default_factory=dict)
