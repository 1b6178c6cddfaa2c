"""The seams of the index layer. Real implementations and deterministic fakes honour these."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from index.types import Chunk, Hit

Vectors = NDArray[np.float32]
# Metadata filters: equality on `source` or `doc_id` (a list means "any of").
Filters = Mapping[str, str | Sequence[str]]


@runtime_checkable
class Embedder(Protocol):
    @property
    def model_id(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        """Normalized passage vectors, shape (len(texts), dimension)."""
        ...

    def embed_query(self, text: str) -> Vectors:
        """One normalized query vector, shape (dimension,)."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens the model would see for ``text`` (without special tokens)."""
        ...


class VectorIndex(Protocol):
    """Dense vectors with chunk text and provenance, for one collection."""

    def upsert(self, chunks: Sequence[Chunk], vectors: Vectors) -> None: ...

    def delete(self, ids: Sequence[str]) -> None: ...

    def get(self, ids: Sequence[str]) -> list[Chunk]: ...

    def search(self, vector: Vectors, k: int, filters: Filters | None = None) -> list[Hit]: ...

    def ids(self, filters: Filters | None = None) -> set[str]: ...

    def count(self) -> int: ...


class KeywordIndex(Protocol):
    """A persisted BM25 index over chunk texts, for one collection."""

    def upsert(self, chunks: Sequence[Chunk]) -> None: ...

    def delete(self, ids: Sequence[str]) -> None: ...

    def search(self, query: str, k: int, filters: Filters | None = None) -> list[Hit]: ...

    def ids(self) -> set[str]: ...

    def count(self) -> int: ...


class YesNoJudge(Protocol):
    """A chat model asked yes/no questions by the logits of its first answer token (the
    generators of ``app.generation`` satisfy it)."""

    def yes_probability(self, prompts: Sequence[list[dict[str, str]]]) -> list[float]: ...


class Reranker(Protocol):
    def rerank(self, question: str, hits: Sequence[Hit], top_k: int) -> list[Hit]: ...
