"""Embedders: the real sentence-transformers one, and a deterministic fake for unit tests.

The real embedder adds the model's own query and passage prefixes (e5 wants ``query: `` and
``passage: ``), normalizes vectors, runs in fp16 on CUDA, and halves its batch on a CUDA
out-of-memory error instead of failing the ingest.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from index.hardware import pick_device
from index.prefixed import PrefixedEmbedder
from index.protocols import Vectors

log = logging.getLogger(__name__)


class SentenceTransformerEmbedder(PrefixedEmbedder):
    def __init__(
        self,
        path: Path | str,
        model_id: str,
        query_prefix: str = "",
        passage_prefix: str = "",
        device: str = "auto",
        batch_size: int = 32,
    ) -> None:
        self.path = str(path)
        super().__init__(model_id, query_prefix, passage_prefix)
        self.device = device
        self.batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()
        self._local = threading.local()

    def load(self) -> SentenceTransformerEmbedder:
        with self._lock:
            if self._model is None:
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # our reports only
                device = pick_device(self.device)
                model = SentenceTransformer(self.path, device=device)
                if device == "cuda":
                    model.half()
                self._model = model
                self.device = device
                log.info("embedder %s loaded on %s", self.model_id, device)
        return self

    @property
    def model(self) -> Any:
        return self.load()._model

    @property
    def dimension(self) -> int:
        dim = self.model.get_embedding_dimension()
        return int(dim)

    @property
    def max_tokens(self) -> int:
        return int(self.model.max_seq_length)

    def count_tokens(self, text: str) -> int:
        # Each thread counts with its own copy of the tokenizer: encode() sets padding and
        # truncation on the shared Rust tokenizer, and a parse thread counting at that moment
        # fails ("Unable to create tensor ...") or miscounts.
        tokenizer = getattr(self._local, "tokenizer", None)
        if tokenizer is None:
            tokenizer = copy.deepcopy(self.model.tokenizer)
            self._local.tokenizer = tokenizer
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    def _encode(self, texts: list[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        batch = self.batch_size
        while True:
            try:
                out = self.model.encode(
                    texts,
                    batch_size=batch,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
                return np.asarray(out, dtype=np.float32)
            except RuntimeError as exc:  # torch.OutOfMemoryError subclasses RuntimeError
                if "out of memory" not in str(exc).lower() or batch == 1:
                    raise
                import torch

                torch.cuda.empty_cache()
                batch = max(1, batch // 2)
                log.warning("CUDA out of memory while embedding; retrying with batch %d", batch)


class HashEmbedder:
    """A deterministic fake: bag of hashed words, normalized. Shared words mean similar vectors.

    >>> e = HashEmbedder(); float(e.embed_query("red apple") @ e.embed_documents(["apple"])[0]) > 0
    True
    """

    def __init__(self, dimension: int = 64, model_id: str = "hash-embedder") -> None:
        self._dimension = dimension
        self._model_id = model_id
        self.calls = 0  # texts embedded, so tests can see what the cache saved

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dimension(self) -> int:
        return self._dimension

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def _vector(self, text: str) -> Vectors:
        vec = np.zeros(self._dimension, dtype=np.float32)
        for word in text.lower().split():
            digest = hashlib.sha256(word.encode()).digest()
            vec[int.from_bytes(digest[:4], "little") % self._dimension] += 1.0
        norm = float(np.linalg.norm(vec))
        if norm == 0.0:
            vec[0] = 1.0
            return vec
        return vec / norm

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        return self.embed_raw(texts)

    def embed_query(self, text: str) -> Vectors:
        return self._vector(text)

    def embed_raw(self, texts: Sequence[str]) -> Vectors:
        self.calls += len(texts)
        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        return np.stack([self._vector(t) for t in texts])
