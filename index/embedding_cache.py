"""A persistent embedding cache shared by every collection, and an embedder that uses it.

Keyed by (model id, sha256 of the exact text the model sees, prefix included): a text already
embedded by that model is never embedded again, whichever collection or run asks. SQLite in WAL
mode, one table; vectors stored as float32 bytes. Hits and misses are counted per process and in
totals kept in the database, for ``docqa cache stats``.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from index.protocols import Vectors
from index.types import sha256_text

_SCHEMA = """
CREATE TABLE IF NOT EXISTS embeddings (
    model_id TEXT NOT NULL, text_sha TEXT NOT NULL, dim INTEGER NOT NULL, vector BLOB NOT NULL,
    PRIMARY KEY (model_id, text_sha)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class RawEmbedder(Protocol):
    @property
    def model_id(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    query_prefix: str
    passage_prefix: str

    def embed_raw(self, texts: Sequence[str]) -> Vectors: ...

    def count_tokens(self, text: str) -> int: ...


@dataclass(frozen=True)
class CacheStats:
    entries: int
    bytes: int
    by_model: dict[str, int]
    hits: int
    misses: int

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class EmbeddingCache:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._conn = sqlite3.connect(path, check_same_thread=False, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def get_many(self, model_id: str, shas: Sequence[str]) -> dict[str, Vectors]:
        found: dict[str, Vectors] = {}
        with self._lock:
            for start in range(0, len(shas), 500):
                part = list(shas[start : start + 500])
                marks = ",".join("?" * len(part))
                rows = self._conn.execute(
                    f"SELECT text_sha, vector FROM embeddings WHERE model_id = ? "
                    f"AND text_sha IN ({marks})",
                    [model_id, *part],
                ).fetchall()
                for sha, blob in rows:
                    found[sha] = np.frombuffer(blob, dtype=np.float32).copy()
        return found

    def put_many(self, model_id: str, items: dict[str, Vectors]) -> None:
        with self._lock, self._conn:
            self._conn.executemany(
                "INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?)",
                [
                    (model_id, sha, int(v.shape[0]), np.asarray(v, np.float32).tobytes())
                    for sha, v in items.items()
                ],
            )

    def count(self, hits: int, misses: int) -> None:
        with self._lock, self._conn:
            for name, value in (("hits", hits), ("misses", misses)):
                self._conn.execute(
                    "INSERT INTO counters VALUES (?, ?) "
                    "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                    (name, value),
                )

    def stats(self) -> CacheStats:
        with self._lock:
            by_model = dict(
                self._conn.execute(
                    "SELECT model_id, COUNT(*) FROM embeddings GROUP BY model_id"
                ).fetchall()
            )
            counters = dict(self._conn.execute("SELECT name, value FROM counters").fetchall())
        size = sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*"))
        return CacheStats(
            entries=sum(by_model.values()),
            bytes=size,
            by_model=by_model,
            hits=counters.get("hits", 0),
            misses=counters.get("misses", 0),
        )

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class CachedEmbedder:
    """An Embedder that looks every text up in the cache before asking the model."""

    def __init__(self, inner: RawEmbedder, cache: EmbeddingCache) -> None:
        self.inner = inner
        self.cache = cache
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        return self._embed([self.inner.passage_prefix + t for t in texts])

    def embed_query(self, text: str) -> Vectors:
        return np.asarray(self._embed([self.inner.query_prefix + text])[0], dtype=np.float32)

    def _embed(self, texts: list[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        shas = [sha256_text(t) for t in texts]
        found = self.cache.get_many(self.model_id, shas)
        missing: dict[str, str] = {}
        for sha, text in zip(shas, texts, strict=True):
            if sha not in found:
                missing.setdefault(sha, text)  # a text repeated in one batch is embedded once
        if missing:
            vectors = self.inner.embed_raw(list(missing.values()))
            fresh = dict(zip(missing.keys(), vectors, strict=True))
            self.cache.put_many(self.model_id, fresh)
            found.update(fresh)
        hits = len(texts) - len(missing)
        with self._lock:
            self.hits += hits
            self.misses += len(missing)
        self.cache.count(hits, len(missing))
        return np.stack([found[sha] for sha in shas]).astype(np.float32, copy=False)
