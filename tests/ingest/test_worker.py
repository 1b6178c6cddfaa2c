"""The ingest worker on the real pipeline (hashing embedder, embedded Chroma, SQLite stores):
jobs run to done, bad files fail at once, conflicts are refused, store errors are retried."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

import ingest.jobs as jobs_module
from config.settings import Settings
from index.errors import StoreUnavailableError
from ingest.jobs import Job
from ingest.worker import JobWorker
from tests.app.fake_backend import HashWords
from wiring.compose import Services

RUNBOOK = (
    b"# Runbook\n\n## Ports\n\norbit-agent listens on port 7070.\n\n"
    b"## Owners\n\nLin Wei owns orbit-agent.\n"
)


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    settings = Settings(data_dir=tmp_path / "data", models_dir=tmp_path / "none", profile="test")
    built = Services.build(settings, embedder=HashWords())
    yield built
    built.close()


def _worker(services: Services) -> JobWorker:
    return JobWorker(services.jobs, services.ingestor, services.manifest, lease_s=30, name="w1")


def _submit(services: Services, name: str, data: bytes, **kw: object) -> Job:
    sha = hashlib.sha256(data).hexdigest()
    return services.jobs.submit("docs", name, name, data, sha, **kw)  # type: ignore[arg-type]


def test_a_job_runs_to_done_with_its_report(services: Services) -> None:
    job = _submit(services, "runbook.md", RUNBOOK)
    assert _worker(services).run_once()
    done = services.jobs.get(job.id)
    assert done is not None and (done.state, done.attempts, done.error) == ("done", 1, None)
    assert done.report is not None and done.report["files_new"] == 1
    entry = services.manifest.get("docs", "runbook.md")
    assert entry is not None and done.report["chunks_added"] == len(entry.chunk_ids) > 0
    assert services.vectors("docs").count() == len(entry.chunk_ids)
    assert not _worker(services).run_once()  # nothing left
    # The same content again: a new job, which changes nothing.
    again = _submit(services, "runbook.md", RUNBOOK)
    _worker(services).run_once()
    rerun = services.jobs.get(again.id)
    assert rerun is not None and rerun.report is not None
    assert (rerun.report["files_unchanged"], rerun.report["chunks_added"]) == (1, 0)


def test_a_bad_file_fails_at_once_with_its_report(services: Services) -> None:
    job = _submit(services, "broken.pdf", b"%PDF-1.4 junk", max_attempts=3)
    _worker(services).run_once()
    failed = services.jobs.get(job.id)
    assert failed is not None and (failed.state, failed.attempts) == ("failed", 1)
    assert failed.error is not None and failed.error.startswith("broken.pdf could not be ingested")
    assert failed.report is not None and failed.report["files_failed"] == 1
    assert failed.report["failures"][0]["path"] == "broken.pdf"
    assert not _worker(services).run_once()  # not retried


def test_a_conflicting_document_is_refused_at_run_time(services: Services) -> None:
    # Both queued before either ran: the API's submit-time check saw no document yet.
    first = _submit(services, "report.md", b"# Report\n\nTeam A ships on Tuesdays.\n")
    second = _submit(services, "report.md", b"# Report\n\nTeam B ships on Thursdays.\n")
    replacing = _submit(
        services, "report.md", b"# Report\n\nTeam C ships on Fridays.\n", replace=True
    )
    worker = _worker(services)
    while worker.run_once():
        pass
    states = [services.jobs.get(j.id) for j in (first, second, replacing)]
    assert [s.state for s in states if s] == ["done", "failed", "done"]
    assert states[1] is not None and "replace=true" in (states[1].error or "")
    entry = services.manifest.get("docs", "report.md")
    assert entry is not None and entry.content_sha == replacing.sha256


def test_a_store_error_is_retried_after_a_backoff(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1_000_000.0]
    monkeypatch.setattr(jobs_module.time, "time", lambda: now[0])
    vectors = services.vectors("docs")
    real_upsert = vectors.upsert
    calls = []

    def flaky(*args: object, **kw: object) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise StoreUnavailableError("chroma server at http://127.0.0.1:1 is down")
        real_upsert(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(vectors, "upsert", flaky)
    job = _submit(services, "runbook.md", RUNBOOK)
    worker = _worker(services)
    assert worker.run_once()
    queued = services.jobs.get(job.id)
    assert queued is not None and queued.state == "queued" and "is down" in (queued.error or "")
    assert not worker.run_once()  # backing off
    now[0] += 3
    assert worker.run_once()
    done = services.jobs.get(job.id)
    assert done is not None and (done.state, done.attempts) == ("done", 2)
    entry = services.manifest.get("docs", "runbook.md")
    assert entry is not None and vectors.count() == len(entry.chunk_ids)


def test_progress_goes_parsing_embedding_writing(services: Services, tmp_path: Path) -> None:
    big = "\n\n".join(
        f"## Part {i}\n\n" + f"Service {i} listens on port {9000 + i}. " * 40 for i in range(30)
    )
    path = tmp_path / "big.md"
    path.write_text("# Big\n\n" + big, encoding="utf-8")
    seen: list[tuple[str, int, int]] = []
    ingestor = services.ingestor("docs")
    ingestor.options = type(ingestor.options)(embed_batch=8)
    ingestor.ingest_file(path, "big.md", stage=lambda *a: seen.append(a))
    stages = [s for s, _, _ in seen]
    assert stages[0] == "parsing" and stages[-1] == "writing"
    embedding = [(d, t) for s, d, t in seen if s == "embedding"]
    total = embedding[0][1]
    assert total > 8 and [d for d, _ in embedding] == list(range(0, total, 8))
    assert seen[-1] == ("writing", total, total)
