"""The manifest of ingested files: what each source held when it was last written whole.

One row per (collection, source), written only after the file's chunks are in both indexes, so
a row always describes a finished write. A file whose content hash and chunker version match its
row is unchanged and skipped without parsing or embedding. (A manifest from before the
``chunker`` column gets it, empty, when opened: each of its files is chunked once more.)

`Manifest` is the seam; `SqliteManifest` (a file under the data dir, the default) and
``ingest.manifest_pg.PostgresManifest`` (``DOCQA_DATABASE_URL``, shared by several hosts) honour it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    collection TEXT NOT NULL, source TEXT NOT NULL, doc_id TEXT NOT NULL,
    content_sha TEXT NOT NULL, size INTEGER NOT NULL, title TEXT NOT NULL,
    chunk_ids TEXT NOT NULL, updated_at REAL NOT NULL, chunker TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (collection, source));
CREATE INDEX IF NOT EXISTS files_doc ON files (collection, doc_id);
"""
COLUMNS = "collection, source, doc_id, content_sha, size, title, chunk_ids, updated_at, chunker"


@dataclass(frozen=True)
class ManifestEntry:
    collection: str
    source: str
    doc_id: str
    content_sha: str
    size: int
    title: str
    chunk_ids: tuple[str, ...]
    updated_at: float = 0.0
    chunker: str = ""  # the version of the chunker that made chunk_ids


class Manifest(Protocol):
    """What the ingestor, the service and ``docqa compact`` need of a manifest."""

    def get(self, collection: str, source: str) -> ManifestEntry | None: ...

    def by_doc_id(self, collection: str, doc_id: str) -> ManifestEntry | None: ...

    def entries(self, collection: str) -> list[ManifestEntry]:
        """The collection's entries, ordered by source."""
        ...

    def put(self, entry: ManifestEntry) -> None:
        """Insert or replace the entry of (collection, source); ``updated_at`` is set now."""
        ...

    def remove(self, collection: str, source: str) -> None: ...

    def drop_collection(self, collection: str) -> None: ...

    def vacuum(self) -> None:
        """Let the store reclaim removed rows (their titles are document text)."""
        ...

    def close(self) -> None: ...


class SqliteManifest:
    """The manifest in a SQLite file (WAL), one connection guarded by a lock."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, check_same_thread=False, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(_SCHEMA)
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(files)")}
        if "chunker" not in columns:
            with self._conn:
                self._conn.execute("ALTER TABLE files ADD COLUMN chunker TEXT NOT NULL DEFAULT ''")
        self._lock = threading.Lock()

    def get(self, collection: str, source: str) -> ManifestEntry | None:
        with self._lock:
            row = self._conn.execute(
                f"SELECT {COLUMNS} FROM files WHERE collection = ? AND source = ?",
                (collection, source),
            ).fetchone()
        return entry_from_row(row) if row else None

    def by_doc_id(self, collection: str, doc_id: str) -> ManifestEntry | None:
        with self._lock:
            row = self._conn.execute(
                f"SELECT {COLUMNS} FROM files WHERE collection = ? AND doc_id = ?",
                (collection, doc_id),
            ).fetchone()
        return entry_from_row(row) if row else None

    def entries(self, collection: str) -> list[ManifestEntry]:
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {COLUMNS} FROM files WHERE collection = ? ORDER BY source", (collection,)
            ).fetchall()
        return [entry_from_row(r) for r in rows]

    def put(self, entry: ManifestEntry) -> None:
        with self._lock, self._conn:
            self._conn.execute(
                f"INSERT OR REPLACE INTO files ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                entry_row(entry),
            )

    def remove(self, collection: str, source: str) -> None:
        with self._lock, self._conn:
            self._conn.execute(
                "DELETE FROM files WHERE collection = ? AND source = ?", (collection, source)
            )

    def drop_collection(self, collection: str) -> None:
        with self._lock, self._conn:
            self._conn.execute("DELETE FROM files WHERE collection = ?", (collection,))

    def vacuum(self) -> None:
        """Rewrite the file without the pages of removed rows (titles are document text), and
        empty the WAL."""
        with self._lock:
            self._conn.execute("VACUUM")
            busy, _, _ = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            raise sqlite3.OperationalError("the manifest is in use; its WAL was not emptied")

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def entry_from_row(row: tuple[str, str, str, str, int, str, str, float, str]) -> ManifestEntry:
    """An entry from a row of ``COLUMNS`` (chunk ids as JSON text in both stores)."""
    collection, source, doc_id, sha, size, title, ids, updated, chunker = row
    return ManifestEntry(
        collection, source, doc_id, sha, int(size), title, tuple(json.loads(ids)), updated, chunker
    )


def entry_row(entry: ManifestEntry) -> tuple[str, str, str, str, int, str, str, float, str]:
    """The row of ``COLUMNS`` that stores ``entry``, stamped now."""
    return (
        entry.collection,
        entry.source,
        entry.doc_id,
        entry.content_sha,
        entry.size,
        entry.title,
        json.dumps(list(entry.chunk_ids)),
        time.time(),
        entry.chunker,
    )
