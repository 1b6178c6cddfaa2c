"""A `docqa worker` killed with SIGKILL in the middle of a job: when its lease runs out, another
worker takes the job over, and the document ends up in every index exactly once."""

from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path

import pytest

from config.settings import Settings
from ingest.jobs import SqlJobStore
from modelstore.cache import ModelCache
from tests.conftest import TEST_MODELS_DIR
from tests.processes import docqa, wait_until
from wiring.compose import Services

pytestmark = pytest.mark.slow  # child processes
LEASE_S = 5


def _big_document() -> bytes:
    parts = [
        f"## Service {i}\n\n"
        + " ".join(
            f"Service {i} handles queue {j} on port {9000 + i} and retries after {j % 7 + 1} s."
            for j in range(12)
        )
        for i in range(300)
    ]
    return ("# Services\n\n" + "\n\n".join(parts) + "\n").encode()


def test_a_killed_workers_job_is_taken_over_and_duplicates_nothing(
    tmp_path: Path, test_models: ModelCache
) -> None:
    data_dir = tmp_path / "data"
    env = {
        **os.environ,
        "DOCQA_DATA_DIR": str(data_dir),
        "DOCQA_MODELS_DIR": str(TEST_MODELS_DIR),
        "DOCQA_PROFILE": "test",
        "DOCQA_JOB_LEASE_S": str(LEASE_S),
        "DOCQA_EMBED_BATCH_SIZE": "32",  # many small steps: the kill lands mid-embedding
    }
    store = SqlJobStore.sqlite(data_dir / "jobs.sqlite")
    body = _big_document()
    job = store.submit("docs", "services.md", "services.md", body, hashlib.sha256(body).hexdigest())
    log = tmp_path / "worker.log"

    def embedding_part_way() -> bool:
        current = store.get(job.id)
        return current is not None and current.stage == "embedding" and current.done > 0

    with docqa(["worker"], env, log) as first:
        wait_until(embedding_part_way, first, log, 120, "the first worker", interval_s=0.05)
        first.send_signal(signal.SIGKILL)
        first.wait()
    killed = store.get(job.id)
    assert killed is not None and (killed.state, killed.attempts) == ("running", 1)

    def finished() -> bool:
        current = store.get(job.id)
        return current is not None and current.finished

    with docqa(["worker"], env, log) as second:
        wait_until(finished, second, log, 180, "the second worker")
    current = store.get(job.id)
    assert current is not None
    assert (current.state, current.attempts, current.error) == ("done", 2, None)
    assert current.worker is not None and current.worker.split(":")[1] == str(second.pid)
    assert current.report is not None and current.report["files_new"] == 1
    store.close()

    services = Services.build(
        Settings(data_dir=data_dir, models_dir=TEST_MODELS_DIR, profile="test")
    )
    try:
        entry = services.manifest.get("docs", "services.md")
        assert entry is not None and len(entry.chunk_ids) == len(set(entry.chunk_ids)) > 32
        assert services.vectors("docs").ids() == set(entry.chunk_ids)
        assert services.keywords("docs").ids() == set(entry.chunk_ids)
        assert current.report["chunks_added"] == len(entry.chunk_ids)
    finally:
        services.close()
