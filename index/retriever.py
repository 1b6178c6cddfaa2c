"""Retrieval: dense, keyword, or both fused by reciprocal rank fusion (the default), then an
optional reranker. Every hit carries the scores each stage gave it.

RRF (Cormack et al., 2009) adds ``1 / (k + rank)`` over the lists a chunk appears in. It needs no
score calibration between cosine similarities and BM25 scores, which live on unrelated scales,
and it is robust: a chunk ranked well by either method rises.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

from index.protocols import Embedder, Filters, KeywordIndex, Reranker, VectorIndex
from index.types import Hit

Mode = Literal["hybrid", "dense", "keyword"]


@dataclass(frozen=True)
class RetrievalConfig:
    mode: Mode = "hybrid"
    candidates: int = 30  # taken from each method before fusion
    rrf_k: int = 60
    rerank_candidates: int = 20


@dataclass
class Retrieval:
    hits: list[Hit]
    timings_ms: dict[str, float] = field(default_factory=dict)  # embed, retrieve, rerank


def reciprocal_rank_fusion(lists: dict[str, list[Hit]], rrf_k: int = 60) -> list[Hit]:
    """Fuse ranked lists; the fused hit keeps every method's score and rank.

    >>> from index.types import Chunk
    >>> c = lambda i: Chunk(i, i, "d", "s", "t", 0, 0, 1)
    >>> [h.chunk.id for h in reciprocal_rank_fusion({"a": [Hit(c("x"), 1), Hit(c("y"), .5)],
    ...                                                 "b": [Hit(c("y"), 9)]})]
    ['y', 'x']
    """
    fused: dict[str, Hit] = {}
    for method, hits in lists.items():
        for rank, hit in enumerate(hits, start=1):
            entry = fused.setdefault(hit.chunk.id, Hit(hit.chunk, 0.0, {}))
            entry.score += 1.0 / (rrf_k + rank)
            entry.scores[method] = hit.score
            entry.scores[f"{method}_rank"] = float(rank)
    for hit in fused.values():
        hit.scores["rrf"] = hit.score
    return sorted(fused.values(), key=lambda h: (-h.score, h.chunk.id))


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

    def retrieve(
        self,
        query: str,
        k: int = 5,
        filters: Filters | None = None,
        mode: Mode | None = None,
        rerank: bool | None = None,
    ) -> Retrieval:
        mode = mode or self.config.mode
        timings: dict[str, float] = {"embed": 0.0, "retrieve": 0.0, "rerank": 0.0}
        n = max(k, self.config.candidates)
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
        if mode == "hybrid":
            hits = reciprocal_rank_fusion(lists, self.config.rrf_k)
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
