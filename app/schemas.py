"""Request and response bodies of the HTTP API (pydantic), separate from routes and logic."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

from app.answering import Citation

MAX_TOP_K = 50
SNIPPET_CHARS = 300  # of a cited passage, in the response (the UI shows the passage on demand)


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


class Filters(BaseModel):
    """Restrict retrieval to some documents: by source path or by document id (any of a list)."""

    model_config = {"extra": "forbid"}
    source: str | list[str] | None = None
    doc_id: str | list[str] | None = None

    def as_dict(self) -> dict[str, str | list[str]]:
        return {k: v for k, v in (("source", self.source), ("doc_id", self.doc_id)) if v}


class RetrieveRequest(BaseModel):
    model_config = {"extra": "forbid"}
    question: str = Field(..., description="The question or search text.")
    collection: str | None = Field(None, description="Default: the server's collection.")
    top_k: int = Field(5, ge=1, le=MAX_TOP_K)
    filters: Filters | None = None
    mode: Literal["hybrid", "dense", "keyword"] | None = None

    @field_validator("question")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("question must not be empty")
        return value


class Turn(BaseModel):
    model_config = {"extra": "forbid"}
    role: Literal["user", "assistant"]
    content: str = Field(..., max_length=20_000)


class AskRequest(RetrieveRequest):
    stream: bool = False
    history: list[Turn] | None = Field(None, max_length=50)


class CitationOut(BaseModel):
    n: int
    chunk_id: str
    source: str
    title: str
    page: int | None
    snippet: str
    score: float


def citation_out(c: Citation) -> CitationOut:
    """The HTTP form of a citation, field by field from the hit it cites: a field renamed on
    either side is a type error (mypy's pydantic plugin checks the keywords), not a 422 at run
    time, and the API's field names stay put when the domain's change."""
    chunk = c.hit.chunk
    text = chunk.text
    snippet = text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1] + "…"
    return CitationOut(
        n=c.n,
        chunk_id=chunk.id,
        source=chunk.source,
        title=chunk.title,
        page=chunk.page,
        snippet=snippet,
        score=round(c.hit.score, 6),
    )


class ModelInfo(BaseModel):
    generator: str
    engine: str = Field(description="What runs the generator: llamacpp or transformers.")
    quantization: str
    embedder: str


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int


class ConfidenceParts(BaseModel):
    """What ``confidence`` combines (app/answer/confidence.py), each in [0, 1]."""

    retrieval: float = Field(..., description="Retrieval evidence of the top passages.")
    support: float | None = Field(
        None, description="Share of the answer's content found in its cited passages."
    )
    certainty: float | None = Field(
        None, description="The model's geometric mean token probability (0.5 when unknown)."
    )
    coverage: float | None = Field(
        None, description="Share of the query's content words found in the top passage."
    )


class AskResponse(BaseModel):
    answer: str
    citations: list[CitationOut]
    confidence: float
    low_confidence: bool
    declined: bool
    degraded: bool
    timings_ms: dict[str, float]
    model: ModelInfo
    usage: Usage
    query: str = Field(..., description="What retrieval searched for (standalone follow-ups).")
    answerable: float | None = Field(
        None,
        description="The generator's P(yes) that the passages hold the answer, when "
        "DOCQA_ANSWERABLE_FLOOR turns that check on.",
    )
    confidence_parts: ConfidenceParts | None = Field(
        None, description="What the confidence combines; a decline has its retrieval part only."
    )


class BatchRequest(BaseModel):
    model_config = {"extra": "forbid"}
    questions: list[AskRequest] = Field(..., min_length=1)


class BatchResponse(BaseModel):
    answers: list[AskResponse]


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(BaseModel):
    """The OpenAI chat-completions shape; ``model`` is accepted and ignored."""

    model: str | None = None
    messages: list[ChatMessage] = Field(..., min_length=1, max_length=100)
    stream: bool = False


class ChatChoice(BaseModel):
    index: int
    message: ChatMessage
    finish_reason: str


class ChatResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: dict[str, int]


class Passage(BaseModel):
    chunk_id: str
    doc_id: str
    source: str
    title: str
    page: int | None
    heading_path: list[str]
    text: str
    score: float
    scores: dict[str, float]


class RetrieveResponse(BaseModel):
    passages: list[Passage]
    timings_ms: dict[str, float]


class CollectionInfo(BaseModel):
    name: str
    chunks: int
    documents: int


class CollectionsResponse(BaseModel):
    collections: list[CollectionInfo]


class DocumentInfo(BaseModel):
    doc_id: str
    source: str
    title: str
    chunks: int
    size: int


class DocumentsResponse(BaseModel):
    collection: str
    documents: list[DocumentInfo]


class DeleteResponse(BaseModel):
    doc_id: str
    chunks_removed: int


class UploadFailure(BaseModel):
    path: str
    error: str


class UploadReport(BaseModel):
    files_new: int
    files_changed: int
    files_unchanged: int
    files_failed: int
    failures: list[UploadFailure]
    chunks_added: int
    chunks_removed: int
    cache_hits: int
    cache_misses: int
    seconds: float


class JobProgress(BaseModel):
    stage: str = Field(description="queued, parsing, embedding, writing, done or failed.")
    chunks_done: int = Field(description="Chunks embedded so far in this attempt.")
    chunks_total: int = Field(description="Chunks to embed in this attempt (0 until chunked).")


class JobInfo(BaseModel):
    """An ingest job: an upload waiting for, or run by, a worker (``GET /v1/jobs/{id}``)."""

    id: str
    collection: str
    source: str
    state: Literal["queued", "running", "done", "failed"]
    attempts: int = Field(description="Tries so far (a worker that died counts).")
    max_attempts: int
    progress: JobProgress
    size: int = Field(description="The upload's bytes.")
    created_at: float = Field(description="Unix time.")
    started_at: float | None = None
    finished_at: float | None = None
    worker: str | None = Field(None, description="host:pid:tag of the worker running it last.")
    error: str | None = Field(None, description="Why it failed, or the last retried error.")
    report: UploadReport | None = Field(None, description="The ingest report, when it ran.")


class JobsResponse(BaseModel):
    jobs: list[JobInfo]
