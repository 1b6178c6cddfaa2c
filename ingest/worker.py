"""The ingest worker: claims jobs from the job store and runs them through the pipeline.

``docqa worker`` runs one in its own process (one per GPU, or per CPU host); ``docqa serve``
runs one in a thread unless ``DOCQA_WORKER=false``. Several workers on several hosts share one
job store (``DOCQA_DATABASE_URL``). While a job runs, a heartbeat thread renews its lease and
writes its progress every ``lease_s / 4`` seconds; a worker that dies stops heartbeating, and
another worker takes the job over when the lease expires (ingest/jobs.py). Stopping (SIGTERM,
the service's shutdown) lets the job in hand finish, then claims nothing more.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

from ingest.jobs import Job, JobStore
from ingest.manifest import Manifest
from ingest.pipeline import Ingestor

log = logging.getLogger(__name__)

IngestorFor = Callable[[str], Ingestor]


def worker_name() -> str:
    """host:pid:random, so a job's ``worker`` says which process ran it."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class JobWorker:
    def __init__(
        self,
        store: JobStore,
        ingestor_for: IngestorFor,
        manifest: Manifest,
        *,
        lease_s: float = 60.0,
        poll_s: float = 0.5,
        name: str | None = None,
    ) -> None:
        self.store = store
        self.ingestor_for = ingestor_for
        self.manifest = manifest
        self.lease_s = lease_s
        self.poll_s = poll_s
        self.name = name or worker_name()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------ the loop
    def run(self) -> None:
        """Claim and run jobs until `stop`; a store that cannot be reached is logged and
        retried at the poll interval (a database restart must not end the worker)."""
        log.info("ingest worker %s started", self.name)
        while not self._stop.is_set():
            try:
                ran = self.run_once()
            except Exception:
                log.exception("ingest worker %s: the job store failed; retrying", self.name)
                ran = False
            if not ran:
                self._stop.wait(self.poll_s)
        log.info("ingest worker %s stopped", self.name)

    def run_once(self) -> bool:
        """Claim one job and run it; False when there was none."""
        job = self.store.claim(self.name, self.lease_s)
        if job is None:
            return False
        self._run(job)
        return True

    def start(self) -> None:
        """Run in a daemon thread (the in-process worker of ``docqa serve``)."""
        self._thread = threading.Thread(target=self.run, name="ingest-worker", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Claim nothing more (safe from a signal handler); the job in hand runs on."""
        self._stop.set()

    def stop(self, timeout: float | None = None) -> None:
        """Claim nothing more; wait up to ``timeout`` for the job in hand to finish."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    # ------------------------------------------------------------------------ one job
    def _run(self, job: Job) -> None:
        log.info(
            "job %s: ingesting %s into %s (attempt %d of %d)",
            job.id,
            job.source,
            job.collection,
            job.attempts,
            job.max_attempts,
        )
        heart = _Heartbeat(self.store, job, self.name, self.lease_s)
        heart.start()
        try:
            conflict = self._conflict(job)
            if conflict is not None:
                self.store.finish(job.id, self.name, None, conflict)
                log.warning("job %s failed: %s", job.id, conflict)
                return
            with tempfile.TemporaryDirectory(prefix="docqa-job-") as folder:
                path = Path(folder) / job.filename
                path.write_bytes(self.store.read_file(job.id))
                report = self.ingestor_for(job.collection).ingest_file(
                    path, job.source, stage=heart.progress
                )
        except Exception as exc:  # the store or an index failed: worth another try
            log.exception("job %s: attempt %d failed", job.id, job.attempts)
            heart.stop()
            self.store.retry_later(job.id, self.name, f"{type(exc).__name__}: {exc}")
            return
        finally:
            heart.stop()
        data = report.to_json()
        data["failures"] = [{"path": job.source, "error": f.error} for f in report.failures]
        error = None
        if report.files_failed:  # the file itself is bad: another try cannot help
            reasons = "; ".join(f.error for f in report.failures)
            error = f"{job.source} could not be ingested: {reasons}"
        if not self.store.finish(job.id, self.name, data, error):
            log.warning("job %s: finished after its lease was taken over", job.id)
        log.info("job %s %s: %s", job.id, "failed" if error else "done", error or report.summary())

    def _conflict(self, job: Job) -> str | None:
        """The upload would silently replace a different document: refuse, as the API does
        at submit time (checked again here, for a document that arrived since)."""
        existing = self.manifest.get(job.collection, job.source)
        if existing is None or existing.content_sha == job.sha256 or job.replace:
            return None
        return (
            f"collection {job.collection!r} already has a different document with source "
            f"{job.source!r} (doc_id {existing.doc_id}); upload with replace=true to replace it"
        )


class _Heartbeat:
    """Renews a job's lease and writes its latest progress from a thread of its own, so a long
    embedding call cannot starve the lease."""

    def __init__(self, store: JobStore, job: Job, worker: str, lease_s: float) -> None:
        self._store, self._job, self._worker, self._lease_s = store, job, worker, lease_s
        self._progress = ("parsing", 0, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"job-{job.id[:8]}", daemon=True)

    def progress(self, stage: str, done: int, total: int) -> None:
        self._progress = (stage, done, total)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def _beat(self) -> None:
        interval = self._lease_s / 4
        last = None
        while not self._stop.wait(min(interval, 1.0) if last != self._progress else interval):
            current = self._progress
            try:
                mine = self._store.heartbeat(self._job.id, self._worker, self._lease_s, *current)
            except Exception:
                log.warning("job %s: heartbeat failed", self._job.id, exc_info=True)
                continue
            last = current
            if not mine:
                log.warning("job %s: no longer this worker's (its lease expired)", self._job.id)
                return
