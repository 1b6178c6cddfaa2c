"""POST /v1/retrieve: passages only, no LLM."""

from __future__ import annotations

from fastapi import APIRouter

from app.ask_service import validate_question
from app.collections import existing_collection
from app.deps import BackendDep, StateDep
from app.schemas import Passage, RetrieveRequest, RetrieveResponse
from index.types import Hit

router = APIRouter(prefix="/v1", tags=["retrieval"])


def passage_of(hit: Hit) -> Passage:
    c = hit.chunk
    return Passage(
        chunk_id=c.id,
        doc_id=c.doc_id,
        source=c.source,
        title=c.title,
        page=c.page,
        heading_path=list(c.heading_path),
        text=c.text,
        score=hit.score,
        scores=hit.scores,
    )


@router.post("/retrieve", response_model=RetrieveResponse)
def retrieve(body: RetrieveRequest, backend: BackendDep, state: StateDep) -> RetrieveResponse:
    """The passages hybrid (or dense, or keyword) retrieval finds for a question."""
    validate_question(body.question, state.settings.max_question_chars)
    collection = existing_collection(backend, body.collection)
    filters = body.filters.as_dict() if body.filters else None
    result = backend.retriever(collection).retrieve(
        body.question, k=body.top_k, filters=filters or None, mode=body.mode
    )
    state.metrics.observe_stages({k: v for k, v in result.timings_ms.items() if v})
    if result.hits:
        top = result.hits[0]
        state.metrics.retrieval_top_score.observe(top.scores.get("dense", top.score))
    return RetrieveResponse(
        passages=[passage_of(h) for h in result.hits], timings_ms=result.timings_ms
    )
