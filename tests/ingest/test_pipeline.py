"""Ingest end to end with a real Chroma, the real BM25 index and the real small embedder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ingest.errors import DocumentNotFoundError
from wiring.compose import Services

COLLECTION = "docs"


def _state(services: Services, collection: str = COLLECTION) -> dict[str, object]:
    """Everything an index holds, to compare two indexes chunk for chunk."""
    vectors = services.vectors(collection)
    keywords = services.keywords(collection)
    ids = sorted(vectors.ids())
    chunks = vectors.get(ids)
    return {
        "vector_ids": ids,
        "keyword_ids": sorted(keywords.ids()),
        "chunks": sorted((c.id, c.text, c.source, c.page, c.start, c.end) for c in chunks),
        "manifest": sorted(
            (e.source, e.content_sha, e.chunk_ids) for e in services.manifest.entries(collection)
        ),
    }


def test_first_ingest_then_unchanged_reingest_embeds_nothing(
    services: Services, corpus: Path
) -> None:
    ingestor = services.ingestor(COLLECTION)
    first = ingestor.ingest([corpus])
    assert first.failures == []
    assert (first.files_new, first.files_failed, first.exit_code) == (5, 0, 0)
    assert first.chunks_added > 5 and first.cache_misses > 0
    state = _state(services)
    assert state["vector_ids"] == state["keyword_ids"]
    assert len(state["vector_ids"]) == first.chunks_added

    calls_before = services.embedder.inner  # the real model object stays; count cache traffic
    second = services.ingestor(COLLECTION).ingest([corpus])
    assert (second.files_unchanged, second.files_new, second.files_changed) == (5, 0, 0)
    assert (second.cache_hits, second.cache_misses, second.chunks_added) == (0, 0, 0)
    assert _state(services) == state
    assert services.embedder.inner is calls_before


def test_changed_file_replaces_its_chunks_everywhere(services: Services, corpus: Path) -> None:
    ingestor = services.ingestor(COLLECTION)
    ingestor.ingest([corpus])
    runbook = corpus / "orbit-runbook.md"
    source = str(runbook)
    old_ids = set(services.manifest.get(COLLECTION, source).chunk_ids)  # type: ignore[union-attr]
    text = runbook.read_text(encoding="utf-8")
    assert "15 minutes" in text
    runbook.write_text(text.replace("15 minutes", "12 minutes"), encoding="utf-8")

    report = services.ingestor(COLLECTION).ingest([corpus])
    assert (report.files_changed, report.files_unchanged) == (1, 4)
    assert report.chunks_removed >= 1 and report.cache_hits >= 1  # unchanged passages reused
    new_ids = set(services.manifest.get(COLLECTION, source).chunk_ids)  # type: ignore[union-attr]
    stale = old_ids - new_ids
    assert stale
    assert not stale & services.vectors(COLLECTION).ids()
    assert not stale & services.keywords(COLLECTION).ids()
    hits = services.keywords(COLLECTION).search("rollback 12 minutes", 5)
    assert any("12 minutes" in h.chunk.text for h in hits)
    assert not any("15 minutes" in h.chunk.text for h in hits)


def test_prune_and_delete_purge_vectors_and_keywords(services: Services, corpus: Path) -> None:
    services.ingestor(COLLECTION).ingest([corpus])
    gone = corpus / "release-notes.html"
    gone_source = str(gone)
    gone.unlink()
    report = services.ingestor(COLLECTION).ingest([corpus], prune=True)
    assert report.files_pruned == 1 and report.chunks_removed > 0
    assert not services.vectors(COLLECTION).ids({"source": gone_source})
    assert all(
        h.chunk.source != gone_source
        for h in services.keywords(COLLECTION).search("Kubernetes 1.27 blue-green", 20)
    )
    assert services.manifest.get(COLLECTION, gone_source) is None

    pdf = str(corpus / "security-policy.pdf")
    removed = services.ingestor(COLLECTION).delete_source(pdf)
    assert removed > 0
    assert not services.vectors(COLLECTION).ids({"source": pdf})
    assert all(
        h.chunk.source != pdf for h in services.keywords(COLLECTION).search("API keys rotate", 20)
    )
    state = _state(services)
    assert state["vector_ids"] == state["keyword_ids"]
    with pytest.raises(DocumentNotFoundError):
        services.ingestor(COLLECTION).delete_source(pdf)


def test_prune_leaves_other_folders_alone(services: Services, corpus: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "note.md").write_text("# Note\n\nThe staging cluster is called Nebula.\n")
    services.ingestor(COLLECTION).ingest([corpus, other])
    report = services.ingestor(COLLECTION).ingest([corpus], prune=True)
    assert report.files_pruned == 0
    assert services.vectors(COLLECTION).ids({"source": str(other / "note.md")})


def test_bad_inputs_are_reported_and_the_rest_goes_in(services: Services, corpus: Path) -> None:
    bad = corpus / "bad"
    bad.mkdir()
    good_pdf = (corpus / "security-policy.pdf").read_bytes()
    (bad / "truncated.pdf").write_bytes(good_pdf[: len(good_pdf) // 3])
    (bad / "binary.txt").write_bytes(bytes(range(256)) * 8)
    (bad / "empty.md").write_bytes(b"")
    (bad / "huge.txt").write_text("big " * 400_000)  # 1.6 MB, over the 1 MB limit set below
    (bad / "dangling.md").symlink_to(bad / "no-such-target.md")
    (bad / "loop").symlink_to(bad, target_is_directory=True)
    (bad / "fine.txt").write_text("The backup bucket is named orbit-backups-eu.\n")
    ingestor = services.ingestor(COLLECTION)
    ingestor.options = type(ingestor.options)(max_file_bytes=1024 * 1024)
    report = ingestor.ingest([corpus, corpus / "missing-file.md"])
    reasons = {Path(f.path).name: f.error for f in report.failures}
    assert "truncated.pdf" in reasons and "pdf" in reasons["truncated.pdf"].lower()
    assert "binary" in reasons["binary.txt"]
    assert "empty" in reasons["empty.md"]
    assert "over the limit" in reasons["huge.txt"]
    assert "symlink" in reasons["dangling.md"]
    assert "loop" in reasons["loop"] or "loop" in " ".join(reasons.values())
    assert "no such file" in reasons["missing-file.md"]
    assert report.exit_code == 2
    assert report.files_new == 6  # the five examples and fine.txt all went in
    hits = services.keywords(COLLECTION).search("backup bucket", 3)
    assert hits and hits[0].chunk.source.endswith("fine.txt")


def test_chinese_keyword_search_finds_a_passage_by_a_word_inside_it(
    services: Services, corpus: Path
) -> None:
    services.ingestor(COLLECTION).ingest([corpus / "orbit-faq.zh.md"])
    hits = services.keywords(COLLECTION).search("保留期", 3)
    assert hits and "保留期" in hits[0].chunk.text
    assert hits[0].chunk.source.endswith("orbit-faq.zh.md")


def test_provenance_on_every_chunk(services: Services, corpus: Path) -> None:
    services.ingestor(COLLECTION).ingest([corpus])
    vectors = services.vectors(COLLECTION)
    chunks = vectors.get(sorted(vectors.ids()))
    for c in chunks:
        assert c.doc_id and c.source and c.title and c.end > c.start
    pdf = [c for c in chunks if c.source.endswith(".pdf")]
    assert {c.page for c in pdf} == {1, 2, 3}
    page2 = [c for c in pdf if "rotate every 30 days" in c.text]
    assert page2 and all(c.page == 2 for c in page2)
    md = [c for c in chunks if c.source.endswith("orbit-runbook.md")]
    assert any(len(c.heading_path) >= 2 for c in md)


def test_collections_are_isolated(services: Services, corpus: Path) -> None:
    services.ingestor("alpha").ingest([corpus / "orbit-runbook.md"])
    services.ingestor("beta").ingest([corpus / "orbit-faq.zh.md"])
    assert services.vectors("alpha").ids().isdisjoint(services.vectors("beta").ids())
    assert {"alpha", "beta"} <= set(services.collections())
    assert os.path.exists(services.settings.data_dir / "manifest.sqlite")


def test_table_rows_are_embedded_and_keyword_indexed_rendered(
    services: Services, corpus: Path
) -> None:
    """The runbook's table chunk: its vector is the rendered text's, BM25 finds it by a rendered
    row, and the stores return the document's own text (its offsets) for citing."""
    services.ingestor(COLLECTION).ingest([corpus / "orbit-runbook.md"])
    [hit] = services.keywords(COLLECTION).search("orbit-scheduler Owner Daniel Ferreira", 1)
    chunk = hit.chunk
    assert chunk.rendered is not None
    assert "orbit-scheduler: Owner Daniel Ferreira; Port 8450;" in chunk.rendered
    assert "| orbit-scheduler | Daniel Ferreira | 8450 |" in chunk.text
    assert chunk.heading_path == ("Orbit Runbook", "Components and owners")
    vectors = services.vectors(COLLECTION)
    assert vectors.get([chunk.id]) == [chunk]
    [nearest] = vectors.search(services.embedder.embed_documents([chunk.rendered])[0], 1)
    assert nearest.chunk.id == chunk.id and nearest.score == pytest.approx(1.0, abs=1e-4)


def test_a_new_chunker_version_rechunks_unchanged_files_once(
    services: Services, corpus: Path
) -> None:
    first = services.ingestor(COLLECTION).ingest([corpus])
    old_ids = services.vectors(COLLECTION).ids()
    ingestor = services.ingestor(COLLECTION)
    ingestor.chunker.version = "next"  # what a CHUNKER_VERSION bump does to every file
    again = ingestor.ingest([corpus])
    assert (again.files_changed, again.files_unchanged) == (5, 0)
    new_ids = services.vectors(COLLECTION).ids()
    assert new_ids.isdisjoint(old_ids) and again.chunks_removed == len(old_ids)
    assert services.keywords(COLLECTION).ids() == new_ids
    assert {e.chunker for e in services.manifest.entries(COLLECTION)} == {"next"}
    last = ingestor.ingest([corpus])  # and then the files are unchanged again
    assert (last.files_unchanged, last.chunks_added) == (5, 0)
    assert first.chunks_added == again.chunks_added == len(new_ids)
