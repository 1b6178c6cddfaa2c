"""The job store's contract, on SQLite and on a real PostgreSQL: the same tests, both backends."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import ingest.jobs as jobs_module
from ingest.jobs import SqlJobStore

DATA = b"# Title\n\nSome text.\n"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.slow)])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    """A factory of stores on one database: each call is another "host" on the same state."""
    opened: list[SqlJobStore] = []
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")

        def make() -> SqlJobStore:
            opened.append(SqlJobStore.postgres(url))
            return opened[-1]
    else:

        def make() -> SqlJobStore:
            opened.append(SqlJobStore.sqlite(tmp_path / "jobs.sqlite"))
            return opened[-1]

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store) -> SqlJobStore:  # type: ignore[no-untyped-def]
    return make_store()  # type: ignore[no-any-return]


class Clock:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = 1_000_000.0
        monkeypatch.setattr(jobs_module.time, "time", lambda: self.now)


def submit(store: SqlJobStore, source: str = "a.md", data: bytes = DATA, **kw: object):  # type: ignore[no-untyped-def]
    import hashlib

    sha = hashlib.sha256(data).hexdigest()
    return store.submit("docs", source, source.split("/")[-1], data, sha, **kw)  # type: ignore[arg-type]


def test_a_submitted_job_is_queued_with_its_file(store: SqlJobStore) -> None:
    job = submit(store)
    assert (job.state, job.attempts, job.stage, job.size) == ("queued", 0, "queued", len(DATA))
    assert store.get(job.id) == job
    assert store.read_file(job.id) == DATA
    assert store.get("nope") is None
    assert store.counts() == {"queued": 1, "running": 0, "done": 0, "failed": 0}


def test_the_same_upload_while_unfinished_is_the_same_job(store: SqlJobStore) -> None:
    first = submit(store)
    assert submit(store).id == first.id
    other = submit(store, data=b"other content")
    assert other.id != first.id
    worker = "w1"
    claimed = store.claim(worker, 60)
    assert claimed is not None and claimed.id == first.id
    store.finish(first.id, worker, {"files_new": 1}, None)
    assert submit(store).id != first.id  # finished: a new upload is a new job


def test_claim_runs_the_oldest_job_and_holds_its_source(store: SqlJobStore) -> None:
    first = submit(store)
    second = submit(store, data=b"changed")  # same source, other content
    third = submit(store, source="b.md")
    claimed = store.claim("w1", 60)
    assert claimed is not None
    assert (claimed.id, claimed.state, claimed.attempts, claimed.worker) == (
        first.id,
        "running",
        1,
        "w1",
    )
    # The second job is of a source being ingested: it waits, and the third goes first.
    nxt = store.claim("w2", 60)
    assert nxt is not None and nxt.id == third.id
    assert store.claim("w3", 60) is None
    assert store.finish(first.id, "w1", {"files_new": 1}, None)
    last = store.claim("w3", 60)
    assert last is not None and last.id == second.id


def test_finish_keeps_the_report_and_drops_the_upload(store: SqlJobStore) -> None:
    job = submit(store)
    store.claim("w1", 60)
    assert not store.finish(job.id, "someone-else", {}, None)
    assert store.heartbeat(job.id, "w1", 60, "embedding", 3, 10)
    running = store.get(job.id)
    assert running is not None and (running.stage, running.done, running.total) == (
        "embedding",
        3,
        10,
    )
    assert store.finish(job.id, "w1", {"files_new": 1, "chunks_added": 4}, None)
    done = store.get(job.id)
    assert done is not None
    assert (done.state, done.stage, done.report, done.error) == (
        "done",
        "done",
        {"files_new": 1, "chunks_added": 4},
        None,
    )
    assert done.finished_at is not None and done.finished
    with pytest.raises(FileNotFoundError):
        store.read_file(job.id)
    assert not store.heartbeat(job.id, "w1", 60, "writing", 10, 10)


def test_a_failed_run_is_retried_after_a_backoff_then_failed(
    store: SqlJobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(monkeypatch)
    job = submit(store, max_attempts=2)
    store.claim("w1", 60)
    again = store.retry_later(job.id, "w1", "StoreUnavailableError: chroma is down")
    assert again is not None and (again.state, again.error) == (
        "queued",
        "StoreUnavailableError: chroma is down",
    )
    assert store.claim("w1", 60) is None  # backing off: 2 s after the first attempt
    clock.now += 2.5
    claimed = store.claim("w2", 60)
    assert claimed is not None and claimed.attempts == 2
    last = store.retry_later(job.id, "w2", "still down")
    assert last is not None and (last.state, last.error) == ("failed", "still down")
    assert store.claim("w1", 60) is None
    assert store.retry_later(job.id, "w2", "late") is None  # no longer running


def test_a_dead_workers_job_is_taken_over_then_failed_after_the_last_attempt(
    make_store,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    clock = Clock(monkeypatch)
    host_a, host_b = make_store(), make_store()
    job = submit(host_a, max_attempts=2)
    assert host_a.claim("dead-1", 30) is not None
    clock.now += 20
    assert host_b.claim("w2", 30) is None  # its lease still runs
    clock.now += 11
    taken = host_b.claim("w2", 30)
    assert taken is not None and (taken.id, taken.attempts, taken.worker) == (job.id, 2, "w2")
    assert not host_a.heartbeat(job.id, "dead-1", 30, "embedding", 1, 2)  # it lost the job
    clock.now += 31  # w2 dies too: no attempt left
    assert host_a.claim("w3", 30) is None
    failed = host_a.get(job.id)
    assert failed is not None and failed.state == "failed"
    assert failed.error is not None and "worker lost" in failed.error and "w2" in failed.error


def test_list_is_newest_first_by_collection_and_state(
    store: SqlJobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(monkeypatch)
    ids = []
    for i in range(3):
        ids.append(submit(store, source=f"{i}.md").id)
        clock.now += 1
    store.submit("other", "x.md", "x.md", DATA, "sha")
    assert [j.id for j in store.list("docs")] == ids[::-1]
    assert [j.id for j in store.list("docs", limit=2)] == ids[:0:-1]
    store.claim("w", 60)
    assert [j.id for j in store.list("docs", state="running")] == [ids[0]]
    assert len(store.list()) == 4


def test_concurrent_claims_from_two_hosts_never_share_a_job(make_store) -> None:  # type: ignore[no-untyped-def]
    host_a, host_b = make_store(), make_store()
    submitted = {submit(host_a, source=f"doc-{i}.md").id for i in range(40)}
    claimed: list[str] = []
    lock = threading.Lock()

    def drain(store: SqlJobStore, name: str) -> None:
        while (job := store.claim(name, 60)) is not None:
            with lock:
                claimed.append(job.id)
            store.finish(job.id, name, {}, None)

    threads = [
        threading.Thread(target=drain, args=(store, f"w{i}"))
        for i, store in enumerate([host_a, host_b, host_a, host_b])
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(submitted)  # each once, none lost
    assert host_b.counts()["done"] == 40
