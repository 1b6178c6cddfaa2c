"""`docqa ingest --url URL`: upload files to a docqa server as ingest jobs, then follow the jobs.

The files are found as a local ingest finds them (``ingest.discover``, the parsers' suffixes).
Each goes up as ``POST /v1/collections/{c}/documents`` with ``source`` = its path relative to
the folder named on the command line (a file named directly: its name), so two folders'
``report.md`` stay two documents, and with ``replace=true``, so a changed file replaces its
document as a local ingest does. Then the jobs are polled oldest first, the order workers take
them in: each poll asks for the oldest unfinished job only, so a thousand queued files cost a
request a second, not a thousand. A 429 or 503 is waited out (``Retry-After``); an unreachable
server or a refused key is fatal (``RemoteError``); any other refusal fails that file only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from tqdm import tqdm

from ingest.discover import discover
from ingest.parsers import SUPPORTED_SUFFIXES

POLL_S = 1.0
BUSY_RETRIES = 20  # a 429 or 503 answered this many times in a row is fatal
BUSY_WAIT_S = 30.0  # the longest Retry-After honoured
COUNTS = ("files_new", "files_changed", "files_unchanged", "files_failed")


class RemoteError(Exception):
    """The server cannot be used at all: unreachable, the key refused, busy for too long."""


class RefusedError(Exception):
    """The server refused one request (409, 413, 415, 422...); ``str`` is its message."""


@dataclass
class Upload:
    """One file to upload: its ``source``, then its job (the server's JSON) or why it failed."""

    path: Path
    source: str
    job: dict[str, Any] | None = None
    error: str | None = None

    @property
    def state(self) -> str:
        if self.job is None:
            return "failed" if self.error else "pending"
        return str(self.job["state"])

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed")

    @property
    def reason(self) -> str:
        job_error = self.job.get("error") if self.job else None
        return self.error or job_error or "no reason given"


def plan(paths: Iterable[Path]) -> list[Upload]:
    """The files under ``paths`` with their sources (``docs/a/x.md`` under ``docs`` is ``a/x.md``);
    a path that cannot be read is an upload failed already."""
    uploads: list[Upload] = []
    for given in paths:
        root = Path(given).absolute()
        base = root if root.is_dir() else root.parent
        found = discover([root], SUPPORTED_SUFFIXES)
        uploads += [Upload(f, f.relative_to(base).as_posix()) for f in found.files]
        uploads += [Upload(Path(p), Path(p).name, error=why) for p, why in found.failures]
    return uploads


class JobClient:
    """The two calls of a remote ingest, on one connection pool. ``transport`` is for tests."""

    def __init__(
        self,
        url: str,
        api_key: str | None,
        *,
        timeout_s: float = 600.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        try:
            self.http = httpx.Client(
                base_url=self.url,
                headers=headers,
                timeout=httpx.Timeout(timeout_s, connect=10.0),
                transport=transport,
            )
        except (httpx.InvalidURL, httpx.UnsupportedProtocol, ValueError) as exc:
            raise RemoteError(f"{url!r} is not a valid http(s) URL") from exc

    def close(self) -> None:
        self.http.close()

    def upload(self, collection: str, item: Upload) -> dict[str, Any]:
        """Uploads ``item``; its job."""
        try:
            content = item.path.read_bytes()
        except OSError as exc:
            raise RefusedError(f"cannot read the file: {exc.strerror or exc}") from exc
        return self._call(
            "POST",
            f"/v1/collections/{quote(collection, safe='')}/documents",
            files={"file": (item.path.name, content)},
            data={"source": item.source, "replace": "true"},
        )

    def job(self, job_id: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/jobs/{quote(job_id, safe='')}")

    def check(self, collection: str) -> None:
        """Before any upload: the server answers, takes the key and the collection's name."""
        try:
            self._call("GET", "/v1/jobs", params={"collection": collection, "limit": 1}, key="jobs")
        except RefusedError as exc:
            raise RemoteError(str(exc)) from exc

    def _call(self, method: str, path: str, key: str = "state", **kw: Any) -> dict[str, Any]:
        """The JSON object answered, which must have ``key``."""
        for _ in range(BUSY_RETRIES):
            try:
                response = self.http.request(method, path, **kw)
            except httpx.TransportError as exc:
                raise RemoteError(f"cannot reach the docqa server at {self.url}: {exc}") from exc
            if response.status_code in (429, 503):
                time.sleep(_retry_after(response))
                continue
            if response.status_code in (401, 403):
                raise RemoteError(
                    f"the server refused the API key ({response.status_code}): "
                    f"{_message(response)}; pass --api-key or set DOCQA_API_KEYS"
                )
            if response.status_code >= 400:
                raise RefusedError(f"{response.status_code}: {_message(response)}")
            try:
                data = response.json()
            except ValueError as exc:
                raise RemoteError(f"{self.url} is not a docqa server ({path}: not JSON)") from exc
            if not isinstance(data, dict) or key not in data:
                raise RemoteError(f"{self.url} is not a docqa server ({path}: no {key!r})")
            return data
        raise RemoteError(f"the server at {self.url} stayed busy; try again later")


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text.strip()[:200] or response.reason_phrase


def _retry_after(response: httpx.Response) -> float:
    after = response.headers.get("retry-after", "")
    return min(float(after), BUSY_WAIT_S) if after.isdigit() else 1.0


def upload_all(
    client: JobClient, collection: str, uploads: list[Upload], say: Callable[[str], None]
) -> None:
    """Upload each file not already failed, saying each job's id or refusal."""
    for item in uploads:
        if item.error is None:
            try:
                item.job = client.upload(collection, item)
            except RefusedError as exc:
                item.error = str(exc)
        if item.job is not None:
            say(f"job {item.job['id']} {item.job['state']}: {item.source}")
        else:
            say(f"refused {item.source}: {item.error}")


def follow(
    client: JobClient, uploads: list[Upload], *, poll_s: float = POLL_S, quiet: bool
) -> None:
    """Poll the unfinished jobs, oldest first, until every one has finished; a bar of files."""
    pending = [u for u in uploads if not u.finished]
    with tqdm(
        total=len(uploads),
        initial=len(uploads) - len(pending),
        desc="ingest",
        unit="file",
        disable=quiet,
    ) as bar:
        while pending:
            item = pending[0]
            assert item.job is not None
            item.job = client.job(str(item.job["id"]))
            if item.finished:
                pending.pop(0)
                bar.set_postfix_str("", refresh=False)
                bar.update(1)
                continue
            bar.set_postfix_str(f"{item.source}: {_stage(item.job)}", refresh=True)
            time.sleep(poll_s)


def _stage(job: dict[str, Any]) -> str:
    progress = job.get("progress") or {}
    stage = str(progress.get("stage", job["state"]))
    if stage == "embedding" and progress.get("chunks_total"):
        return f"embedding {progress['chunks_done']}/{progress['chunks_total']} chunks"
    return stage


def summary(collection: str, uploads: list[Upload]) -> str:
    """Like a local ingest's report: the counts of the jobs' reports, then each failure."""
    totals = dict.fromkeys((*COUNTS, "chunks_added", "chunks_removed"), 0)
    for item in uploads:
        report = (item.job or {}).get("report") or {}
        for key in totals:
            totals[key] += int(report.get(key, 0))
    failed = [u for u in uploads if u.state == "failed"]
    unfinished = [u for u in uploads if not u.finished]
    lines = [
        f"collection {collection}: files new {totals['files_new']}, changed "
        f"{totals['files_changed']}, unchanged {totals['files_unchanged']}, failed {len(failed)}"
        + (f", queued or running {len(unfinished)}" if unfinished else ""),
        f"chunks added {totals['chunks_added']}, removed {totals['chunks_removed']}",
    ]
    lines += [f"  FAILED {u.source}: {u.reason}" for u in failed]
    return "\n".join(lines)


def as_json(collection: str, uploads: list[Upload]) -> str:
    jobs = [
        {
            "source": u.source,
            "state": u.state,
            "job": u.job,
            "error": u.error if u.job is None else None,
        }
        for u in uploads
    ]
    return json.dumps({"collection": collection, "jobs": jobs}, ensure_ascii=False)


def exit_code(uploads: list[Upload]) -> int:
    """0 when no file failed, 2 when some did (as a local ingest's report)."""
    return 2 if any(u.state == "failed" for u in uploads) else 0


def run(
    client: JobClient,
    paths: list[Path],
    collection: str,
    *,
    say: Callable[[str], None],
    wait: bool = True,
    quiet: bool = False,
    poll_s: float = POLL_S,
) -> list[Upload]:
    """Upload the files under ``paths`` into ``collection``; with ``wait``, until their jobs
    have finished. Raises ``RemoteError`` when the server cannot be used."""
    client.check(collection)
    uploads = plan(paths)
    upload_all(client, collection, uploads, say)
    if wait:
        follow(client, uploads, poll_s=poll_s, quiet=quiet)
    return uploads
