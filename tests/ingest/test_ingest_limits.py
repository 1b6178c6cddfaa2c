"""Through the pipeline: the parse deadline, counts after an interrupted write, compaction."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from config.settings import Settings
from docqa.cli.main import app
from index.chroma_store import close_client
from modelstore.cache import ModelCache
from tests.ingest.generated import pdf
from wiring.compose import Services

SECRET = "Zanzibarquokka"


@pytest.fixture
def built(settings: Settings, test_models: ModelCache) -> Iterator[Services]:
    services = Services.build(settings.model_copy(update={"parse_timeout_s": 1.0}))
    yield services
    services.close()


def test_a_file_past_the_parse_deadline_is_reported_and_the_rest_goes_in(
    built: Services, tmp_path: Path
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "slow.pdf").write_bytes(pdf(1_000_000))  # several seconds of pypdf
    (folder / "note.md").write_text("# Note\n\nDeploys run at noon.\n", encoding="utf-8")
    report = built.ingestor("docs").ingest([folder])
    assert (report.files_new, report.files_failed, report.exit_code) == (1, 1, 2)
    [failure] = report.failures
    assert failure.path.endswith("slow.pdf")
    assert "longer than 1 s" in failure.error and "DOCQA_PARSE_TIMEOUT_S" in failure.error
    # An upload goes through ingest_file: the same deadline.
    upload = built.ingestor("docs").ingest_file(folder / "slow.pdf", source="slow.pdf")
    assert upload.files_failed == 1 and "DOCQA_PARSE_TIMEOUT_S" in upload.failures[0].error


def test_chunks_written_by_an_interrupted_run_still_count_as_added(
    built: Services, tmp_path: Path
) -> None:
    """A run killed after a file's chunks were written, before its manifest row: the next run
    redoes the file and reports its chunks as added, as a clean run would."""
    note = tmp_path / "note.md"
    note.write_text("# Note\n\n" + "Deploys run at noon. " * 200 + "\n", encoding="utf-8")
    first = built.ingestor("docs").ingest([note])
    assert first.chunks_added > 1
    built.manifest.remove("docs", str(note))  # the state a SIGKILL before the row leaves
    again = built.ingestor("docs").ingest([note])
    assert (again.files_new, again.chunks_added, again.chunks_removed) == (
        1,
        first.chunks_added,
        0,
    )


def _holding(root: Path, needle: str) -> list[str]:
    """Files under ``root`` whose bytes contain ``needle`` (any case)."""
    pattern = needle.lower().encode()
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and pattern in p.read_bytes().lower()
    )


def test_compact_makes_deleted_text_physically_gone(
    settings: Settings, test_models: ModelCache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    secret = docs / "secret.md"
    secret.write_text(
        f"# Launch plan\n\nThe {SECRET} launch code is 7731.\n\n## Owners\n\n"
        f"Only the night shift runs the {SECRET} rollout.\n",
        encoding="utf-8",
    )
    (docs / "keep.md").write_text("# Deploys\n\nDeploys run every weekday at noon.\n", "utf-8")
    services = Services.build(settings)
    services.ingestor("docs").ingest([docs])
    services.ingestor("docs").delete_source(str(secret))
    services.close()
    data = settings.data_dir
    assert _holding(data, SECRET)  # deleted, yet on disk: what compaction is for

    for name, value in {
        "DOCQA_DATA_DIR": str(data),
        "DOCQA_MODELS_DIR": str(settings.models_dir),
        "DOCQA_PROFILE": "test",
    }.items():
        monkeypatch.setenv(name, value)
    # While the collection is open elsewhere (here: the services above), Chroma cannot purge
    # its log; compaction says so rather than claim the text is gone.
    result = CliRunner().invoke(app, ["compact", "--json"])
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert (result.exit_code, report["complete"]) == (2, False), result.output
    assert "the collections are open elsewhere" in report["notes"][0]

    close_client(services.client)
    result = CliRunner().invoke(app, ["compact", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["collections"] == ["docs"] and report["notes"] == [] and report["complete"]
    assert _holding(data, SECRET) == []

    # Everything else is as it was, and the stores take writes again.
    again = Services.build(settings)
    try:
        hits = again.retriever("docs").retrieve("when do deploys run", 3).hits
        assert [h.chunk.source for h in hits] == [str(docs / "keep.md")]
        sync = again.vectors("docs")._collection.configuration["hnsw"]["sync_threshold"]
        assert sync == 1000
        secret.write_text("# Launch plan\n\nPostponed.\n", encoding="utf-8")
        assert again.ingestor("docs").ingest([docs]).files_new == 1
    finally:
        again.close()
    with sqlite3.connect(data / "keywords.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
