"""What a running HTTP service holds: its settings, metrics, monitors, rate limiter, and the
backend once loaded (the generation queue belongs to the backend's ``AskService``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.backend import Backend
from app.errors import NotReadyError
from app.metrics import Metrics
from app.monitoring import AnswerMonitor, ReviewLog
from app.ratelimit import TokenBucket
from config.settings import Settings
from ingest.worker import JobWorker


@dataclass
class ServiceState:
    settings: Settings
    metrics: Metrics = field(default_factory=Metrics)
    backend: Backend | None = None
    load_error: str | None = None
    limiter: TokenBucket = field(init=False)
    monitor: AnswerMonitor = field(default_factory=AnswerMonitor)
    review: ReviewLog = field(init=False)
    worker: JobWorker | None = None  # the in-process ingest worker (DOCQA_WORKER)

    def __post_init__(self) -> None:
        self.limiter = TokenBucket(self.settings.rate_limit_per_minute)
        self.review = ReviewLog(
            self.settings.data_dir / "review.jsonl", self.settings.review_sample
        )

    def require_backend(self) -> Backend:
        if self.backend is None:
            reason = self.load_error or "models are still loading"
            raise NotReadyError(f"service not ready: {reason}", headers={"Retry-After": "5"})
        return self.backend
