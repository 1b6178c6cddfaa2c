"""POST /v1/chat/completions in the OpenAI format, so existing chat clients can use docqa.

The last user message is the question; earlier user and assistant turns are the history; system
messages are ignored (docqa's own prompt governs grounding). Citations are appended to the
content as a "Sources" list.

With ``stream: true`` the answer comes as OpenAI ``chat.completion.chunk`` events, ending with
``data: [DONE]``: the generated text as it comes, then the Sources. Where the service replaced
what the model wrote (a timeout gave an extractive answer), the final answer follows the
streamed text after a blank line, so the concatenated content always ends with what /v1/ask
would answer. A client that disconnects cancels the generation.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from app.deps import BackendDep
from app.disconnect import unless_disconnected
from app.errors import ApiError, ValidationFailedError
from app.routes.ask import stream_answer
from app.schemas import (
    AskRequest,
    AskResponse,
    ChatChoice,
    ChatMessage,
    ChatRequest,
    ChatResponse,
    Turn,
)

router = APIRouter(prefix="/v1", tags=["openai"])


def _content(answer: AskResponse) -> str:
    if not answer.citations:
        return answer.answer
    lines = [answer.answer, "", "Sources:"]
    for c in answer.citations:
        page = f", page {c.page}" if c.page is not None else ""
        lines.append(f"[{c.n}] {c.title or c.source} ({c.source}{page})")
    return "\n".join(lines)


def _sources(answer: AskResponse) -> str:
    content = _content(answer)
    return content[len(answer.answer) :] if content.startswith(answer.answer) else ""


@router.post(
    "/chat/completions",
    response_model=ChatResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def chat_completions(
    body: ChatRequest, backend: BackendDep, request: Request
) -> ChatResponse | StreamingResponse:
    turns = [m for m in body.messages if m.role in ("user", "assistant")]
    if not turns or turns[-1].role != "user":
        raise ValidationFailedError("the last message must be a user message (the question)")
    history = [Turn(role=t.role, content=t.content) for t in turns[:-1]]  # type: ignore[arg-type]
    ask = AskRequest(question=turns[-1].content, history=history or None)
    completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    if body.stream:
        backend.asks.check(ask, capacity=True)
        events = _chunks(completion_id, ask, backend)
        return StreamingResponse(events, media_type="text/event-stream")
    answer = await unless_disconnected(request, backend.asks.ask(ask))
    return ChatResponse(
        id=completion_id,
        created=int(time.time()),
        model=answer.model.generator,
        choices=[
            ChatChoice(
                index=0,
                message=ChatMessage(role="assistant", content=_content(answer)),
                finish_reason="stop",
            )
        ],
        usage={
            "prompt_tokens": answer.usage.prompt_tokens,
            "completion_tokens": answer.usage.completion_tokens,
            "total_tokens": answer.usage.prompt_tokens + answer.usage.completion_tokens,
        },
    )


async def _chunks(completion_id: str, ask: AskRequest, backend: BackendDep) -> AsyncIterator[str]:
    created = int(time.time())
    model = backend.answers.generator.model_id

    def chunk(delta: dict[str, str], finish: str | None = None) -> str:
        body = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    streamed = ""
    try:
        async for item in stream_answer(ask, backend):
            if isinstance(item, str):
                streamed += item
                yield chunk({"content": item})
                continue
            tail = _sources(item)
            if item.answer.strip() != streamed.strip():
                tail = ("\n\n" if streamed else "") + item.answer + tail
            yield chunk({"content": tail}, "stop")
    except ApiError as exc:
        error = {"error": {"code": exc.code, "message": exc.message}}
        yield f"data: {json.dumps(error, ensure_ascii=False)}\n\n"
    yield "data: [DONE]\n\n"
