"""POST /v1/ask (JSON or server-sent events) and POST /v1/ask/batch."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from app.ask_flow import run_ask, validate_question
from app.collections import existing_collection
from app.deps import BackendDep, StateDep
from app.errors import ApiError, OverloadedError, ValidationFailedError
from app.schemas import AskRequest, AskResponse, BatchRequest, BatchResponse

router = APIRouter(prefix="/v1", tags=["answers"])

SSE_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {
        "description": "An AskResponse, or with stream=true server-sent events: `token` events "
        '({"text": ...}), then one `final` event carrying the AskResponse.',
        "content": {"text/event-stream": {}},
    }
}


@router.post("/ask", response_model=AskResponse, responses=SSE_RESPONSES)
async def ask(
    body: AskRequest, backend: BackendDep, state: StateDep
) -> AskResponse | StreamingResponse:
    """Answer a question from the collection's documents, with citations and a confidence."""
    if not body.stream:
        return await run_ask(state, backend, body)
    # Check what can be refused before the stream starts, so it gets a real status code.
    validate_question(state, body.question)
    existing_collection(backend, body.collection)
    if state.queue.depth >= state.queue.max_pending:
        raise OverloadedError("the server is busy; retry later", headers={"Retry-After": "5"})
    return StreamingResponse(_events(body, backend, state), media_type="text/event-stream")


async def _events(body: AskRequest, backend: BackendDep, state: StateDep) -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    tokens: asyncio.Queue[str] = asyncio.Queue()

    def push(piece: str) -> None:  # called from the generation thread
        loop.call_soon_threadsafe(tokens.put_nowait, piece)

    task = asyncio.create_task(run_ask(state, backend, body, push))
    while not task.done() or not tokens.empty():
        getter = asyncio.ensure_future(tokens.get())
        done, _ = await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
        if getter in done:
            yield _sse("token", {"text": getter.result()})
        else:
            getter.cancel()
    try:
        response = task.result()
    except ApiError as exc:
        yield _sse("error", {"error": {"code": exc.code, "message": exc.message}})
        return
    yield _sse("final", response.model_dump())


def _sse(event: str, data: object) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


@router.post("/ask/batch", response_model=BatchResponse)
async def ask_batch(body: BatchRequest, backend: BackendDep, state: StateDep) -> BatchResponse:
    """Several questions, answered in order (at most DOCQA_MAX_BATCH); no streaming."""
    if len(body.questions) > state.settings.max_batch:
        raise ValidationFailedError(
            f"{len(body.questions)} questions, over the batch limit of {state.settings.max_batch}"
        )
    if any(q.stream for q in body.questions):
        raise ValidationFailedError("stream is not supported in a batch")
    return BatchResponse(answers=[await run_ask(state, backend, q) for q in body.questions])
