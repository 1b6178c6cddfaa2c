"""Fusion functions: the convex combination by hand, its normalizations, and the case plain RRF
gets wrong (a strong dense match that keyword search ranks low)."""

from __future__ import annotations

import pytest

from config.settings import Settings
from index.fusion import convex_combination, reciprocal_rank_fusion
from index.retriever import RetrievalConfig, Retriever
from index.types import Chunk, Hit


def hit(cid: str, score: float) -> Hit:
    return Hit(Chunk(cid, f"text {cid}", "d", "s", "t", 0, 0, 1), score, {})


def test_convex_by_hand_with_theoretical_min_max() -> None:
    dense = [hit("a", 0.9), hit("b", 0.5)]
    keyword = [hit("b", 8.0), hit("c", 2.0)]
    fused = {h.chunk.id: h for h in convex_combination({"dense": dense, "keyword": keyword}, 0.6)}
    # dense: (s + 1) / (0.9 + 1); keyword: s / 8; a chunk missing from a list gets 0 there.
    assert fused["a"].score == pytest.approx(0.6 * 1.0)
    assert fused["b"].score == pytest.approx(0.6 * 1.5 / 1.9 + 0.4 * 1.0)
    assert fused["c"].score == pytest.approx(0.4 * 0.25)
    assert fused["b"].scores == {
        "dense": 0.5,
        "dense_rank": 2.0,
        "keyword": 8.0,
        "keyword_rank": 1.0,
        "convex": pytest.approx(fused["b"].score),
    }


def test_per_query_min_max_spans_each_list() -> None:
    dense = [hit("a", 0.9), hit("b", 0.7), hit("c", 0.5)]
    fused = convex_combination({"dense": dense, "keyword": []}, 1.0, "mm")
    assert [round(h.score, 6) for h in fused] == [1.0, 0.5, 0.0]


def test_alpha_one_is_dense_and_zero_is_keyword() -> None:
    dense = [hit("a", 0.9), hit("b", 0.8), hit("c", 0.1)]
    keyword = [hit("c", 9.0), hit("b", 3.0)]
    lists = {"dense": dense, "keyword": keyword}
    assert [h.chunk.id for h in convex_combination(lists, 1.0)][:3] == ["a", "b", "c"]
    assert [h.chunk.id for h in convex_combination(lists, 0.0)][:2] == ["c", "b"]
    with pytest.raises(ValueError, match="alpha"):
        convex_combination(lists, 1.5)


def _dense_first_case() -> dict[str, list[Hit]]:
    """A multi-hop question: dense finds the gold passage g with a clear margin; keyword search
    matches the question's words in passages that do not answer it, and has g at rank 6."""
    dense = [hit("g", 0.93)] + [hit(f"d{i}", 0.80 - 0.01 * i) for i in range(9)]
    keyword = [hit(f"d{i}", 14.0 - i) for i in range(5)] + [hit("g", 6.0)]
    return {"dense": dense, "keyword": keyword}


def test_plain_rrf_loses_the_dense_first_case() -> None:
    assert reciprocal_rank_fusion(_dense_first_case())[0].chunk.id != "g"


def test_the_shipped_fusion_keeps_the_dense_first_case() -> None:
    s = Settings()
    config = RetrievalConfig(
        fusion=s.retrieval_fusion, alpha=s.fusion_alpha, normalization=s.fusion_normalization
    )
    assert _fuse(config, _dense_first_case())[0].chunk.id == "g"


def test_rrf_stays_available() -> None:
    config = RetrievalConfig(fusion="rrf")
    assert "rrf" in _fuse(config, _dense_first_case())[0].scores


def test_fusion_leaves_its_input_lists_alone() -> None:
    """bench/fusion.py scores many fusions on the same candidate lists without copying them."""
    lists = _dense_first_case()
    before = {m: [(h.chunk.id, h.score, dict(h.scores)) for h in hits] for m, hits in lists.items()}
    for fusion in ("convex", "rrf"):
        _fuse(RetrievalConfig(fusion=fusion), lists)
    after = {m: [(h.chunk.id, h.score, dict(h.scores)) for h in hits] for m, hits in lists.items()}
    assert after == before


def _fuse(config: RetrievalConfig, lists: dict[str, list[Hit]]) -> list[Hit]:
    """The retriever's own fusion (it needs no embedder or index for that)."""
    return Retriever(None, None, None, config=config).fuse(lists)  # type: ignore[arg-type]
