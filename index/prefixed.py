"""What every real embedder does around its model: the model's own query and passage prefixes.

e5 wants ``query: `` before a question and ``passage: `` before a document; other models want
nothing. ``embed_raw`` takes texts already prefixed, because the embedding cache keys on exactly
what the model sees. A backend (torch, ONNX Runtime) only supplies ``_encode``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from index.protocols import Vectors


class PrefixedEmbedder(ABC):
    def __init__(self, model_id: str, query_prefix: str = "", passage_prefix: str = "") -> None:
        self._model_id = model_id
        self.query_prefix = query_prefix
        self.passage_prefix = passage_prefix

    @property
    def model_id(self) -> str:
        return self._model_id

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        return self._encode([self.passage_prefix + t for t in texts])

    def embed_query(self, text: str) -> Vectors:
        return np.asarray(self._encode([self.query_prefix + text])[0], dtype=np.float32)

    def embed_raw(self, texts: Sequence[str]) -> Vectors:
        """Texts already prefixed (the embedding cache keys on exactly what the model sees)."""
        return self._encode(list(texts))

    @abstractmethod
    def _encode(self, texts: list[str]) -> Vectors:
        """Unit-length vectors, one row per text, in order."""
