"""DOCQA_EMBED_BACKEND through the composition root: each backend's vectors stay apart.

The backend is part of the embedder id, and that id keys the embedding cache and is recorded in
each collection, so a vector made by one backend is never served for, or mixed with, another's.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import Settings
from index.embedders import SentenceTransformerEmbedder
from index.errors import EmbedderMismatchError
from index.onnx_embedder import OnnxEmbedder
from modelstore.cache import ModelCache
from modelstore.catalog import MODELS
from modelstore.errors import ModelNotInstalledError
from modelstore.onnx_export import choose_backend, embedder_id
from tests.conftest import TEST_MODELS_DIR
from wiring.compose import Services

MINILM = MODELS["all-minilm-l6-v2"]


@pytest.fixture(scope="module")
def exports(test_models: ModelCache) -> ModelCache:
    for backend in ("onnx", "onnx-int8"):
        test_models.prepare_onnx(MINILM, backend)  # type: ignore[arg-type]
    return test_models


def _services(data: Path, backend: str) -> Services:
    settings = Settings(
        data_dir=data, models_dir=TEST_MODELS_DIR, profile="test", embed_backend=backend
    )
    return Services.build(settings)


def test_each_backend_has_its_own_id_and_cache_entries(exports: ModelCache, tmp_path: Path) -> None:
    ids = {}
    for backend, kind in [
        ("torch", SentenceTransformerEmbedder),
        ("onnx", OnnxEmbedder),
        ("onnx-int8", OnnxEmbedder),
    ]:
        services = _services(tmp_path / "data", backend)  # one data dir: one embedding cache
        try:
            assert isinstance(services.embedder.inner, kind)
            ids[backend] = services.embedder.model_id
            services.embedder.embed_documents(["Rollback must finish within 15 minutes."])
            assert services.embedder.misses == 1  # another backend's vector is not a hit
            stats = services.cache.stats()
        finally:
            services.close()
    assert ids == {
        "torch": "all-minilm-l6-v2",  # unchanged: existing caches and collections stay valid
        "onnx": "all-minilm-l6-v2@onnx",
        "onnx-int8": "all-minilm-l6-v2@onnx-int8",
    }
    assert stats.by_model == dict.fromkeys(ids.values(), 1)


def test_a_collection_refuses_vectors_of_another_backend(
    exports: ModelCache, tmp_path: Path
) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.md").write_text("# Rollback\n\nRollback must finish within 15 minutes.\n")
    torch = _services(tmp_path / "data", "torch")
    try:
        assert torch.ingestor("docs").ingest([corpus]).files_new == 1
    finally:
        torch.close()
    onnx = _services(tmp_path / "data", "onnx-int8")
    try:
        with pytest.raises(EmbedderMismatchError, match="all-minilm-l6-v2@onnx-int8"):
            onnx.vectors("docs")
    finally:
        onnx.close()


def test_auto_on_a_cpu_runs_the_models_measured_backend(
    exports: ModelCache, tmp_path: Path
) -> None:
    settings = Settings(
        data_dir=tmp_path / "data", models_dir=TEST_MODELS_DIR, profile="test", device="cpu"
    )
    services = Services.build(settings)
    try:
        backend = choose_backend("auto", MINILM, "cpu")
        assert backend != "torch"
        assert services.embedder.model_id == embedder_id(MINILM.name, backend)
    finally:
        services.close()


def test_a_missing_export_names_the_command_that_makes_it(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        models_dir=tmp_path / "models",
        profile="test",
        embed_backend="onnx",
    )
    with pytest.raises(ModelNotInstalledError, match=r"docqa models prepare --profile test"):
        Services.build(settings)
