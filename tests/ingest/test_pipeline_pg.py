"""Ingest with the shared state in PostgreSQL (``DOCQA_DATABASE_URL``): the manifest and the
keyword index live in the database, not in SQLite files, and another host sees them.

The composition picks the stores from the settings; the embedder is the hashing fake, the
vectors embedded Chroma, the parsers and chunker the real ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from index.keyword_pg import PostgresBM25Index
from ingest.errors import DocumentNotFoundError
from ingest.manifest_pg import PostgresManifest
from tests.app.fake_backend import HashWords, fake_settings
from wiring.compose import Services

COLLECTION = "docs"


@pytest.fixture
def services(tmp_path: Path, postgres_url: str) -> Iterator[Services]:
    settings = fake_settings(tmp_path, database_url=SecretStr(postgres_url))
    built = Services.build(settings, embedder=HashWords())
    yield built
    built.close()


def test_ingest_reingest_and_delete_on_the_shared_database(
    services: Services, corpus: Path, postgres_url: str
) -> None:
    assert isinstance(services.manifest, PostgresManifest)
    keywords = services.keywords(COLLECTION)
    assert isinstance(keywords, PostgresBM25Index)

    first = services.ingestor(COLLECTION).ingest([corpus])
    assert first.failures == [] and first.files_new == 5 and first.chunks_added > 5
    ids = keywords.ids()
    assert ids == services.vectors(COLLECTION).ids() and len(ids) == first.chunks_added
    hits = keywords.search("星桥 权限申请工单", 5)
    assert hits and hits[0].chunk.source.endswith("orbit-faq.zh.md")

    second = services.ingestor(COLLECTION).ingest([corpus])
    assert (second.files_unchanged, second.files_new, second.chunks_added) == (5, 0, 0)
    assert keywords.ids() == ids and keywords.count() == len(ids)  # no duplicates

    pdf = str(corpus / "security-policy.pdf")
    removed = services.ingestor(COLLECTION).delete_source(pdf)
    assert removed > 0
    assert all(h.chunk.source != pdf for h in keywords.search("API keys rotate", 20))
    assert keywords.ids() == services.vectors(COLLECTION).ids()

    # Another host: its own connections see the same manifest and keywords.
    other_manifest = PostgresManifest(postgres_url)
    with PostgresBM25Index(postgres_url, COLLECTION) as other_keywords:
        assert [e.source for e in other_manifest.entries(COLLECTION)] == [
            e.source for e in services.manifest.entries(COLLECTION)
        ]
        assert other_manifest.get(COLLECTION, pdf) is None
        assert other_keywords.ids() == keywords.ids()
    other_manifest.close()
    with pytest.raises(DocumentNotFoundError):
        services.ingestor(COLLECTION).delete_source(pdf)

    # Nothing went to the SQLite files of the data dir.
    data = services.settings.data_dir
    assert not (data / "manifest.sqlite").exists() and not (data / "keywords.sqlite").exists()

    assert services.drop_collection(COLLECTION)
    assert services.manifest.entries(COLLECTION) == []
    assert services.keywords(COLLECTION).count() == 0
