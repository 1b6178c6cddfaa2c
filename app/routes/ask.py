"""POST /v1/ask (JSON or server-sent events) and POST /v1/ask/batch."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from app.deps import BackendDep, StateDep
from app.disconnect import unless_disconnected
from app.errors import ApiError, ValidationFailedError
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
    body: AskRequest, backend: BackendDep, request: Request
) -> AskResponse | StreamingResponse:
    """Answer a question from the collection's documents, with citations and a confidence."""
    if not body.stream:
        return await unless_disconnected(request, backend.asks.ask(body))
    backend.asks.check(body, capacity=True)  # refused before the stream starts: a real status
    return StreamingResponse(_events(body, backend), media_type="text/event-stream")


async def stream_answer(body: AskRequest, backend: BackendDep) -> AsyncIterator[str | AskResponse]:
    """The answer's text pieces as they are generated, then the whole AskResponse.

    When the consumer stops (Starlette cancels the stream once the client disconnects), the
    answer flow is cancelled, and with it the generation.
    """
    loop = asyncio.get_running_loop()
    tokens: asyncio.Queue[str] = asyncio.Queue()

    def push(piece: str) -> None:  # called from the generation thread
        loop.call_soon_threadsafe(tokens.put_nowait, piece)

    task = asyncio.create_task(backend.asks.ask(body, push))
    try:
        while not task.done() or not tokens.empty():
            getter = asyncio.ensure_future(tokens.get())
            try:
                done, _ = await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                if not getter.done():
                    getter.cancel()
            if getter in done:
                yield getter.result()
        yield task.result()
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.shield(task)


async def _events(body: AskRequest, backend: BackendDep) -> AsyncIterator[str]:
    try:
        async for item in stream_answer(body, backend):
            if isinstance(item, str):
                yield _sse("token", {"text": item})
            else:
                yield _sse("final", item.model_dump())
    except ApiError as exc:
        yield _sse("error", {"error": {"code": exc.code, "message": exc.message}})


def _sse(event: str, data: object) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


@router.post("/ask/batch", response_model=BatchResponse)
async def ask_batch(
    body: BatchRequest, backend: BackendDep, state: StateDep, request: Request
) -> BatchResponse:
    """Several questions, answered in order (at most DOCQA_MAX_BATCH); no streaming."""
    if len(body.questions) > state.settings.max_batch:
        raise ValidationFailedError(
            f"{len(body.questions)} questions, over the batch limit of {state.settings.max_batch}"
        )
    if any(q.stream for q in body.questions):
        raise ValidationFailedError("stream is not supported in a batch")

    async def answer_all() -> BatchResponse:
        return BatchResponse(answers=[await backend.asks.ask(q) for q in body.questions])

    return await unless_disconnected(request, answer_all())
