"""Retrieval: dense, keyword, or both fused (``index.fusion``: a convex combination of
normalized scores by default, or reciprocal rank fusion), then an optional reranker. Every hit
carries the scores each stage gave it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

from index.fusion import (
    Fusion,
    Normalization,
    convex_combination,
    reciprocal_rank_fusion,
)
from index.protocols import Embedder, Filters, KeywordIndex, Reranker, VectorIndex
from index.types import Hit

Mode = Literal["hybrid", "dense", "keyword"]


@dataclass(frozen=True)
class RetrievalConfig:
    mode: Mode = "hybrid"
    candidates: int = 30  # taken from each method before fusion
    fusion: Fusion = "convex"
    alpha: float = 0.9  # the dense weight of the convex combination (bench/fusion.py)
    normalization: Normalization = "tmm"
    rrf_k: int = 60
    rerank_candidates: int = 20


@dataclass
class Retrieval:
    hits: list[Hit]
    timings_ms: dict[str, float] = field(default_factory=dict)  # embed, retrieve, rerank


class Retriever:
    def __init__(
        self,
        embedder: Embedder,
        vectors: VectorIndex,
        keywords: KeywordIndex,
        reranker: Reranker | None = None,
        config: RetrievalConfig | None = None,
    ) -> None:
        self.embedder = embedder
        self.vectors = vectors
        self.keywords = keywords
        self.reranker = reranker
        self.config = config or RetrievalConfig()

    def fuse(self, lists: dict[str, list[Hit]]) -> list[Hit]:
        """One ranking from the dense and keyword lists (new hits; the lists are not changed)."""
        if self.config.fusion == "rrf":
            return reciprocal_rank_fusion(lists, self.config.rrf_k)
        return convex_combination(lists, self.config.alpha, self.config.normalization)

    def candidates(
        self, query: str, n: int, filters: Filters | None = None, mode: Mode | None = None
    ) -> tuple[dict[str, list[Hit]], dict[str, float]]:
        """The top ``n`` of each method the mode uses (``dense``, ``keyword``), before fusion,
        and the time each part took (ms: ``embed``, ``retrieve``)."""
        mode = mode or self.config.mode
        timings: dict[str, float] = {"embed": 0.0, "retrieve": 0.0}
        lists: dict[str, list[Hit]] = {}
        if mode in ("dense", "hybrid"):
            t0 = time.perf_counter()
            vector = self.embedder.embed_query(query)
            timings["embed"] = _ms(t0)
            t0 = time.perf_counter()
            lists["dense"] = self.vectors.search(vector, n, filters)
            timings["retrieve"] += _ms(t0)
        if mode in ("keyword", "hybrid"):
            t0 = time.perf_counter()
            lists["keyword"] = self.keywords.search(query, n, filters)
            timings["retrieve"] += _ms(t0)
        return lists, timings

    def retrieve(
        self,
        query: str,
        k: int = 5,
        filters: Filters | None = None,
        mode: Mode | None = None,
        rerank: bool | None = None,
    ) -> Retrieval:
        mode = mode or self.config.mode
        lists, timings = self.candidates(query, max(k, self.config.candidates), filters, mode)
        timings["rerank"] = 0.0
        if mode == "hybrid":
            hits = self.fuse(lists)
        else:
            hits = lists[mode]
            for rank, hit in enumerate(hits, start=1):
                hit.scores[f"{mode}_rank"] = float(rank)
        use_reranker = self.reranker is not None and (rerank if rerank is not None else True)
        if use_reranker and hits:
            assert self.reranker is not None
            t0 = time.perf_counter()
            hits = self.reranker.rerank(query, hits[: self.config.rerank_candidates], k)
            timings["rerank"] = _ms(t0)
        return Retrieval(hits[:k], timings)


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000.0, 2)
