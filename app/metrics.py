"""Prometheus metrics of one service instance, in its own registry (names in the README)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class _CacheCollector(Collector):
    """Reads the embedding cache's counters at scrape time."""

    def __init__(self, counts: Callable[[], tuple[int, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        hits, misses = self._counts()
        yield CounterMetricFamily(
            "docqa_embedding_cache_hits", "Texts served by the embedding cache.", value=hits
        )
        yield CounterMetricFamily(
            "docqa_embedding_cache_misses", "Texts the embedding model had to embed.", value=misses
        )


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "docqa_requests_total",
            "HTTP requests by endpoint and status.",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.request_latency = Histogram(
            "docqa_request_latency_seconds",
            "HTTP request latency by endpoint.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.stage_latency = Histogram(
            "docqa_stage_latency_seconds",
            "Latency of each answering stage (embed, retrieve, rerank, generate).",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.retrieval_top_score = Histogram(
            "docqa_retrieval_top_score",
            "Score of the best passage of each retrieval (dense cosine when present).",
            buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
            registry=self.registry,
        )

    def watch_cache(self, counts: Callable[[], tuple[int, int]]) -> None:
        self.registry.register(_CacheCollector(counts))

    def observe_stages(self, timings_ms: dict[str, float]) -> None:
        for stage, ms in timings_ms.items():
            self.stage_latency.labels(stage).observe(ms / 1000.0)
