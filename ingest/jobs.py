"""Ingest jobs: a durable queue of uploads for workers, in SQLite (default) or PostgreSQL.

Why a table of our own and not a queue library: a job must be listed by collection, show its
progress and its ingest report, survive restarts, and be retried when its worker dies. Huey takes
a task off its queue when a worker reads it, so a worker killed mid-job loses the job;
persist-queue serves one process; procrastinate is PostgreSQL-only and asynchronous, and the
single-box default must stay an embedded file. A jobs table with leases, in the database that
already holds the manifest and the keyword index (``DOCQA_DATABASE_URL``, else SQLite beside
them), gives all of it: one backup, no new server, and PostgreSQL's row locks where several
workers claim (docs/SCALING.md).

Life of a job:

- ``queued`` -> ``running``: a worker claims it; ``attempts`` + 1, a lease of ``lease_s``
  seconds, renewed by the worker's heartbeats while it runs.
- ``running`` -> ``done`` with the ingest report, or ``failed`` at once when the file cannot be
  ingested (corrupt, no text, a conflicting document): trying again cannot help.
- ``running`` -> ``queued`` after a backoff when the run raised (a store unreachable), until
  ``max_attempts`` tries; then ``failed`` with the last error.
- A ``running`` job whose lease has expired lost its worker (killed, host gone): any worker
  claims it again, and the pipeline's resume makes the rerun duplicate nothing; past
  ``max_attempts`` claims it is ``failed`` ("worker lost").

Claims are serialised (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: a transaction-level advisory
lock), and a job is not claimed while another of the same (collection, source) runs, so two
uploads of one document never interleave. A second upload of the same content to the same
source while the first is unfinished returns the first job. The upload's bytes stay in
``docqa_job_files`` until the job ends, so a worker on another host reads them from the database:
no shared disk. Times are the hosts' wall clocks (``time.time``): leases are tens of seconds,
far above the skew of synchronised clocks.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from index.database import connect, create_schema

JobState = Literal["queued", "running", "done", "failed"]
STATES: tuple[JobState, ...] = ("queued", "running", "done", "failed")
UNFINISHED: tuple[JobState, ...] = ("queued", "running")
MAX_BACKOFF_S = 60.0

_COLUMNS = (
    "id, collection, source, filename, sha256, size, replace_doc, state, attempts, max_attempts, "
    "stage, done, total, created_at, started_at, finished_at, lease_until, not_before, worker, "
    "error, report"
)
_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS docqa_jobs (
    id TEXT PRIMARY KEY, collection TEXT NOT NULL, source TEXT NOT NULL, filename TEXT NOT NULL,
    sha256 TEXT NOT NULL, size INTEGER NOT NULL, replace_doc INTEGER NOT NULL, state TEXT NOT NULL,
    attempts INTEGER NOT NULL, max_attempts INTEGER NOT NULL, stage TEXT NOT NULL,
    done INTEGER NOT NULL, total INTEGER NOT NULL, created_at REAL NOT NULL, started_at REAL,
    finished_at REAL, lease_until REAL, not_before REAL NOT NULL, worker TEXT, error TEXT,
    report TEXT);
CREATE INDEX IF NOT EXISTS docqa_jobs_state ON docqa_jobs (state, not_before, created_at);
CREATE INDEX IF NOT EXISTS docqa_jobs_collection ON docqa_jobs (collection, created_at);
CREATE TABLE IF NOT EXISTS docqa_job_files (job_id TEXT PRIMARY KEY, data BLOB NOT NULL);
"""
_POSTGRES_SCHEMA = (
    _SQLITE_SCHEMA.replace("REAL", "DOUBLE PRECISION")
    .replace("BLOB", "BYTEA")
    .replace("size INTEGER", "size BIGINT")
)
# PostgreSQL's advisory lock key for claims: any constant of our own ("docqa-jobs" in hex).
_CLAIM_LOCK = 0x646F637161_6A6F6273 & 0x7FFFFFFFFFFFFFFF


@dataclass(frozen=True)
class Job:
    id: str
    collection: str
    source: str
    filename: str
    sha256: str
    size: int
    replace: bool
    state: JobState
    attempts: int
    max_attempts: int
    stage: str  # queued, parsing, embedding, writing, done, failed
    done: int  # chunks embedded so far in this attempt
    total: int  # chunks to embed in this attempt (0 until the file is chunked)
    created_at: float
    started_at: float | None
    finished_at: float | None
    lease_until: float | None
    not_before: float
    worker: str | None
    error: str | None
    report: dict[str, Any] | None

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed")


class JobStore(Protocol):
    def submit(
        self,
        collection: str,
        source: str,
        filename: str,
        data: bytes,
        sha256: str,
        *,
        replace: bool = False,
        max_attempts: int = 3,
    ) -> Job: ...

    def get(self, job_id: str) -> Job | None: ...

    def list(
        self, collection: str | None = None, state: JobState | None = None, limit: int = 100
    ) -> list[Job]: ...

    def counts(self) -> dict[str, int]: ...

    def claim(self, worker: str, lease_s: float) -> Job | None: ...

    def read_file(self, job_id: str) -> bytes: ...

    def heartbeat(
        self, job_id: str, worker: str, lease_s: float, stage: str, done: int, total: int
    ) -> bool: ...

    def finish(
        self, job_id: str, worker: str, report: dict[str, Any] | None, error: str | None
    ) -> bool: ...

    def retry_later(self, job_id: str, worker: str, error: str) -> Job | None: ...

    def close(self) -> None: ...


class SqlJobStore:
    """The job table on SQLite or PostgreSQL: one SQL text, two placeholder styles.

    One connection guarded by a lock, like the manifest: calls from threads are serialised.
    """

    def __init__(self, conn: Any, dialect: Literal["sqlite", "postgres"]) -> None:
        self._conn = conn
        self._dialect = dialect
        self._lock = threading.Lock()
        if dialect == "postgres":  # two hosts starting at once must not race in CREATE TABLE
            create_schema(conn, _POSTGRES_SCHEMA)
            return
        with self._transaction() as cur:
            for statement in filter(str.strip, _SQLITE_SCHEMA.split(";")):
                cur.execute(statement)

    @classmethod
    def sqlite(cls, path: Path) -> SqlJobStore:
        path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we open transactions ourselves (BEGIN IMMEDIATE for writes, so
        # two processes' claims cannot both read the same queued job).
        conn = sqlite3.connect(path, check_same_thread=False, timeout=30, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        return cls(conn, "sqlite")

    @classmethod
    def postgres(cls, url: str) -> SqlJobStore:
        return cls(connect(url, autocommit=True), "postgres")

    # ------------------------------------------------------------------------------ plumbing
    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        """A cursor in one transaction, committed at the end, rolled back on an error."""
        with self._lock:
            if self._dialect == "sqlite":
                cur = self._conn.cursor()
                cur.execute("BEGIN IMMEDIATE")
                try:
                    yield _Cursor(cur, "?")
                except BaseException:
                    self._conn.rollback()
                    raise
                self._conn.commit()
            else:
                with self._conn.transaction(), self._conn.cursor() as cur:
                    yield _Cursor(cur, "%s")

    def _select(self, cur: _Cursor, where: str, params: Sequence[Any], tail: str = "") -> list[Job]:
        cur.execute(f"SELECT {_COLUMNS} FROM docqa_jobs WHERE {where} {tail}", params)
        return [_job(row) for row in cur.fetchall()]

    # ------------------------------------------------------------------------------ writers
    def submit(
        self,
        collection: str,
        source: str,
        filename: str,
        data: bytes,
        sha256: str,
        *,
        replace: bool = False,
        max_attempts: int = 3,
    ) -> Job:
        """Queue an upload; the unfinished job of the same content and source, if there is one."""
        now = time.time()
        with self._transaction() as cur:
            same = self._select(
                cur,
                "collection = ? AND source = ? AND sha256 = ? AND state IN ('queued', 'running')",
                (collection, source, sha256),
                "ORDER BY created_at LIMIT 1",
            )
            if same:
                return same[0]
            job_id = uuid.uuid4().hex
            cur.execute(
                f"INSERT INTO docqa_jobs ({_COLUMNS}) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, 'queued', 0, ?, 'queued', 0, 0, ?, NULL, NULL, NULL, ?, "
                "NULL, NULL, NULL)",
                (
                    job_id,
                    collection,
                    source,
                    filename,
                    sha256,
                    len(data),
                    int(replace),
                    max_attempts,
                    now,
                    now,
                ),
            )
            cur.execute("INSERT INTO docqa_job_files (job_id, data) VALUES (?, ?)", (job_id, data))
            return self._select(cur, "id = ?", (job_id,))[0]

    def claim(self, worker: str, lease_s: float) -> Job | None:
        """The oldest claimable job, now running under ``worker``'s lease; None if none is.

        Claimable: queued and past its backoff, or running with an expired lease (its worker
        died). Jobs whose source is being ingested by a live job wait. A dead worker's job past
        its last attempt is failed here, and the next one is looked at.
        """
        now = time.time()
        with self._transaction() as cur:
            if self._dialect == "postgres":
                cur.execute("SELECT pg_advisory_xact_lock(?)", (_CLAIM_LOCK,))
            while True:
                found = self._select(
                    cur,
                    "((state = 'queued' AND not_before <= ?) OR (state = 'running' AND "
                    "lease_until < ?)) AND NOT EXISTS (SELECT 1 FROM docqa_jobs AS live WHERE "
                    "live.state = 'running' AND live.lease_until >= ? AND "
                    "live.collection = docqa_jobs.collection AND live.source = docqa_jobs.source)",
                    (now, now, now),
                    "ORDER BY created_at LIMIT 1",
                )
                if not found:
                    return None
                job = found[0]
                if job.state == "running" and job.attempts >= job.max_attempts:
                    error = (
                        f"worker lost: {job.worker} stopped heartbeating; "
                        f"{job.attempts} of {job.max_attempts} attempts used"
                    )
                    self._end(cur, job.id, "failed", now, None, error)
                    continue
                cur.execute(
                    "UPDATE docqa_jobs SET state = 'running', attempts = attempts + 1, worker = ?, "
                    "lease_until = ?, started_at = ?, stage = 'parsing', done = 0, total = 0 "
                    "WHERE id = ?",
                    (worker, now + lease_s, now, job.id),
                )
                return self._select(cur, "id = ?", (job.id,))[0]

    def heartbeat(
        self, job_id: str, worker: str, lease_s: float, stage: str, done: int, total: int
    ) -> bool:
        """Renew ``worker``'s lease and record progress; False when the job is no longer its
        own (its lease expired and another worker took it, or it was ended)."""
        with self._transaction() as cur:
            cur.execute(
                "UPDATE docqa_jobs SET lease_until = ?, stage = ?, done = ?, total = ? "
                "WHERE id = ? AND worker = ? AND state = 'running'",
                (time.time() + lease_s, stage, done, total, job_id, worker),
            )
            return bool(cur.rowcount)

    def finish(
        self, job_id: str, worker: str, report: dict[str, Any] | None, error: str | None
    ) -> bool:
        """End ``worker``'s run: done with its report, or failed with ``error`` (and the report
        when there is one). False when the job was no longer the worker's."""
        with self._transaction() as cur:
            mine = self._select(
                cur, "id = ? AND worker = ? AND state = 'running'", (job_id, worker)
            )
            if not mine:
                return False
            self._end(
                cur, job_id, "done" if error is None else "failed", time.time(), report, error
            )
            return True

    def retry_later(self, job_id: str, worker: str, error: str) -> Job | None:
        """The run raised: queue the job again after a backoff (2, 4, 8 ... s, at most a
        minute), or fail it after its last attempt. None when it was not the worker's."""
        now = time.time()
        with self._transaction() as cur:
            mine = self._select(
                cur, "id = ? AND worker = ? AND state = 'running'", (job_id, worker)
            )
            if not mine:
                return None
            job = mine[0]
            if job.attempts >= job.max_attempts:
                self._end(cur, job_id, "failed", now, None, error)
            else:
                delay = min(MAX_BACKOFF_S, 2.0**job.attempts)
                cur.execute(
                    "UPDATE docqa_jobs SET state = 'queued', stage = 'queued', lease_until = NULL, "
                    "worker = NULL, error = ?, not_before = ? WHERE id = ?",
                    (error, now + delay, job_id),
                )
            return self._select(cur, "id = ?", (job_id,))[0]

    def _end(
        self,
        cur: _Cursor,
        job_id: str,
        state: JobState,
        now: float,
        report: dict[str, Any] | None,
        error: str | None,
    ) -> None:
        cur.execute(
            "UPDATE docqa_jobs SET state = ?, stage = ?, finished_at = ?, lease_until = NULL, "
            "error = ?, report = ? WHERE id = ?",
            (state, state, now, error, None if report is None else json.dumps(report), job_id),
        )
        cur.execute("DELETE FROM docqa_job_files WHERE job_id = ?", (job_id,))

    # ------------------------------------------------------------------------------ readers
    def get(self, job_id: str) -> Job | None:
        with self._transaction() as cur:
            found = self._select(cur, "id = ?", (job_id,))
        return found[0] if found else None

    def list(
        self, collection: str | None = None, state: JobState | None = None, limit: int = 100
    ) -> list[Job]:
        """The newest ``limit`` jobs, newest first, of one collection and state if given."""
        where, params = ["1 = 1"], []
        if collection is not None:
            where.append("collection = ?")
            params.append(collection)
        if state is not None:
            where.append("state = ?")
            params.append(state)
        with self._transaction() as cur:
            return self._select(
                cur, " AND ".join(where), [*params, limit], "ORDER BY created_at DESC LIMIT ?"
            )

    def counts(self) -> dict[str, int]:
        """Jobs by state (every state present, 0 when none): queue depth and backlog."""
        with self._transaction() as cur:
            cur.execute("SELECT state, COUNT(*) FROM docqa_jobs GROUP BY state", ())
            found = {state: int(n) for state, n in cur.fetchall()}
        return {state: found.get(state, 0) for state in STATES}

    def read_file(self, job_id: str) -> bytes:
        with self._transaction() as cur:
            cur.execute("SELECT data FROM docqa_job_files WHERE job_id = ?", (job_id,))
            row = cur.fetchone()
        if row is None:
            raise FileNotFoundError(f"the upload of job {job_id} is gone")
        return bytes(row[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class _Cursor:
    """A DB-API cursor that takes ``?`` placeholders on either database."""

    def __init__(self, cursor: Any, placeholder: str) -> None:
        self._cursor = cursor
        self._placeholder = placeholder

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        if self._placeholder != "?":
            sql = sql.replace("?", self._placeholder)
        self._cursor.execute(sql, tuple(params))

    def fetchall(self) -> list[tuple[Any, ...]]:
        return list(self._cursor.fetchall())

    def fetchone(self) -> tuple[Any, ...] | None:
        row = self._cursor.fetchone()
        return None if row is None else tuple(row)

    @property
    def rowcount(self) -> int:
        return int(self._cursor.rowcount)


def _job(row: tuple[Any, ...]) -> Job:
    (
        job_id,
        collection,
        source,
        filename,
        sha,
        size,
        replace,
        state,
        attempts,
        max_attempts,
        stage,
        done,
        total,
        created,
        started,
        finished,
        lease,
        not_before,
        worker,
        error,
        report,
    ) = row
    return Job(
        job_id,
        collection,
        source,
        filename,
        sha,
        int(size),
        bool(replace),
        state,
        int(attempts),
        int(max_attempts),
        stage,
        int(done),
        int(total),
        float(created),
        started,
        finished,
        lease,
        float(not_before),
        worker,
        error,
        None if report is None else json.loads(report),
    )
