"""The answer flow of one process, owned by one object: ``AskService``.

One question goes: validate, rewrite a follow-up into a standalone question, retrieve, generate
in the bounded generation queue, finish into an answer with citations and a confidence. The HTTP
routes (``/v1/ask``, its stream, the batch, chat completions), ``docqa ask`` and ``docqa eval``
all call ``AskService.ask``; none of them builds the HTTP layer to get an answer.

What the HTTP layer adds (Prometheus metrics, the drift monitor, the review log) it hangs on as
an ``AskObserver``; keys, rate limits and error mapping never reach this module.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from starlette.concurrency import run_in_threadpool

from app.answering import Answer, Plan
from app.backend import Backend
from app.collections import existing_collection
from app.errors import ApiError, OverloadedError, ValidationFailedError
from app.generation.protocol import Generation
from app.queue import GenerationQueue
from app.schemas import (
    AskRequest,
    AskResponse,
    ConfidenceParts,
    ModelInfo,
    Usage,
    citation_out,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
REWRITE_TOKENS = 64
# The rewrite may take this share of DOCQA_GENERATION_TIMEOUT_S (20 s of the default 60 s). A
# fixed 20 s cut rewrites short on a loaded 2-core machine where the answer's own limit had
# been raised for it: the prompt reads cold, since the answer prompt took the KV cache.
REWRITE_SHARE = 1 / 3


@dataclass(frozen=True)
class AskLimits:
    max_question_chars: int = 2000
    request_timeout_s: float = 120.0


def validate_question(question: str, limit: int) -> None:
    """DOCQA_MAX_QUESTION_CHARS, for /v1/ask and /v1/retrieve alike."""
    if len(question) > limit:
        raise ValidationFailedError(
            f"question is {len(question)} characters, over the limit of {limit}"
        )


class AskObserver(Protocol):
    """Told of every answer; the HTTP layer's metrics and monitors are one."""

    def answered(self, request: AskRequest, plan: Plan, answer: Answer) -> None: ...

    def first_token(self, seconds: float) -> None: ...

    def cancelled(self) -> None: ...


class AskService:
    def __init__(
        self,
        backend: Backend,
        queue: GenerationQueue,
        limits: AskLimits,
        embedder_id: str,
    ) -> None:
        self.backend = backend
        self.queue = queue
        self.limits = limits
        self.embedder_id = embedder_id
        self.observers: list[AskObserver] = []

    # ------------------------------------------------------------------------ before asking
    def check(self, req: AskRequest, capacity: bool = False) -> str:
        """Refuse what can be refused before any work: a question over the length limit, an
        unknown collection, and with ``capacity`` a full queue (a stream must be refused before
        it starts, to get a real status code). Returns the collection's name."""
        validate_question(req.question, self.limits.max_question_chars)
        collection = existing_collection(self.backend, req.collection)
        if capacity and self.queue.depth >= self.queue.max_pending:
            raise OverloadedError("the server is busy; retry later", headers={"Retry-After": "5"})
        return collection

    # --------------------------------------------------------------------------------- ask
    async def ask(
        self, req: AskRequest, on_token: Callable[[str], None] | None = None
    ) -> AskResponse:
        """Answer ``req``. Cancelling this coroutine (the client went away) stops the generation
        within a token or a prompt chunk and frees its queue slot."""
        cancel = threading.Event()
        try:
            return await self._ask(req, on_token, cancel)
        except asyncio.CancelledError:
            cancel.set()
            for observer in self.observers:
                observer.cancelled()
            raise

    async def _ask(
        self,
        req: AskRequest,
        on_token: Callable[[str], None] | None,
        cancel: threading.Event,
    ) -> AskResponse:
        collection = self.check(req)
        answers = self.backend.answers
        started = time.perf_counter()
        limit = time.monotonic() + self.limits.request_timeout_s
        query = None
        if req.history:
            query = await self._standalone(req, limit, cancel)
        filters = req.filters.as_dict() if req.filters else None
        plan: Plan = await run_in_threadpool(
            answers.plan,
            self.backend.retriever(collection),
            req.question,
            req.top_k,
            filters or None,
            query,
            started,
        )
        generation, error = None, None
        first_token: list[float] = []

        def each_token(piece: str) -> None:
            if not first_token:
                first_token.append(time.perf_counter())
            if on_token is not None:
                on_token(piece)

        answerable = None
        if plan.prompt is not None and answers.config.answerable_floor is not None:
            answerable = await self._answerable(plan, limit)
        if plan.prompt is not None and not answers.unanswerable(answerable):
            try:
                generation = await self.in_queue(
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
        answer = answers.finish(plan, generation, error, answerable)
        for observer in self.observers:
            if first_token:
                observer.first_token(first_token[0] - started)
            observer.answered(req, plan, answer)
        return self.response(answer)

    async def _standalone(self, req: AskRequest, limit: float, cancel: threading.Event) -> str:
        """The follow-up rewritten into one standalone question (the fallback when the model's
        rewrite fails or is unusable: ``AnswerService.standalone``)."""
        answers = self.backend.answers
        history = [t.model_dump() for t in req.history or []]
        messages = answers.rewrite_messages(history, req.question)
        rewritten: Generation | None
        try:
            rewritten = await self.in_queue(
                lambda: answers.generator.generate(
                    messages,
                    REWRITE_TOKENS,
                    deadline=min(
                        limit,
                        time.monotonic() + REWRITE_SHARE * answers.config.generation_timeout_s,
                    ),
                    cancel=cancel,
                ),
                limit - time.monotonic(),
            )
        except ApiError:
            raise
        except Exception as exc:  # a failed rewrite only costs the rewrite
            log.warning("follow-up rewrite failed (%s); using the fallback", exc)
            rewritten = None
        return answers.standalone(rewritten, history, req.question)

    async def _answerable(self, plan: Plan, limit: float) -> float | None:
        """The answerability check; a failure only costs the check (the answer goes ahead)."""
        try:
            return await self.in_queue(
                lambda: self.backend.answers.answerable(plan), limit - time.monotonic()
            )
        except ApiError:
            raise
        except Exception as exc:
            log.warning("answerability check failed (%s); answering without it", exc)
            return None

    # ------------------------------------------------------------------------------ queue
    async def in_queue(self, job: Callable[[], T], timeout: float) -> T:
        """Run ``job`` in the generation queue (OverloadedError, a 503, when it is full)."""
        future = self.queue.submit(job)
        return await asyncio.wait_for(asyncio.wrap_future(future), timeout=max(0.1, timeout))

    def response(self, answer: Answer) -> AskResponse:
        generator = self.backend.answers.generator
        return AskResponse(
            answer=answer.answer,
            citations=[citation_out(c) for c in answer.citations],
            confidence=answer.confidence,
            low_confidence=answer.low_confidence,
            declined=answer.declined,
            degraded=answer.degraded,
            timings_ms=answer.timings_ms,
            model=ModelInfo(
                generator=generator.model_id,
                engine=generator.engine,
                quantization=generator.quantization,
                embedder=self.embedder_id,
            ),
            usage=Usage(
                prompt_tokens=answer.prompt_tokens, completion_tokens=answer.completion_tokens
            ),
            query=answer.query,
            answerable=answer.answerable,
            confidence_parts=None
            if answer.parts is None
            else ConfidenceParts(**dataclasses.asdict(answer.parts)),
        )

    def close(self) -> None:
        self.queue.shutdown()
