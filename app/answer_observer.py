"""What the HTTP service records of every answer: Prometheus metrics, the low-confidence and
drift monitors, and the review log. Hung on the ``AskService`` when the backend loads; ``docqa
ask`` and ``docqa eval`` run the same flow without it."""

from __future__ import annotations

from app.answering import Answer, Plan
from app.metrics import Metrics
from app.monitoring import AnswerMonitor, ReviewLog
from app.schemas import AskRequest


class AnswerObserver:
    def __init__(self, metrics: Metrics, monitor: AnswerMonitor, review: ReviewLog) -> None:
        self.metrics = metrics
        self.monitor = monitor
        self.review = review

    def first_token(self, seconds: float) -> None:
        self.metrics.time_to_first_token.observe(seconds)

    def cancelled(self) -> None:
        self.metrics.answers.labels("cancelled").inc()

    def answered(self, request: AskRequest, plan: Plan, answer: Answer) -> None:
        m = self.metrics
        m.observe_stages({k: v for k, v in answer.timings_ms.items() if k != "first_token"})
        m.answers.labels(answer.outcome).inc()
        m.confidence.observe(answer.confidence)
        m.generated_tokens.inc(answer.completion_tokens)
        m.low_confidence_ratio.set(self.monitor.record(answer.low_confidence))
        if plan.hits:
            top = plan.hits[0].scores.get("dense", plan.hits[0].score)
            m.retrieval_top_score.observe(top)
            pvalue = self.monitor.record_top_score(top)
            if pvalue is not None:
                m.drift_pvalue.set(pvalue)
        self.review.maybe_write(
            {
                "question": request.question,
                "query": answer.query,
                "answer": answer.answer,
                "outcome": answer.outcome,
                "confidence": answer.confidence,
                "citations": [c.chunk_id for c in answer.citations],
            },
            answer.low_confidence,
        )
