"""POST /v1/chat/completions in the OpenAI format, so existing chat clients can use docqa.

The last user message is the question; earlier user and assistant turns are the history; system
messages are ignored (docqa's own prompt governs grounding). Citations are appended to the
content as a "Sources" list.
"""

from __future__ import annotations

import time
import uuid

from fastapi import APIRouter

from app.ask_flow import run_ask
from app.deps import BackendDep, StateDep
from app.errors import ValidationFailedError
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


@router.post("/chat/completions", response_model=ChatResponse)
async def chat_completions(body: ChatRequest, backend: BackendDep, state: StateDep) -> ChatResponse:
    turns = [m for m in body.messages if m.role in ("user", "assistant")]
    if not turns or turns[-1].role != "user":
        raise ValidationFailedError("the last message must be a user message (the question)")
    if body.stream:
        raise ValidationFailedError("stream is not supported here; use /v1/ask with stream=true")
    history = [Turn(role=t.role, content=t.content) for t in turns[:-1]]  # type: ignore[arg-type]
    answer = await run_ask(
        state, backend, AskRequest(question=turns[-1].content, history=history or None)
    )
    return ChatResponse(
        id=f"chatcmpl-{uuid.uuid4().hex[:24]}",
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
