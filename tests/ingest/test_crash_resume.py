"""Kill the ingest with SIGKILL at several moments, resume it, and compare with a clean run."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from config.settings import Settings
from modelstore.cache import ModelCache
from tests.conftest import TEST_MODELS_DIR
from tests.ingest.test_pipeline import _state
from wiring.compose import Services

TOPICS = ["deploys", "backups", "alerts", "billing", "search", "queues", "caches", "storage"]


def _make_corpus(root: Path, n: int = 48) -> None:
    root.mkdir()
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        paras = [
            f"Service {i} handles {topic}. Its owner is team {i % 7} and its port is {8000 + i}. "
            f"Requests to service {i} time out after {i % 13 + 2} seconds. " * 3
            for _ in range(6)
        ]
        body = "\n\n".join(f"## Part {j}\n\n{p} Detail {i}-{j}." for j, p in enumerate(paras))
        (root / f"service-{i:03d}.md").write_text(f"# Service {i}\n\n{body}\n", encoding="utf-8")


def _committed_chunks(data_dir: Path) -> int:
    """Chunks of the files whose manifest rows are written (their ingest finished)."""
    with sqlite3.connect(data_dir / "manifest.sqlite", timeout=10) as conn:
        return sum(len(json.loads(ids)) for (ids,) in conn.execute("SELECT chunk_ids FROM files"))


def _rows(data_dir: Path) -> int:
    db = data_dir / "manifest.sqlite"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=1) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM files").fetchone()[0])
    except sqlite3.Error:
        return 0


def test_sigkill_at_any_moment_then_resume_equals_a_clean_run(
    tmp_path: Path, test_models: ModelCache
) -> None:
    corpus = tmp_path / "corpus"
    _make_corpus(corpus)
    data = tmp_path / "killed"
    env = {
        **os.environ,
        "DOCQA_DATA_DIR": str(data),
        "DOCQA_MODELS_DIR": str(TEST_MODELS_DIR),
        "DOCQA_PROFILE": "test",
        "DOCQA_EMBED_BATCH_SIZE": "8",  # many small writes: many moments to be killed in
    }
    cmd = [sys.executable, "-m", "docqa", "ingest", str(corpus), "--json"]
    kills = 0
    for extra_delay in (0.0, 0.4, 1.1):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        start_rows = _rows(data)
        deadline = time.monotonic() + 240
        while _rows(data) == start_rows and proc.poll() is None:
            assert time.monotonic() < deadline, "ingest made no progress"
            time.sleep(0.02)
        time.sleep(extra_delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 2, "the corpus was ingested before it could be interrupted"
    assert _rows(data) < 48

    committed, rows = _committed_chunks(data), _rows(data)
    final = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr[-2000:]
    resumed_report = json.loads(final.stdout.strip().splitlines()[-1])

    clean_settings = Settings(
        data_dir=tmp_path / "clean", models_dir=TEST_MODELS_DIR, profile="test"
    )
    clean = Services.build(clean_settings)
    report = clean.ingestor("docs").ingest([corpus])
    assert report.files_new == 48

    resumed = Services.build(Settings(data_dir=data, models_dir=TEST_MODELS_DIR, profile="test"))
    killed_state, clean_state = _state(resumed), _state(clean)
    assert killed_state == clean_state
    # The resumed run reports the chunks of every file it finished, as a clean run would, even
    # those a killed run had already written (not fewer: they were not committed).
    assert resumed_report["chunks_added"] == report.chunks_added - committed
    assert resumed_report["files_new"] == 48 - rows
    assert len(set(killed_state["vector_ids"])) == len(killed_state["vector_ids"])  # type: ignore[arg-type]
    q = "which service handles billing on port 8003"
    assert [h.chunk.id for h in resumed.keywords("docs").search(q, 10)] == [
        h.chunk.id for h in clean.keywords("docs").search(q, 10)
    ]
