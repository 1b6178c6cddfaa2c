"""What the chat UI receives from the docqa HTTP API, as small typed records.

The UI reaches the service over HTTP only, so it does not reuse the service's pydantic schemas:
these records mirror the documented JSON (README, "API") and are built from it with ``from_json``,
which raises ``ValueError`` on a body that does not have the documented shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def _field(data: Any, name: str) -> Any:
    if not isinstance(data, dict) or name not in data:
        raise ValueError(f"missing field {name!r}")
    return data[name]


def _list(data: Any, name: str) -> list[Any]:
    value = _field(data, name)
    if not isinstance(value, list):
        raise ValueError(f"field {name!r} is not a list")
    return value


@dataclass(frozen=True)
class Citation:
    """One numbered source of an answer: the passage (``snippet``) the ``[n]`` marker points to."""

    n: int
    source: str
    title: str
    page: int | None
    snippet: str
    score: float
    chunk_id: str = ""

    @classmethod
    def from_json(cls, data: Any) -> Citation:
        page = _field(data, "page")
        return cls(
            n=int(_field(data, "n")),
            source=str(_field(data, "source")),
            title=str(_field(data, "title") or ""),
            page=None if page is None else int(page),
            snippet=str(_field(data, "snippet")),
            score=float(_field(data, "score")),
            chunk_id=str(data.get("chunk_id", "")),
        )


@dataclass(frozen=True)
class Answer:
    """The final answer of ``POST /v1/ask``: text with ``[n]`` markers, sources and flags."""

    answer: str
    citations: list[Citation]
    confidence: float
    low_confidence: bool
    declined: bool
    degraded: bool
    query: str = ""
    timings_ms: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Any) -> Answer:
        timings = data.get("timings_ms") if isinstance(data, dict) else None
        return cls(
            answer=str(_field(data, "answer")),
            citations=[Citation.from_json(c) for c in _list(data, "citations")],
            confidence=float(_field(data, "confidence")),
            low_confidence=bool(_field(data, "low_confidence")),
            declined=bool(_field(data, "declined")),
            degraded=bool(_field(data, "degraded")),
            query=str(data.get("query") or ""),
            timings_ms={str(k): float(v) for k, v in (timings or {}).items()},
        )

    def citation(self, n: int) -> Citation | None:
        return next((c for c in self.citations if c.n == n), None)


@dataclass(frozen=True)
class Collection:
    name: str
    chunks: int
    documents: int

    @classmethod
    def from_json(cls, data: Any) -> Collection:
        return cls(
            name=str(_field(data, "name")),
            chunks=int(_field(data, "chunks")),
            documents=int(_field(data, "documents")),
        )


@dataclass(frozen=True)
class UploadFailure:
    path: str
    error: str


@dataclass(frozen=True)
class UploadReport:
    """The ingest report of one uploaded file (``POST /v1/collections/{name}/documents``)."""

    files_new: int
    files_changed: int
    files_unchanged: int
    files_failed: int
    failures: list[UploadFailure]
    chunks_added: int
    chunks_removed: int
    seconds: float

    @classmethod
    def from_json(cls, data: Any) -> UploadReport:
        return cls(
            files_new=int(_field(data, "files_new")),
            files_changed=int(_field(data, "files_changed")),
            files_unchanged=int(_field(data, "files_unchanged")),
            files_failed=int(_field(data, "files_failed")),
            failures=[
                UploadFailure(str(_field(f, "path")), str(_field(f, "error")))
                for f in _list(data, "failures")
            ],
            chunks_added=int(_field(data, "chunks_added")),
            chunks_removed=int(_field(data, "chunks_removed")),
            seconds=float(_field(data, "seconds")),
        )


@dataclass(frozen=True)
class Job:
    """An ingest job (``GET /v1/jobs/{id}``): an upload queued for, or run by, a worker.

    ``stage`` is queued, parsing, embedding, writing, done or failed; ``chunks_done`` of
    ``chunks_total`` are embedded (0 of 0 until the file is chunked). A job that is done has its
    ``report``; one that failed has its ``error`` (and its report when the file itself was bad).
    """

    id: str
    collection: str
    source: str
    state: str
    attempts: int
    max_attempts: int
    stage: str
    chunks_done: int
    chunks_total: int
    error: str | None = None
    report: UploadReport | None = None

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed")

    @classmethod
    def from_json(cls, data: Any) -> Job:
        progress = _field(data, "progress")
        report = data.get("report")
        error = data.get("error")
        state = str(_field(data, "state"))
        if state not in ("queued", "running", "done", "failed"):
            raise ValueError(f"unknown job state {state!r}")
        return cls(
            id=str(_field(data, "id")),
            collection=str(_field(data, "collection")),
            source=str(_field(data, "source")),
            state=state,
            attempts=int(_field(data, "attempts")),
            max_attempts=int(_field(data, "max_attempts")),
            stage=str(_field(progress, "stage")),
            chunks_done=int(_field(progress, "chunks_done")),
            chunks_total=int(_field(progress, "chunks_total")),
            error=None if error is None else str(error),
            report=None if report is None else UploadReport.from_json(report),
        )
