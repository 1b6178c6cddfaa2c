"""The ONNX Runtime embedder against the torch one, on the real MiniLM and multilingual-e5-small.

Tolerances, cosine per vector to torch fp32 on ``TEXTS``: fp32 ONNX >= 0.999 (it differs by
rounding only: measured 1.00000 for both models); int8 >= 0.98, under the lowest measured (MiniLM
0.985 on "x", e5 0.993 on the long Chinese text). Per-tensor int8 weights measured 0.86 on MiniLM,
so the bound catches a quantization that damages vectors. What int8 costs in retrieval is in
docs/BENCHMARKS.md.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from index.embedders import SentenceTransformerEmbedder
from index.onnx_embedder import OnnxEmbedder
from modelstore.cache import ModelCache
from modelstore.catalog import MODELS, ModelSpec
from modelstore.errors import ModelIntegrityError
from modelstore.onnx_export import embedder_id, read_export

FP32_MIN_COSINE = 0.999
INT8_MIN_COSINE = 0.98
MINILM = MODELS["all-minilm-l6-v2"]
E5 = MODELS["multilingual-e5-small"]
TEXTS = [
    "Rollback must finish within 15 minutes of a failed deployment.",
    "How long may a rollback take?",
    "部署失败后，回滚必须在十五分钟内完成。",
    "Die Rücknahme muss innerhalb von 15 Minuten abgeschlossen sein.",
    "x",
    "  leading and trailing spaces  ",
    # Over every model's limit (MiniLM 256, e5 512 tokens): the tail is cut as torch cuts it.
    "The quarterly report lists revenue, costs and the outlook for the next year. " * 60,
    "季度报告列出了收入、成本和明年的展望。" * 60,
]


def _pair(cache: ModelCache, spec: ModelSpec, backend: str) -> tuple[OnnxEmbedder, Path]:
    cache.prepare(spec)
    cache.prepare_onnx(spec, backend)  # type: ignore[arg-type]
    status = cache.onnx_status(spec, backend)  # type: ignore[arg-type]
    assert status.ready and status.path is not None, status.detail
    embedder = OnnxEmbedder(
        read_export(status.path),
        embedder_id(spec.name, backend),  # type: ignore[arg-type]
        query_prefix=spec.query_prefix,
        passage_prefix=spec.passage_prefix,
        batch_size=4,  # several batches of different widths
    )
    source = cache.status(spec).path
    assert source is not None
    return embedder, source


def _torch(spec: ModelSpec, source: Path) -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(
        source, spec.name, spec.query_prefix, spec.passage_prefix, device="cpu"
    )


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.parametrize(
    ("backend", "bound"), [("onnx", FP32_MIN_COSINE), ("onnx-int8", INT8_MIN_COSINE)]
)
def test_minilm_matches_torch(test_models: ModelCache, backend: str, bound: float) -> None:
    onnx, source = _pair(test_models, MINILM, backend)
    torch = _torch(MINILM, source)
    got, want = onnx.embed_documents(TEXTS), torch.embed_documents(TEXTS)
    cosines = _cosines(got, want)
    assert cosines.min() >= bound, cosines.round(4).tolist()
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert onnx.dimension == torch.dimension and onnx.max_tokens == torch.max_tokens == 256
    query = onnx.embed_query("rollback time")
    assert query.shape == (onnx.dimension,) and query.dtype == np.float32
    assert float(_cosines(query[None], torch.embed_query("rollback time")[None])[0]) >= bound
    # The chunker sizes chunks with these counts: they must be the torch path's, exactly.
    assert [onnx.count_tokens(t) for t in TEXTS] == [torch.count_tokens(t) for t in TEXTS]


@pytest.fixture(scope="module")
def e5_cache(test_models: ModelCache) -> ModelCache:
    test_models.prepare(E5)  # rebuilt once into the shared test model cache
    return test_models


@pytest.mark.parametrize(
    ("backend", "bound"), [("onnx", FP32_MIN_COSINE), ("onnx-int8", INT8_MIN_COSINE)]
)
def test_e5_matches_torch_in_english_chinese_and_past_512_tokens(
    e5_cache: ModelCache, backend: str, bound: float
) -> None:
    onnx, source = _pair(e5_cache, E5, backend)
    torch = _torch(E5, source)
    assert onnx.count_tokens(TEXTS[-1]) > 512 and onnx.max_tokens == 512
    got, want = onnx.embed_documents(TEXTS), torch.embed_documents(TEXTS)
    cosines = _cosines(got, want)
    assert cosines.min() >= bound, cosines.round(4).tolist()
    q_got, q_want = onnx.embed_query("回滚要多久？"), torch.embed_query("回滚要多久？")
    assert float(_cosines(q_got[None], q_want[None])[0]) >= bound
    assert [onnx.count_tokens(t) for t in TEXTS] == [torch.count_tokens(t) for t in TEXTS]


@pytest.mark.parametrize("spec", [MINILM, E5], ids=["minilm", "e5"])
def test_one_tokenizer_gives_the_ids_of_a_truncating_one(
    e5_cache: ModelCache, spec: ModelSpec
) -> None:
    """The embedder keeps one tokenizer (no truncation, for counting too) and cuts the ids
    itself: the same ids as the tokenizer's own truncation, special tokens kept at both ends."""
    from tokenizers import Tokenizer

    onnx, _ = _pair(e5_cache, spec, "onnx")
    reference = Tokenizer.from_file(str(onnx.files.tokenizer_file))
    reference.no_padding()
    reference.enable_truncation(onnx.max_tokens)
    texts = [spec.passage_prefix + t for t in TEXTS]
    assert onnx.token_ids(texts) == [e.ids for e in reference.encode_batch(texts)]
    assert max(len(ids) for ids in onnx.token_ids(texts)) == onnx.max_tokens


def test_batching_by_length_keeps_the_order_and_the_vectors(test_models: ModelCache) -> None:
    onnx, _ = _pair(test_models, MINILM, "onnx")
    onnx.max_batch_tokens = 300  # long texts go alone, short ones together
    together = onnx.embed_raw(TEXTS)
    alone = np.stack([onnx.embed_raw([t])[0] for t in TEXTS])
    np.testing.assert_allclose(together, alone, atol=1e-5)  # padding changes nothing
    assert onnx.embed_raw([]).shape == (0, onnx.dimension)


def test_batches_group_similar_lengths_within_the_token_budget() -> None:
    embedder = OnnxEmbedder(_NoFiles(), "m", batch_size=3, max_batch_tokens=100)
    lengths = [5, 90, 6, 40, 7, 41, 8, 200]
    batches = embedder._batches(lengths)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        width = max(lengths[i] for i in batch)
        assert len(batch) <= 3 and (len(batch) == 1 or len(batch) * width <= 100)
    # Longest first; the 200-token text alone (one text always fits); short ones together.
    assert batches == [[7], [1], [5, 3], [6, 4, 2], [0]]


def test_count_tokens_is_safe_while_another_thread_embeds(test_models: ModelCache) -> None:
    onnx, _ = _pair(test_models, MINILM, "onnx")
    expected = [onnx.count_tokens(t) for t in TEXTS]
    seen: list[list[int]] = []
    errors: list[BaseException] = []

    def count() -> None:
        try:
            for _ in range(20):
                seen.append([onnx.count_tokens(t) for t in TEXTS])
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    thread = threading.Thread(target=count)
    thread.start()
    for _ in range(3):
        onnx.embed_documents(TEXTS)
    thread.join()
    assert not errors and seen == [expected] * 20


def test_a_changed_export_file_is_refused_at_load(test_models: ModelCache, tmp_path: Path) -> None:
    _pair(test_models, MINILM, "onnx")
    status = test_models.onnx_status(MINILM, "onnx")
    assert status.path is not None
    copy = tmp_path / status.path.name
    copy.mkdir()
    for f in status.path.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    data = bytearray((copy / "tokenizer.json").read_bytes())
    data[-3:-2] = b" " if data[-3:-2] != b" " else b"\n"  # same size, other content
    (copy / "tokenizer.json").write_bytes(bytes(data))
    embedder = OnnxEmbedder(read_export(copy), "m@onnx")
    with pytest.raises(ModelIntegrityError, match=r"tokenizer\.json has sha256 .*docqa models"):
        embedder.load()
    assert embedder.dimension == 384  # what the marker says is still readable


class _NoFiles:
    """Just enough of an export for the batching logic, which touches no file."""

    model_file = tokenizer_file = Path("/nonexistent")
    pooling, normalize, max_seq_length, dimension, pad_id = "mean", True, 512, 4, 0

    def verify(self) -> None:
        raise AssertionError("not loaded in this test")


def test_the_default_budget_keeps_full_length_batches_small() -> None:
    """ONNX Runtime keeps the peak activation memory of the widest batch for good (4 x 512
    tokens cost e5-small int8 0.25 GiB), so a full-length text goes alone by default; short ones
    still batch together."""
    embedder = OnnxEmbedder(_NoFiles(), "m")
    batches = embedder._batches([512] * 10 + [20] * 64 + [100] * 12)
    assert all(len(b) == 1 for b in batches if max(b) < 10)
    assert max(len(b) for b in batches) == 25  # 25 x 20 tokens
    assert all(len(b) * 100 <= 512 for b in batches if min(b) >= 74)
