"""Compaction: make the text of deleted documents physically gone from the data directory.

A delete removes a document from every index at once: no search, answer or listing can return
it afterwards. Its bytes can stay on disk for a while: SQLite frees pages without erasing them,
and Chroma keeps every write, text included, in its write-ahead log (``embeddings_queue``) until
its vector index persists (every 1000 writes). :func:`compact` rewrites all of it:

1. per collection, Chroma purges its write log (:func:`~index.chroma_store.purge_write_log`);
2. the keyword index and the manifest are rewritten by SQLite ``VACUUM``, their WALs emptied
   (the keyword index's FTS5 segments are merged first, which drops deleted chunks' terms);
3. embedded Chroma's database: its full-text index merged, then ``chroma vacuum`` (Chroma's
   own maintenance: it purges the log and runs ``VACUUM``), with the client closed.

With a Chroma server, step 3 is for its operator (``chroma vacuum --path DIR`` on that machine,
with the server stopped). With a shared database (``DOCQA_DATABASE_URL``) step 2 is PostgreSQL's
``VACUUM (ANALYZE)`` of the keyword and manifest tables: removed rows' space becomes reusable, but
their bytes stay in the table files until reused, and in the server's WAL and backups; rewriting
them (``VACUUM FULL``, which locks the tables against every host) is the database operator's
call, so the report says so and is not complete. Nothing else in the data directory holds text:
the embedding cache keeps vectors keyed by a hash of the text, and Chroma's HNSW files keep
vectors.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from index import keyword, keyword_pg
from index.chroma_store import close_client, list_collections, purge_write_log, vacuum_persistent
from ingest.manifest import SqliteManifest
from ingest.manifest_pg import PostgresManifest

log = logging.getLogger(__name__)


@dataclass
class CompactReport:
    collections: list[str] = field(default_factory=list)
    bytes_before: int = 0
    bytes_after: int = 0
    notes: list[str] = field(default_factory=list)  # what is left for the operator
    complete: bool = True  # False: some deleted text may still be on disk (see notes)

    def to_json(self) -> dict[str, Any]:
        return {
            "collections": self.collections,
            "bytes_before": self.bytes_before,
            "bytes_after": self.bytes_after,
            "complete": self.complete,
            "notes": self.notes,
        }

    def summary(self) -> str:
        lines = [
            f"compacted {len(self.collections)} collections: "
            f"{self.bytes_before / 1e6:.1f} MB -> {self.bytes_after / 1e6:.1f} MB on disk"
        ]
        return "\n".join(lines + [f"  note: {note}" for note in self.notes])


def compact(
    client: Any,
    *,
    chroma_dir: Path | None,
    keywords: Path,
    manifest: Path,
    database_url: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> CompactReport:
    """Compact the stores; ``chroma_dir`` is embedded Chroma's folder, None for a server;
    ``database_url``: the keyword index and manifest are in that PostgreSQL, not the files.

    The client is closed on return (embedded Chroma must be, for its vacuum). Run it with no
    other docqa process on the data directory (``docqa serve``, an ingest): each step takes its
    file for itself.
    """
    say = progress or (lambda _: None)
    files = [keywords, manifest, *([chroma_dir] if chroma_dir is not None else [])]
    report = CompactReport(bytes_before=_size(files))
    try:
        for name in list_collections(client):
            say(f"purging Chroma's write log of {name}")
            purge_write_log(client, name)
            report.collections.append(name)
    finally:
        close_client(client)
    if database_url is not None:
        say("vacuuming the keyword and manifest tables in the database")
        _vacuum_database(database_url)
        report.complete = False
        report.notes.append(
            "the keyword index and manifest are in PostgreSQL: VACUUM made deleted rows' space "
            "reusable, but their bytes stay in its files until reused (and in its WAL and "
            "backups); VACUUM FULL on kw_chunks, kw_postings and docqa_manifest rewrites them "
            "(it locks those tables against every host: the database operator's call)"
        )
    else:
        for path, kind in ((keywords, "keyword index"), (manifest, "manifest")):
            if path.exists():
                say(f"rewriting the {kind}")
                _vacuum(path, kind)
    if chroma_dir is not None:
        say("rewriting Chroma's database")
        if left := vacuum_persistent(chroma_dir):
            report.complete = False
            report.notes.append(
                f"Chroma kept {left} logged writes with text in its log: the collections are "
                "open elsewhere (`docqa serve`, an ingest); stop that and run `docqa compact` again"
            )
    else:
        report.notes.append(
            "Chroma runs as a server: deleted text leaves its write log now, and its database "
            "file at the next `chroma vacuum --path DIR` on the server (server stopped)"
        )
    report.bytes_after = _size(files)
    return report


def _vacuum_database(url: str) -> None:
    keyword_pg.vacuum(url)
    store = PostgresManifest(url)
    try:
        store.vacuum()
    finally:
        store.close()


def _vacuum(path: Path, kind: str) -> None:
    if kind == "manifest":
        store = SqliteManifest(path)
        try:
            store.vacuum()
        finally:
            store.close()
    else:
        keyword.vacuum(path)


def _size(roots: Iterable[Path]) -> int:
    """Bytes on disk of these files (with their -wal and -shm) and folders."""
    total = 0
    for root in roots:
        for path in [root, *root.parent.glob(f"{root.name}-*")] if root.is_file() else [root]:
            if path.is_file():
                total += path.stat().st_size
            elif path.is_dir():
                total += sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return total
