"""The manifest in PostgreSQL (``DOCQA_DATABASE_URL``): what `SqliteManifest` keeps, shared by
several hosts.

One table, ``docqa_manifest`` (a name of its own: the database may hold other applications'
tables), with the same columns and one row per (collection, source); `put` is an upsert
(``INSERT ... ON CONFLICT DO UPDATE``), so two hosts writing one file's row never fail, the last
write wins. Chunk ids are JSON text, as in SQLite. Sources and collections compare in byte
order (``COLLATE "C"``), so `entries` come in the order SQLite gives. One connection, in
autocommit (each statement is its own transaction), guarded by a lock.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from index.database import connect, create_schema, redact
from index.errors import StoreUnavailableError
from ingest.manifest import COLUMNS, ManifestEntry, entry_from_row, entry_row

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS docqa_manifest (
    collection TEXT COLLATE "C" NOT NULL, source TEXT COLLATE "C" NOT NULL,
    doc_id TEXT NOT NULL, content_sha TEXT NOT NULL, size BIGINT NOT NULL, title TEXT NOT NULL,
    chunk_ids TEXT NOT NULL, updated_at DOUBLE PRECISION NOT NULL,
    chunker TEXT NOT NULL DEFAULT '', PRIMARY KEY (collection, source));
CREATE INDEX IF NOT EXISTS docqa_manifest_doc ON docqa_manifest (collection, doc_id)
"""
_UPDATE = ", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS.split(", ")[2:])


class PostgresManifest:
    """The manifest in the PostgreSQL database at ``url`` (the `Manifest` protocol)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.Lock()
        self._conn = connect(url, autocommit=True)
        create_schema(self._conn, _SCHEMA)

    @contextlib.contextmanager
    def _db(self) -> Iterator[psycopg.Connection]:
        """The connection under the lock (reopened if it was lost); a database that fails is a
        `StoreUnavailableError`."""
        import psycopg

        with self._lock:
            try:
                if self._conn.closed:
                    self._conn = connect(self.url, autocommit=True)
                yield self._conn
            except psycopg.OperationalError as exc:
                raise StoreUnavailableError(
                    f"the manifest's database ({redact(self.url)}) failed: {exc}"
                ) from exc

    def get(self, collection: str, source: str) -> ManifestEntry | None:
        with self._db() as db:
            row = db.execute(
                f"SELECT {COLUMNS} FROM docqa_manifest WHERE collection = %s AND source = %s",
                (collection, source),
            ).fetchone()
        return entry_from_row(row) if row else None

    def by_doc_id(self, collection: str, doc_id: str) -> ManifestEntry | None:
        with self._db() as db:
            row = db.execute(
                f"SELECT {COLUMNS} FROM docqa_manifest WHERE collection = %s AND doc_id = %s "
                "ORDER BY source LIMIT 1",
                (collection, doc_id),
            ).fetchone()
        return entry_from_row(row) if row else None

    def entries(self, collection: str) -> list[ManifestEntry]:
        with self._db() as db:
            rows = db.execute(
                f"SELECT {COLUMNS} FROM docqa_manifest WHERE collection = %s ORDER BY source",
                (collection,),
            ).fetchall()
        return [entry_from_row(r) for r in rows]

    def put(self, entry: ManifestEntry) -> None:
        with self._db() as db:
            db.execute(
                f"INSERT INTO docqa_manifest ({COLUMNS}) VALUES ({', '.join(['%s'] * 9)}) "
                f"ON CONFLICT (collection, source) DO UPDATE SET {_UPDATE}",
                entry_row(entry),
            )

    def remove(self, collection: str, source: str) -> None:
        with self._db() as db:
            db.execute(
                "DELETE FROM docqa_manifest WHERE collection = %s AND source = %s",
                (collection, source),
            )

    def drop_collection(self, collection: str) -> None:
        with self._db() as db:
            db.execute("DELETE FROM docqa_manifest WHERE collection = %s", (collection,))

    def vacuum(self) -> None:
        """``VACUUM (ANALYZE)`` the table: removed rows' space becomes reusable (autovacuum does
        it too; ``VACUUM FULL``, which locks the table, would rewrite it at once)."""
        with self._db() as db:
            db.execute("VACUUM (ANALYZE) docqa_manifest")  # autocommit: VACUUM needs no transaction

    def close(self) -> None:
        with self._lock:
            self._conn.close()
