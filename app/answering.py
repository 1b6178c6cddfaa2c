"""Answering a question: retrieve, decide whether to decline, prompt, then finish the generation
into an answer with citations and a confidence.

The steps are split so the HTTP layer can run each where it belongs: ``plan`` (retrieval) in a
worker thread, the generation in the bounded generation queue, ``finish`` anywhere. Nothing here
touches HTTP. A generation that fails or runs out of time becomes an extractive answer (the best
supporting sentence of the top passage), flagged ``degraded``; never an error.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Literal

from app.answer import followup
from app.answer.answerability import answerability_messages
from app.answer.citations import (
    parse_citations,
    repoint_citations,
    strip_invalid_markers,
    support_fallback,
)
from app.answer.confidence import (
    ConfidenceFit,
    EvidenceConfig,
    Parts,
    answer_confidence,
    calibration_for,
    retrieval_evidence,
)
from app.answer.prompt import (
    PromptBuild,
    build_messages,
    decline_phrase,
    is_decline,
    question_language,
)
from app.answer.script import in_question_script, tokens_in_question_script
from app.generation.extractive import best_sentence
from app.generation.protocol import Generation, Generator, Messages, OnToken
from index.protocols import Filters
from index.retriever import Retriever
from index.types import Hit

log = logging.getLogger(__name__)

Outcome = Literal["answered", "low_confidence", "declined", "degraded"]


@dataclass(frozen=True)
class AnswerConfig:
    answer_max_tokens: int = 256
    context_tokens: int = 4096  # cap on the model's window, prompt and answer together
    evidence_floor: float = 0.2
    low_confidence: float = 0.5
    generation_timeout_s: float = 60.0
    answerable_floor: float | None = None  # None: no answerability check
    confidence_fit: ConfidenceFit | None = None  # None: the weighted sum of the parts
    decline_below: float | None = None  # with a fit: decline under this fitted P(right)


@dataclass(frozen=True)
class Citation:
    """Passage ``n`` of the prompt, cited by the answer, as retrieval scored it. The one record
    of a citation: its HTTP form (``app.schemas.citation_out``) is derived from it."""

    n: int
    hit: Hit

    @property
    def chunk_id(self) -> str:
        return self.hit.chunk.id


@dataclass
class Plan:
    question: str  # as asked
    query: str  # what retrieval used (standalone when there was history)
    hits: list[Hit]
    evidence: float
    prompt: PromptBuild | None  # None when declining without the LLM
    timings_ms: dict[str, float]
    # The request's start (perf_counter): "total" and "first_token" are both measured from it,
    # so a follow-up's rewrite and the wait for a worker thread count in both, and first_token
    # can never exceed total.
    started: float = field(default_factory=time.perf_counter)


@dataclass
class Answer:
    answer: str
    citations: list[Citation]
    confidence: float
    low_confidence: bool
    declined: bool
    degraded: bool
    outcome: Outcome
    timings_ms: dict[str, float]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    query: str = ""
    answerable: float | None = None  # the generator's P(yes) that the passages answer
    parts: Parts | None = None  # what the confidence combines


class AnswerService:
    def __init__(self, generator: Generator, embedder_id: str, config: AnswerConfig) -> None:
        self.generator = generator
        self.config = config
        self.evidence = EvidenceConfig(calibration=calibration_for(embedder_id))

    # ---------------------------------------------------------------- follow-up questions
    @staticmethod
    def rewrite_messages(history: list[dict[str, str]], question: str) -> Messages:
        return followup.rewrite_messages(history, question)

    @staticmethod
    def standalone(
        rewritten: Generation | None, history: list[dict[str, str]], question: str
    ) -> str:
        """The retrieval query for a follow-up: one standalone question (see followup)."""
        text = rewritten.text if rewritten is not None else None
        return followup.standalone(text, history, question).query

    # ------------------------------------------------------------------------------ plan
    def plan(
        self,
        retriever: Retriever,
        question: str,
        top_k: int,
        filters: Filters | None,
        query: str | None = None,
        started: float | None = None,
    ) -> Plan:
        """Retrieve and build the prompt. ``started``: when the request began (perf_counter),
        the origin of its "total"; now when omitted."""
        started = time.perf_counter() if started is None else started
        query = query or question
        result = retriever.retrieve(query, k=top_k, filters=filters)
        evidence = retrieval_evidence(result.hits, self.evidence)
        prompt = None
        if evidence >= self.config.evidence_floor and result.hits:
            window = min(self.generator.context_window, self.config.context_tokens)
            budget = max(256, window - self.config.answer_max_tokens - 64)  # 64: chat template
            # A follow-up is answered as its standalone rewrite: "And who owns it?" alone left
            # the model to guess what "it" was, and it named another row's owner.
            prompt = build_messages(query, result.hits, self.generator.count_tokens, budget)
        timings = {"generate": 0.0, **result.timings_ms}
        return Plan(question, query, result.hits, evidence, prompt, timings, started)

    def unanswerable(self, p_answerable: float | None) -> bool:
        """Whether the answerability check's P(yes) declines: under ``answerable_floor``. No
        floor, or no check (it failed or was not run), never declines."""
        floor = self.config.answerable_floor
        return p_answerable is not None and floor is not None and p_answerable < floor

    def answerable(self, plan: Plan) -> float:
        """P(yes) that the prompt's passages answer the question (run in the generation queue;
        ``app.answer.answerability``)."""
        assert plan.prompt is not None
        started = time.perf_counter()
        try:
            messages = answerability_messages(plan.prompt)
            return self.generator.yes_probability([messages])[0]
        finally:
            plan.timings_ms["answerable"] = round((time.perf_counter() - started) * 1000.0, 2)

    def generate(
        self,
        plan: Plan,
        on_token: OnToken | None = None,
        deadline: float | None = None,
        cancel: threading.Event | None = None,
    ) -> Generation:
        """Run in the generation queue. Raises whatever the generator raises."""
        assert plan.prompt is not None
        started = time.perf_counter()
        own = time.monotonic() + self.config.generation_timeout_s
        deadline = own if deadline is None else min(deadline, own)
        try:
            with tokens_in_question_script(plan.question, on_token) as each_piece:
                return self.generator.generate(
                    plan.prompt.messages,
                    max_new_tokens=self.config.answer_max_tokens,
                    deadline=deadline,
                    on_token=each_piece,
                    cancel=cancel,
                )
        finally:
            plan.timings_ms["generate"] = round((time.perf_counter() - started) * 1000.0, 2)

    # ---------------------------------------------------------------------------- finish
    def finish(
        self,
        plan: Plan,
        generation: Generation | None,
        error: str | None = None,
        answerable: float | None = None,
    ) -> Answer:
        answer = self._finish(plan, generation, error, answerable)
        answer.answerable = answerable
        # In the question's script (a traditional question: traditional), whatever produced the
        # text: the model, the decline phrase or the extractive fallback. Citations keep theirs.
        answer.answer = in_question_script(plan.question, answer.answer)
        return answer

    def _finish(
        self,
        plan: Plan,
        generation: Generation | None,
        error: str | None,
        answerable: float | None,
    ) -> Answer:
        timings = {k: plan.timings_ms.get(k, 0.0) for k in ("embed", "retrieve", "rerank")}
        if "answerable" in plan.timings_ms:
            timings["answerable"] = plan.timings_ms["answerable"]
        timings["generate"] = plan.timings_ms.get("generate", 0.0)
        if "first_token" in plan.timings_ms:  # from the request's start; streamed or not
            timings["first_token"] = plan.timings_ms["first_token"]
        if plan.prompt is None:
            return self._declined(plan, timings)
        if self.unanswerable(answerable):
            log.info(
                "declined: P(passages answer) %.3f under %.3f",
                answerable,
                self.config.answerable_floor,
            )
            return self._declined(plan, timings)
        if generation is None or generation.finish_reason == "timeout":
            why = error or "generation timed out"
            log.warning("degraded answer: %s", why)
            return self._degraded(plan, timings, generation)
        passages = plan.prompt.passages
        text = strip_invalid_markers(generation.text.strip(), len(passages))
        if is_decline(text) or not text:
            answer = self._declined(plan, timings)
            answer.prompt_tokens = generation.prompt_tokens
            answer.completion_tokens = generation.completion_tokens
            return answer
        text = repoint_citations(text, passages)
        numbers = parse_citations(text, len(passages)) or support_fallback(text, passages)
        cited = [passages[n - 1] for n in numbers]
        conf = answer_confidence(
            plan.hits,
            text,
            [h.chunk.text for h in cited],
            generation.mean_logprob,
            self.evidence,
            threshold=self.config.low_confidence,
            fit=self.config.confidence_fit,
            p_answerable=answerable,
            language=question_language(plan.question),
            query=plan.query,
        )
        if self.unsupported(conf.value, answerable, conf.parts):
            log.info(
                "declined: fitted P(right) %.3f under %.3f", conf.value, self.config.decline_below
            )
            answer = self._declined(plan, timings, conf.parts)
            answer.prompt_tokens = generation.prompt_tokens
            answer.completion_tokens = generation.completion_tokens
            return answer
        return Answer(
            answer=text,
            citations=[Citation(n, passages[n - 1]) for n in numbers],
            confidence=round(conf.value, 4),
            low_confidence=conf.low_confidence,
            declined=False,
            degraded=False,
            outcome="low_confidence" if conf.low_confidence else "answered",
            timings_ms=_total(plan, timings),
            prompt_tokens=generation.prompt_tokens,
            completion_tokens=generation.completion_tokens,
            query=plan.query,
            parts=conf.parts,
        )

    def unsupported(self, confidence: float, p_answerable: float | None, parts: Parts) -> bool:
        """Whether a fitted confidence declines the answer: under ``decline_below``. Only a
        fitted P(right) does (a weighted sum is no probability), and only where it applied."""
        fit = self.config.confidence_fit
        below = self.config.decline_below
        return fit is not None and fit.declines(confidence, p_answerable, below, parts)

    def _declined(
        self, plan: Plan, timings: dict[str, float], parts: Parts | None = None
    ) -> Answer:
        """A decline. ``parts``: the parts of an answer declined for them, kept so that a
        recorded run can replay another threshold; else the retrieval evidence alone."""
        return Answer(
            answer=decline_phrase(question_language(plan.question)),
            citations=[],
            confidence=round(plan.evidence * 0.4, 4),
            low_confidence=True,
            declined=True,
            degraded=False,
            outcome="declined",
            timings_ms=_total(plan, timings),
            query=plan.query,
            parts=parts or Parts(round(plan.evidence, 4)),
        )

    def _degraded(
        self, plan: Plan, timings: dict[str, float], generation: Generation | None
    ) -> Answer:
        assert plan.prompt is not None and plan.prompt.passages
        top = plan.prompt.passages[0]
        sentence = best_sentence(plan.question, top.chunk.text)
        conf = answer_confidence(
            plan.hits,
            sentence,
            [top.chunk.text],
            None,
            self.evidence,
            threshold=self.config.low_confidence,
            query=plan.query,
        )
        return Answer(
            answer=f"{sentence} [1]",
            citations=[Citation(1, top)],
            confidence=round(conf.value, 4),
            low_confidence=conf.low_confidence,
            declined=False,
            degraded=True,
            outcome="degraded",
            timings_ms=_total(plan, timings),
            prompt_tokens=generation.prompt_tokens if generation else 0,
            completion_tokens=generation.completion_tokens if generation else 0,
            query=plan.query,
            parts=conf.parts,
        )


def _total(plan: Plan, timings: dict[str, float]) -> dict[str, float]:
    return {**timings, "total": round((time.perf_counter() - plan.started) * 1000.0, 2)}
