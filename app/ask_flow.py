"""One question through the service: rewrite a follow-up, retrieve, generate in the queue,
finish, and record metrics. Shared by /v1/ask, its stream, the batch and chat completions."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool

from app.answering import Answer, Plan
from app.backend import Backend
from app.collections import existing_collection
from app.errors import ApiError, ValidationFailedError
from app.generation.protocol import Generation
from app.schemas import AskRequest, AskResponse, CitationOut, ModelInfo, Usage
from app.state import ServiceState

log = logging.getLogger(__name__)

REWRITE_TOKENS = 64


def validate_question(state: ServiceState, question: str) -> None:
    limit = state.settings.max_question_chars
    if len(question) > limit:
        raise ValidationFailedError(
            f"question is {len(question)} characters, over the limit of {limit}"
        )


async def _in_queue(
    state: ServiceState, job: Callable[[], Generation], timeout: float
) -> Generation:
    future = state.queue.submit(job)  # raises OverloadedError (503) when full
    return await asyncio.wait_for(asyncio.wrap_future(future), timeout=max(0.1, timeout))


async def run_ask(
    state: ServiceState,
    backend: Backend,
    req: AskRequest,
    on_token: Callable[[str], None] | None = None,
) -> AskResponse:
    """Answer ``req``. Cancelling this coroutine (the client went away) stops the generation
    within a token or a prompt chunk and frees its queue slot."""
    cancel = threading.Event()
    try:
        return await _run_ask(state, backend, req, on_token, cancel)
    except asyncio.CancelledError:
        cancel.set()
        state.metrics.answers.labels("cancelled").inc()
        raise


async def _run_ask(
    state: ServiceState,
    backend: Backend,
    req: AskRequest,
    on_token: Callable[[str], None] | None,
    cancel: threading.Event,
) -> AskResponse:
    validate_question(state, req.question)
    collection = existing_collection(backend, req.collection)
    answers = backend.answers
    started = time.perf_counter()
    limit = time.monotonic() + state.settings.request_timeout_s
    query = None
    if req.history:
        history = [t.model_dump() for t in req.history]
        messages = answers.rewrite_messages(history, req.question)
        try:
            rewritten = await _in_queue(
                state,
                lambda: answers.generator.generate(
                    messages,
                    REWRITE_TOKENS,
                    deadline=min(limit, time.monotonic() + 20),
                    cancel=cancel,
                ),
                limit - time.monotonic(),
            )
        except ApiError:
            raise
        except Exception as exc:  # a failed rewrite only costs the rewrite
            log.warning("follow-up rewrite failed (%s); using the conversation as is", exc)
            rewritten = None
        query = answers.standalone(rewritten, history, req.question)
    filters = req.filters.as_dict() if req.filters else None
    plan: Plan = await run_in_threadpool(
        answers.plan, backend.retriever(collection), req.question, req.top_k, filters or None, query
    )
    generation, error = None, None
    first_token: list[float] = []

    def each_token(piece: str) -> None:
        if not first_token:
            first_token.append(time.perf_counter())
        if on_token is not None:
            on_token(piece)

    if plan.prompt is not None:
        try:
            generation = await _in_queue(
                state,
                lambda: answers.generate(plan, each_token, deadline=limit, cancel=cancel),
                limit - time.monotonic(),
            )
        except TimeoutError:
            error = "request time limit reached"
        except ApiError:
            raise  # overloaded: the client should retry, not get a degraded answer
        except Exception as exc:  # any generator failure degrades to an extractive answer
            log.exception("generation failed")
            error = f"{type(exc).__name__}: {exc}"
    if first_token:
        plan.timings_ms["first_token"] = round((first_token[0] - started) * 1000.0, 2)
    answer = answers.finish(plan, generation, error)
    if first_token:
        state.metrics.time_to_first_token.observe(first_token[0] - started)
    _record(state, plan, answer, req)
    return to_response(answer, backend)


def _record(state: ServiceState, plan: Plan, answer: Answer, req: AskRequest) -> None:
    m = state.metrics
    m.observe_stages({k: v for k, v in answer.timings_ms.items() if k != "first_token"})
    m.answers.labels(answer.outcome).inc()
    m.confidence.observe(answer.confidence)
    m.generated_tokens.inc(answer.completion_tokens)
    m.low_confidence_ratio.set(state.monitor.record(answer.low_confidence))
    if plan.hits:
        top = plan.hits[0].scores.get("dense", plan.hits[0].score)
        m.retrieval_top_score.observe(top)
        pvalue = state.monitor.record_top_score(top)
        if pvalue is not None:
            m.drift_pvalue.set(pvalue)
    state.review.maybe_write(
        {
            "question": req.question,
            "query": answer.query,
            "answer": answer.answer,
            "outcome": answer.outcome,
            "confidence": answer.confidence,
            "citations": [c.chunk_id for c in answer.citations],
        },
        answer.low_confidence,
    )


def to_response(answer: Answer, backend: Backend) -> AskResponse:
    generator = backend.answers.generator
    return AskResponse(
        answer=answer.answer,
        citations=[CitationOut(**vars(c)) for c in answer.citations],
        confidence=answer.confidence,
        low_confidence=answer.low_confidence,
        declined=answer.declined,
        degraded=answer.degraded,
        timings_ms=answer.timings_ms,
        model=ModelInfo(
            generator=generator.model_id,
            engine=generator.engine,
            quantization=generator.quantization,
            embedder=backend.embedder.model_id,
        ),
        usage=Usage(prompt_tokens=answer.prompt_tokens, completion_tokens=answer.completion_tokens),
        query=answer.query,
    )
