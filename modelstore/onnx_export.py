"""Export a sentence-transformers embedder to ONNX (fp32, or dynamic int8) for ONNX Runtime.

On a CPU, ONNX Runtime embeds several times faster than torch on the same weights
(``docs/BENCHMARKS.md``, ``bench/retrieval.py --backends``), so ``DOCQA_EMBED_BACKEND=auto``
runs it there; :func:`choose_backend` says which backend a run uses.

What is exported is the transformer only, as ``(input_ids, attention_mask) -> last_hidden_state``
with dynamic batch and sequence axes, by torch's TorchScript exporter at opset 17 (the module is
wrapped: called directly, the BERT model gets ``use_cache`` twice). Pooling and L2 normalisation
follow the folder's ``modules.json`` and ``1_Pooling/config.json`` and run in numpy, in
``index/onnx_embedder.py``; a folder with any other module (a Dense layer, say) is refused
rather than embedded differently. int8 is ``onnxruntime.quantization.quantize_dynamic``: QInt8
weights per channel (per tensor, MiniLM's vectors kept a mean cosine of 0.93 to torch; per
channel, 0.99), in 7 bits (``reduce_range``): on an x86 CPU without VNNI (AVX2 only) ONNX
Runtime's u8 x s8 kernel saturates on 8-bit weights, and MiniLM's worst probe cosine to torch fell
to 0.976 there (0.99 with 7 bits); ONNX Runtime's quantization guide gives the same advice.

An export folder stands alone: ``model.onnx``; ``tokenizer.json``, the very Rust tokenizer the
torch path runs (saved from the loaded transformers tokenizer, whose ``tokenizer.json`` on disk
may differ); and ``docqa-onnx.json``, written last, with the layout, the source it came from and
the sha256 of each file. ``OnnxExport.verify`` re-hashes the files and refuses a mismatch. Before
the marker is written the export is checked against torch on probe texts (English, Chinese, one
past the token limit) and refused under :data:`MIN_COSINE`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from modelstore.catalog import EmbedBackend, ModelSpec
from modelstore.errors import ModelFormatError, ModelIntegrityError

log = logging.getLogger(__name__)

ONNX_BACKENDS: tuple[EmbedBackend, ...] = ("onnx", "onnx-int8")
ONNX_MARKER = "docqa-onnx.json"
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
OPSET = 17
# Version of the export folder's layout; another one is re-exported. 2: int8 weights use 7 bits
# (``reduce_range``), so exports made under 1 are quantized again.
LAYOUT = 2
Pooling = Literal["mean", "cls"]
# The lowest cosine to torch accepted on the probe texts at export. fp32 differs by rounding
# only; int8's bound sits under what the tests measure on MiniLM and e5 (tests/index/).
MIN_COSINE: dict[str, float] = {"onnx": 0.999, "onnx-int8": 0.95}
PROBES = (
    "Rollback must finish within 15 minutes of a failed deployment.",
    "query: how long may a rollback take?",
    "部署失败后，回滚必须在十五分钟内完成。",
    "passage: " + "The quarterly report lists revenue, costs and the outlook. " * 80,
)
_ST_MODULE = "sentence_transformers.models."


def embedder_id(name: str, backend: EmbedBackend) -> str:
    """The id vectors are recorded under: torch keeps the plain name, others carry the backend.

    >>> embedder_id("multilingual-e5-small", "onnx-int8")
    'multilingual-e5-small@onnx-int8'
    """
    return name if backend == "torch" else f"{name}@{backend}"


def choose_backend(requested: str, spec: ModelSpec, device: str) -> EmbedBackend:
    """``DOCQA_EMBED_BACKEND``, or for ``auto``: torch on CUDA; on a CPU the model's measured
    choice (``ModelSpec.cpu_embed_backend`` in the catalog), and torch for a model nobody
    measured (a user's folder or hub id: used as it is, with no export step to run first).

    >>> from modelstore.catalog import MODELS
    >>> choose_backend("auto", MODELS["multilingual-e5-small"], "cuda")
    'torch'
    """
    if requested in ("torch", "onnx", "onnx-int8"):
        return requested  # type: ignore[return-value]
    if requested != "auto":
        raise ValueError(f"unknown embed backend {requested!r}")
    if device == "cuda":
        return "torch"
    return spec.cpu_embed_backend or "torch"


# ---------------------------------------------------------------------------------- layout
@dataclass(frozen=True)
class Layout:
    """What a sentence-transformers folder does after its transformer."""

    pooling: Pooling
    normalize: bool


def read_layout(folder: Path) -> Layout:
    """Read ``modules.json`` and the pooling config; refuse what the ONNX path does not run."""
    try:
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelFormatError(f"{folder} has no readable modules.json: {exc}") from exc
    kinds = [str(m.get("type", "")).removeprefix(_ST_MODULE) for m in modules]
    pooling_dir = folder / str(modules[1].get("path", "")) if len(modules) > 1 else folder
    if kinds[:2] != ["Transformer", "Pooling"] or kinds[2:] not in ([], ["Normalize"]):
        raise ModelFormatError(
            f"{folder}: modules {kinds} are not Transformer, Pooling[, Normalize]; the ONNX "
            "backend runs only those: set DOCQA_EMBED_BACKEND=torch for this model"
        )
    try:
        cfg = json.loads((pooling_dir / "config.json").read_text(encoding="utf-8"))
        st_path = folder / "sentence_bert_config.json"
        st_cfg = json.loads(st_path.read_text(encoding="utf-8")) if st_path.is_file() else {}
    except (OSError, ValueError) as exc:
        raise ModelFormatError(
            f"{folder}: unreadable pooling or sentence-bert config: {exc}"
        ) from exc
    modes = sorted(
        k.removeprefix("pooling_mode_")
        for k, v in cfg.items()
        if k.startswith("pooling_mode_") and v is True
    )
    if modes not in (["mean_tokens"], ["cls_token"]) or st_cfg.get("do_lower_case"):
        raise ModelFormatError(
            f"{folder}: pooling {modes} (do_lower_case={st_cfg.get('do_lower_case')}) is not "
            "mean or CLS pooling as the ONNX backend runs it: set DOCQA_EMBED_BACKEND=torch"
        )
    return Layout(
        pooling="mean" if modes == ["mean_tokens"] else "cls",
        normalize=kinds[2:] == ["Normalize"],
    )


# ---------------------------------------------------------------------------------- export
def export_embedder(source: Path, out_dir: Path, backend: EmbedBackend) -> dict[str, Any]:
    """Write ``backend``'s export of the folder ``source`` into ``out_dir``, marker last."""
    if backend not in ONNX_BACKENDS:
        raise ValueError(f"{backend!r} is not an ONNX backend")
    started = time.monotonic()
    layout = read_layout(source)
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(source), device="cpu")
    tokenizer = model.tokenizer
    max_len, dimension = model.max_seq_length, model.get_embedding_dimension()
    if not max_len or not dimension:
        raise ModelFormatError(f"{source} states no max_seq_length or embedding dimension")
    wrapped = _hidden_states(model[0].auto_model)
    fp32 = out_dir / (MODEL_FILE if backend == "onnx" else "fp32.onnx")
    try:
        _torch_export(wrapped, tokenizer, fp32)
        if backend == "onnx-int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            with _quiet_root_logger():  # the quantizer logs a line per tensor on the root logger
                quantize_dynamic(
                    fp32,
                    out_dir / MODEL_FILE,
                    weight_type=QuantType.QInt8,
                    per_channel=True,
                    reduce_range=True,
                )
            fp32.unlink()
    except Exception as exc:  # torch and onnx raise many types; the user needs one message
        raise ModelFormatError(
            f"could not export {source} to ONNX ({type(exc).__name__}: {exc}); set "
            "DOCQA_EMBED_BACKEND=torch for this model"
        ) from exc
    tokenizer.backend_tokenizer.save(str(out_dir / TOKENIZER_FILE))
    info: dict[str, Any] = {
        "layout": LAYOUT,
        "backend": backend,
        "source": str(source),
        "source_fingerprint": source_fingerprint(source),
        "pooling": layout.pooling,
        "normalize": layout.normalize,
        "max_seq_length": int(max_len),
        "dimension": int(dimension),
        "pad_id": int(tokenizer.pad_token_id or 0),
        "opset": OPSET,
    }
    info["min_probe_cosine"] = _check_against_torch(wrapped, tokenizer, out_dir, info)
    info["seconds"] = round(time.monotonic() - started, 1)
    write_marker(out_dir, info)
    log.info(
        "exported %s as %s in %.1f s (probe cosine to torch >= %.4f)",
        source,
        backend,
        info["seconds"],
        info["min_probe_cosine"],
    )
    return info


def _hidden_states(model: Any) -> Any:
    """``forward(ids, mask) -> last_hidden_state``: the graph ONNX Runtime runs."""
    import torch

    class HiddenStates(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            hidden: torch.Tensor = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
            return hidden

    return HiddenStates().eval()


def _torch_export(wrapped: Any, tokenizer: Any, path: Path) -> None:
    import torch

    sample = tokenizer(["a short text", "a somewhat longer example text"], padding=True)
    ids = torch.tensor(sample["input_ids"], dtype=torch.int64)
    mask = torch.tensor(sample["attention_mask"], dtype=torch.int64)
    axes = {0: "batch", 1: "sequence"}
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer warns that shape checks in transformers' mask code become constants; they
        # only decide padding that an (ids, mask) input never needs, and the export is checked.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapped,
            (ids, mask),
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["last_hidden_state"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "last_hidden_state": axes},
            opset_version=OPSET,
            dynamo=False,
        )


def _mean_of_tokens(hidden: NDArray[np.float32], mask: NDArray[np.int64]) -> NDArray[np.float32]:
    """Unit-length mean of each text's token vectors: what the check compares, whatever the
    model's pooling (mean pooling sees every token, so it shows any token's error)."""
    weights = mask[:, :, None].astype(np.float32)
    mean = (hidden * weights).sum(axis=1) / weights.sum(axis=1)
    unit: NDArray[np.float32] = mean / np.linalg.norm(mean, axis=1, keepdims=True)
    return unit


@contextmanager
def _quiet_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        root.setLevel(level)


def _check_against_torch(
    wrapped: Any, tokenizer: Any, out_dir: Path, info: dict[str, Any]
) -> float:
    """The lowest cosine between torch's and ONNX Runtime's pooled probe vectors."""
    import onnxruntime as ort
    import torch

    enc = tokenizer(list(PROBES), padding=True, truncation=True, max_length=info["max_seq_length"])
    ids = np.asarray(enc["input_ids"], dtype=np.int64)
    mask = np.asarray(enc["attention_mask"], dtype=np.int64)
    with torch.no_grad():
        ref = wrapped(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
    session = ort.InferenceSession(str(out_dir / MODEL_FILE), providers=["CPUExecutionProvider"])
    got = session.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask})[0]
    a, b = _mean_of_tokens(ref, mask), _mean_of_tokens(np.asarray(got, np.float32), mask)
    worst = float(np.min(np.sum(a * b, axis=1)))
    if worst < MIN_COSINE[info["backend"]]:
        raise ModelFormatError(
            f"the {info['backend']} export of {info['source']} differs from torch (cosine "
            f"{worst:.4f} < {MIN_COSINE[info['backend']]}); set DOCQA_EMBED_BACKEND=torch"
        )
    return round(worst, 5)


# ---------------------------------------------------------------------------- marker, pins
def write_marker(out_dir: Path, info: dict[str, Any]) -> None:
    """Pin every file of ``out_dir`` by size and sha256, flush them, then write the marker."""
    files = {}
    for path in sorted(p for p in out_dir.iterdir() if p.is_file() and p.name != ONNX_MARKER):
        files[path.name] = {"size": path.stat().st_size, "sha256": _sha256(path)}
        _fsync(path)
    marker = out_dir / ONNX_MARKER
    marker.write_text(json.dumps({**info, "files": files}, indent=2), encoding="utf-8")
    _fsync(marker)


@dataclass(frozen=True)
class OnnxExport:
    """A verified export folder, as :func:`read_export` found it."""

    folder: Path
    backend: EmbedBackend
    pooling: Pooling
    normalize: bool
    max_seq_length: int
    dimension: int
    pad_id: int
    source: str
    source_fingerprint: str
    files: dict[str, dict[str, Any]]

    @property
    def model_file(self) -> Path:
        return self.folder / MODEL_FILE

    @property
    def tokenizer_file(self) -> Path:
        return self.folder / TOKENIZER_FILE

    @property
    def size(self) -> int:
        return sum(int(f["size"]) for f in self.files.values())

    @property
    def redo(self) -> str:
        return f"remove {self.folder} and run `docqa models prepare` to export it again"

    def verify(self) -> None:
        """Re-hash every file; refuse one that changed since the export (ModelIntegrityError)."""
        for name, pin in self.files.items():
            path = self.folder / name
            if not path.is_file() or (digest := _sha256(path)) != pin["sha256"]:
                found = f"has sha256 {digest}" if path.is_file() else "is missing"
                raise ModelIntegrityError(
                    f"{path} {found}, but the export recorded {pin['sha256']}: the file was "
                    f"changed or damaged; {self.redo}"
                )


def read_export(folder: Path) -> OnnxExport:
    """The export in ``folder``, its files present at their recorded sizes (``verify()``
    re-hashes them). Raises ModelFormatError when the marker is missing or unreadable or of
    another layout, ModelIntegrityError when a file is missing or resized.
    """
    try:
        info = json.loads((folder / ONNX_MARKER).read_text(encoding="utf-8"))
        export = OnnxExport(
            folder=folder,
            backend=info["backend"],
            pooling=info["pooling"],
            normalize=bool(info["normalize"]),
            max_seq_length=int(info["max_seq_length"]),
            dimension=int(info["dimension"]),
            pad_id=int(info["pad_id"]),
            source=str(info["source"]),
            source_fingerprint=str(info["source_fingerprint"]),
            files=dict(info["files"]),
        )
        layout = info["layout"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelFormatError(f"{folder} holds no finished ONNX export ({exc})") from exc
    if layout != LAYOUT or {MODEL_FILE, TOKENIZER_FILE} - set(export.files):
        raise ModelFormatError(f"{folder} is an export of another layout ({layout})")
    for name, pin in export.files.items():
        path = folder / name
        if not path.is_file() or path.stat().st_size != pin["size"]:
            raise ModelIntegrityError(
                f"{path} is missing or resized since the export: {export.redo}"
            )
    return export


def source_fingerprint(folder: Path) -> str:
    """A digest of the names, sizes and mtimes of a model folder's files: a model replaced or
    reinstalled at the same path gets a new one, so its old export is not reused."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and ".cache" not in p.parts):
        stat = path.stat()
        digest.update(f"{path.relative_to(folder)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(8 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
