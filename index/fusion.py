"""Fusing the dense and keyword rankings into one.

Two functions, chosen by ``RetrievalConfig.fusion``:

- ``convex`` (the default): a convex combination of normalized scores,
  ``alpha * dense + (1 - alpha) * keyword``, per Bruch, Gai and Ingber (2023), "An Analysis of
  Fusion Functions for Hybrid Retrieval" (ACM TOIS). Scores are normalized by theoretical
  min-max ("tmm": each method's lowest possible score, -1 for a cosine and 0 for BM25, up to the
  best score of this query), or per query min-max ("mm"). A chunk missing from one list gets
  that method's lowest normalized score, 0. The paper finds it beats RRF and needs only a few
  dozen queries to tune ``alpha``; RRF throws the scores away, so a strong dense match counts no
  more than a weak one at the same rank, and on multi-hop sets it loses to dense alone.
- ``rrf``: reciprocal rank fusion (Cormack et al., 2009), ``sum 1 / (k + rank)``; kept for
  comparison and for users who tuned their sets on it.

``alpha`` and the normalization ship as measured on development splits (bench/fusion.py,
docs/EVALUATION.md). The fused hit keeps every method's raw score and rank.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal

from index.types import Hit

Fusion = Literal["convex", "rrf"]
Normalization = Literal["tmm", "mm"]
# The lowest score each method can give: a cosine similarity, a BM25 score.
THEORETICAL_MIN = {"dense": -1.0, "keyword": 0.0}


def reciprocal_rank_fusion(lists: Mapping[str, list[Hit]], rrf_k: int = 60) -> list[Hit]:
    """Fuse ranked lists; the fused hit keeps every method's score and rank.

    >>> from index.types import Chunk
    >>> c = lambda i: Chunk(i, i, "d", "s", "t", 0, 0, 1)
    >>> [h.chunk.id for h in reciprocal_rank_fusion({"a": [Hit(c("x"), 1), Hit(c("y"), .5)],
    ...                                                 "b": [Hit(c("y"), 9)]})]
    ['y', 'x']
    """
    fused = _merged(lists)
    for hit in fused.values():
        hit.score = sum(
            1.0 / (rrf_k + hit.scores[f"{m}_rank"]) for m in lists if f"{m}_rank" in hit.scores
        )
        hit.scores["rrf"] = hit.score
    return _ranked(fused)


def convex_combination(
    lists: Mapping[str, list[Hit]],
    alpha: float,
    normalization: Normalization = "tmm",
) -> list[Hit]:
    """``alpha * norm(dense) + (1 - alpha) * norm(keyword)``; ``alpha`` weighs "dense".

    >>> from index.types import Chunk
    >>> c = lambda i: Chunk(i, i, "d", "s", "t", 0, 0, 1)
    >>> dense = [Hit(c("x"), 0.9), Hit(c("y"), 0.5)]
    >>> keyword = [Hit(c("y"), 10.0), Hit(c("z"), 5.0)]
    >>> [h.chunk.id for h in convex_combination({"dense": dense, "keyword": keyword}, 0.9)]
    ['x', 'y', 'z']
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], not {alpha}")
    weights = {"dense": alpha, "keyword": 1.0 - alpha}
    norms = {m: _normalizer(m, hits, normalization) for m, hits in lists.items()}
    fused = _merged(lists)
    for hit in fused.values():
        hit.score = sum(
            weights.get(m, 0.0) * norms[m](hit.scores[m]) for m in lists if m in hit.scores
        )
        hit.scores["convex"] = hit.score
    return _ranked(fused)


def _merged(lists: Mapping[str, list[Hit]]) -> dict[str, Hit]:
    fused: dict[str, Hit] = {}
    for method, hits in lists.items():
        for rank, hit in enumerate(hits, start=1):
            entry = fused.setdefault(hit.chunk.id, Hit(hit.chunk, 0.0, {}))
            entry.scores[method] = hit.score
            entry.scores[f"{method}_rank"] = float(rank)
    return fused


def _normalizer(
    method: str, hits: list[Hit], normalization: Normalization
) -> Callable[[float], float]:
    """Maps a method's raw score into [0, 1] for this query's list."""
    if not hits:
        return lambda s: 0.0
    top = max(h.score for h in hits)
    low = THEORETICAL_MIN.get(method, 0.0) if normalization == "tmm" else min(h.score for h in hits)
    span = top - low
    if span <= 0:
        return lambda s: 1.0
    return lambda s: max(0.0, (s - low) / span)


def _ranked(fused: dict[str, Hit]) -> list[Hit]:
    return sorted(fused.values(), key=lambda h: (-h.score, h.chunk.id))
