"""The manifest records which chunker version made a file's chunks; older manifests upgrade."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ingest.manifest import Manifest, ManifestEntry

_V1_SCHEMA = """
CREATE TABLE files (
    collection TEXT NOT NULL, source TEXT NOT NULL, doc_id TEXT NOT NULL,
    content_sha TEXT NOT NULL, size INTEGER NOT NULL, title TEXT NOT NULL,
    chunk_ids TEXT NOT NULL, updated_at REAL NOT NULL,
    PRIMARY KEY (collection, source));
"""


def test_an_entry_keeps_its_chunker_version(tmp_path: Path) -> None:
    manifest = Manifest(tmp_path / "manifest.sqlite")
    manifest.put(ManifestEntry("docs", "a.md", "d", "sha", 3, "A", ("c1",), chunker="2"))
    entry = manifest.get("docs", "a.md")
    assert entry is not None and (entry.chunk_ids, entry.chunker) == (("c1",), "2")
    manifest.close()


def test_a_manifest_from_before_the_chunker_column_gets_it_empty(tmp_path: Path) -> None:
    """Its files then differ from any chunker version: the next ingest re-chunks each once."""
    path = tmp_path / "manifest.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(_V1_SCHEMA)
        db.execute(
            "INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            ("docs", "a.md", "d", "sha", 3, "A", '["c1"]', 1.0),
        )
    manifest = Manifest(path)
    entry = manifest.get("docs", "a.md")
    assert entry is not None and (entry.content_sha, entry.chunker) == ("sha", "")
    manifest.put(ManifestEntry("docs", "b.md", "e", "sha2", 4, "B", ("c2",), chunker="2"))
    assert [e.chunker for e in manifest.entries("docs")] == ["", "2"]
    manifest.close()
    Manifest(path).close()  # opening it again changes nothing
