"""The real embedder's behaviour around the model: prefixes, normalization, OOM back-off."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from index.embedders import SentenceTransformerEmbedder
from modelstore.cache import ModelCache
from modelstore.catalog import MODELS


class _OomModel:
    """Stands in for SentenceTransformer.encode: fails like CUDA does above a batch size."""

    def __init__(self, fits: int) -> None:
        self.fits = fits
        self.batches: list[int] = []

    def get_embedding_dimension(self) -> int:
        return 4

    def encode(self, texts: Sequence[str], batch_size: int, **_: Any) -> np.ndarray:
        self.batches.append(batch_size)
        if batch_size > self.fits:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return np.ones((len(texts), 4), dtype=np.float32) / 2.0


def test_cuda_oom_halves_the_batch_and_logs(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    embedder = SentenceTransformerEmbedder("unused", "m", batch_size=64)
    fake = _OomModel(fits=16)
    embedder._model = fake
    with caplog.at_level(logging.WARNING, logger="index.embedders"):
        out = embedder.embed_documents(["a"] * 100)
    assert out.shape == (100, 4)
    assert fake.batches == [64, 32, 16]
    assert "retrying with batch 16" in caplog.text


def test_other_errors_are_not_swallowed() -> None:
    embedder = SentenceTransformerEmbedder("unused", "m", batch_size=8)
    fake = _OomModel(fits=0)
    embedder._model = fake
    embedder.batch_size = 1
    with pytest.raises(RuntimeError, match="out of memory"):
        embedder.embed_documents(["a"])  # batch 1 cannot shrink further


def test_real_embedder_prefixes_and_normalizes(test_models: ModelCache) -> None:
    path = test_models.status(MODELS["all-minilm-l6-v2"]).path
    assert path is not None
    plain = SentenceTransformerEmbedder(path, "minilm", device="cpu")
    prefixed = SentenceTransformerEmbedder(
        path, "minilm", query_prefix="query: ", passage_prefix="passage: ", device="cpu"
    )
    q = prefixed.embed_query("rollback time")
    assert q.shape == (plain.dimension,) and np.isclose(np.linalg.norm(q), 1.0, atol=1e-4)
    np.testing.assert_allclose(q, plain.embed_raw(["query: rollback time"])[0], atol=1e-5)
    d = prefixed.embed_documents(["Rollback must finish within 15 minutes."])
    np.testing.assert_allclose(
        d[0], plain.embed_raw(["passage: Rollback must finish within 15 minutes."])[0], atol=1e-5
    )
    tokens = plain.model.tokenizer.tokenize("rollback time")  # the wordpieces, no [CLS]/[SEP]
    assert plain.count_tokens("rollback time") == len(tokens) > 0
