"""The manifest: one contract for the SQLite and PostgreSQL stores (the PostgreSQL runs in the
slow tier, on a real server), the chunker version of a file's chunks, older files upgraded."""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from index.errors import StoreUnavailableError
from ingest.manifest import Manifest, ManifestEntry, SqliteManifest
from ingest.manifest_pg import PostgresManifest

_V1_SCHEMA = """
CREATE TABLE files (
    collection TEXT NOT NULL, source TEXT NOT NULL, doc_id TEXT NOT NULL,
    content_sha TEXT NOT NULL, size INTEGER NOT NULL, title TEXT NOT NULL,
    chunk_ids TEXT NOT NULL, updated_at REAL NOT NULL,
    PRIMARY KEY (collection, source));
"""


def test_an_entry_keeps_its_chunker_version(tmp_path: Path) -> None:
    manifest = SqliteManifest(tmp_path / "manifest.sqlite")
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
    manifest = SqliteManifest(path)
    entry = manifest.get("docs", "a.md")
    assert entry is not None and (entry.content_sha, entry.chunker) == ("sha", "")
    manifest.put(ManifestEntry("docs", "b.md", "e", "sha2", 4, "B", ("c2",), chunker="2"))
    assert [e.chunker for e in manifest.entries("docs")] == ["", "2"]
    manifest.close()
    SqliteManifest(path).close()  # opening it again changes nothing


# -- the contract: every Manifest ----------------------------------------------------------------

Opener = Callable[[], Manifest]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.slow)])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    """Opens a manifest on the test's one store (a file, or a PostgreSQL database)."""
    if request.param == "sqlite":
        return lambda: SqliteManifest(tmp_path / "manifest.sqlite")
    url = request.getfixturevalue("postgres_url")
    return lambda: PostgresManifest(url)


@pytest.fixture
def manifest(opener: Opener) -> Iterator[Manifest]:
    store = opener()
    yield store
    store.close()


def entry(source: str, collection: str = "docs", **changes: object) -> ManifestEntry:
    fields: dict[str, object] = {
        "collection": collection,
        "source": source,
        "doc_id": f"doc-{source}",
        "content_sha": "sha",
        "size": 3,
        "title": f"Title of {source}",
        "chunk_ids": ("c1", "c2"),
        "chunker": "2",
    }
    fields.update(changes)
    return ManifestEntry(**fields)  # type: ignore[arg-type]


def test_put_get_and_look_up_by_doc_id(manifest: Manifest) -> None:
    before = time.time()
    manifest.put(entry("a.md", title="标题 A"))
    got = manifest.get("docs", "a.md")
    assert got is not None and got == entry("a.md", title="标题 A", updated_at=got.updated_at)
    assert before <= got.updated_at <= time.time()
    assert manifest.by_doc_id("docs", "doc-a.md") == got
    assert manifest.get("docs", "b.md") is None and manifest.get("other", "a.md") is None
    assert manifest.by_doc_id("docs", "nope") is None


def test_put_replaces_the_row_of_a_source(manifest: Manifest) -> None:
    manifest.put(entry("a.md"))
    manifest.put(entry("a.md", content_sha="sha2", chunk_ids=("c3",), size=10**10))
    [only] = manifest.entries("docs")
    assert (only.content_sha, only.chunk_ids, only.size) == ("sha2", ("c3",), 10**10)


def test_entries_are_per_collection_and_ordered_by_source(manifest: Manifest) -> None:
    for source in ["b.md", "A.md", "a.md", "z/1.md", "中文.md"]:
        manifest.put(entry(source))
    manifest.put(entry("x.md", collection="other"))
    assert [e.source for e in manifest.entries("docs")] == ["A.md", "a.md", "b.md", "z/1.md",
                                                            "中文.md"]  # fmt: skip
    assert [e.source for e in manifest.entries("other")] == ["x.md"]
    assert manifest.entries("none") == []


def test_remove_and_drop_collection(manifest: Manifest) -> None:
    manifest.put(entry("a.md"))
    manifest.put(entry("b.md"))
    manifest.put(entry("a.md", collection="other"))
    manifest.remove("docs", "a.md")
    manifest.remove("docs", "absent.md")  # a no-op
    assert [e.source for e in manifest.entries("docs")] == ["b.md"]
    manifest.drop_collection("docs")
    assert manifest.entries("docs") == []
    assert [e.source for e in manifest.entries("other")] == ["a.md"]
    manifest.vacuum()
    assert [e.source for e in manifest.entries("other")] == ["a.md"]


def test_a_second_instance_sees_the_first_ones_writes(opener: Opener) -> None:
    """Another process on the file, another host on the database: what one commits, the other
    reads at once; both write the same row without conflict, the last write wins."""
    first, second = opener(), opener()
    try:
        first.put(entry("a.md"))
        assert second.get("docs", "a.md") is not None
        second.put(entry("a.md", content_sha="from-second"))
        got = first.get("docs", "a.md")
        assert got is not None and got.content_sha == "from-second"
        first.remove("docs", "a.md")
        assert second.entries("docs") == []
    finally:
        first.close()
        second.close()


def test_threads_share_an_instance(manifest: Manifest) -> None:
    def work(n: int) -> None:
        for i in range(20):
            manifest.put(entry(f"{n}-{i}.md"))
            assert manifest.get("docs", f"{n}-{i}.md") is not None

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(manifest.entries("docs")) == 80


def test_an_unreachable_database_is_a_clear_503() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(StoreUnavailableError, match="cannot reach") as raised:
        PostgresManifest(f"postgresql://docqa:pw@127.0.0.1:{port}/docqa")
    assert raised.value.status_code == 503 and ":pw@" not in str(raised.value)
