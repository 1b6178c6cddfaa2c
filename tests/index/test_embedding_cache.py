"""The persistent embedding cache: a text embedded once by a model is never embedded again."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from index.embedders import HashEmbedder
from index.embedding_cache import CachedEmbedder, EmbeddingCache


class PrefixedHash(HashEmbedder):
    query_prefix = "query: "
    passage_prefix = "passage: "


def test_hits_and_misses_and_persistence(tmp_path: Path) -> None:
    inner = PrefixedHash()
    cache = EmbeddingCache(tmp_path / "emb.sqlite")
    emb = CachedEmbedder(inner, cache)
    first = emb.embed_documents(["alpha beta", "gamma", "alpha beta"])
    assert inner.calls == 2  # the repeated text is embedded once
    assert (emb.hits, emb.misses) == (1, 2)  # the repeat is served without the model
    again = emb.embed_documents(["gamma", "alpha beta"])
    assert inner.calls == 2
    np.testing.assert_allclose(again, first[[1, 0]])
    cache.close()

    reopened = CachedEmbedder(PrefixedHash(), EmbeddingCache(tmp_path / "emb.sqlite"))
    reopened.embed_documents(["alpha beta"])
    assert reopened.inner.calls == 0  # type: ignore[attr-defined]
    stats = reopened.cache.stats()
    assert stats.entries == 2 and stats.by_model == {"hash-embedder": 2}
    assert (stats.hits, stats.misses) == (1 + 2 + 1, 2)


def test_key_includes_model_and_prefix(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "emb.sqlite")
    a = CachedEmbedder(PrefixedHash(model_id="model-a"), cache)
    b = CachedEmbedder(PrefixedHash(model_id="model-b"), cache)
    a.embed_documents(["same text"])
    b.embed_documents(["same text"])
    assert b.inner.calls == 1  # type: ignore[attr-defined]  # another model: not a hit
    a.embed_query("same text")
    assert a.inner.calls == 2  # type: ignore[attr-defined]  # a query has another prefix
    assert cache.stats().entries == 3


def test_vectors_roundtrip_exactly(tmp_path: Path) -> None:
    emb = CachedEmbedder(PrefixedHash(dimension=16), EmbeddingCache(tmp_path / "e.sqlite"))
    v1 = emb.embed_query("exact vectors please")
    v2 = emb.embed_query("exact vectors please")
    assert v1.dtype == np.float32 and v1.shape == (16,)
    np.testing.assert_array_equal(v1, v2)
