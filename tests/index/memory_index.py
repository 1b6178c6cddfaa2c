"""An in-memory ``VectorIndex`` for unit tests: exact cosine search over a dict.

It honours the protocol as Chroma does (upsert by id, the last of a repeated id wins, unknown
ids ignored on delete, ``get`` in the order asked, equality filters on ``source`` and ``doc_id``
where a list means "any of"), and the contract suite in test_vector_index_contract.py runs
against it and Chroma alike.

>>> import numpy as np; from index.types import Chunk
>>> index = MemoryVectorIndex(2); c = Chunk("c1", "hi", "d1", "a.md", "a.md", 0, 0, 2)
>>> index.upsert([c], np.array([[1.0, 0.0]], dtype=np.float32)); index.count()
1
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from index.protocols import Filters, Vectors
from index.types import Chunk, Hit

_FILTERABLE = ("source", "doc_id")


class MemoryVectorIndex:
    def __init__(self, dimension: int) -> None:
        self.dimension = dimension
        self._rows: dict[str, tuple[Chunk, Vectors]] = {}

    def upsert(self, chunks: Sequence[Chunk], vectors: Vectors) -> None:
        matrix = np.asarray(vectors, dtype=np.float32)
        if matrix.shape != (len(chunks), self.dimension):
            raise ValueError(f"expected {len(chunks)} vectors of dimension {self.dimension}")
        for chunk, vector in zip(chunks, matrix, strict=True):
            self._rows[chunk.id] = (chunk, vector / np.linalg.norm(vector))

    def delete(self, ids: Sequence[str]) -> None:
        for chunk_id in ids:
            self._rows.pop(chunk_id, None)

    def get(self, ids: Sequence[str]) -> list[Chunk]:
        return [self._rows[i][0] for i in dict.fromkeys(ids) if i in self._rows]

    def search(self, vector: Vectors, k: int, filters: Filters | None = None) -> list[Hit]:
        query = np.asarray(vector, dtype=np.float32)
        if query.shape != (self.dimension,):
            raise ValueError(f"expected a query of dimension {self.dimension}")
        query = query / np.linalg.norm(query)
        scored = [
            (float(row @ query), chunk)
            for chunk, row in self._rows.values()
            if _matches(chunk, filters)
        ]
        scored.sort(key=lambda pair: -pair[0])
        return [Hit(chunk, score, {"dense": score}) for score, chunk in scored[:k]]

    def ids(self, filters: Filters | None = None) -> set[str]:
        return {i for i, (chunk, _) in self._rows.items() if _matches(chunk, filters)}

    def count(self) -> int:
        return len(self._rows)


def _matches(chunk: Chunk, filters: Filters | None) -> bool:
    for key, wanted in (filters or {}).items():
        if key not in _FILTERABLE:
            raise ValueError(f"cannot filter on {key!r}")
        allowed = {wanted} if isinstance(wanted, str) else set(wanted)
        if getattr(chunk, key) not in allowed:
            return False
    return True
