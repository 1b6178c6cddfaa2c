"""An embedder on ONNX Runtime (CPU): the same vectors as the torch one, several times faster.

It runs an export made by ``docqa models prepare`` (``modelstore/onnx_export.py``), given
as an :class:`OnnxModelFiles`; ``load()`` first has the files re-hashed against the sha256 the
export recorded, so a changed file is refused.
It honours the interface of ``SentenceTransformerEmbedder``, so ``CachedEmbedder`` and the
ingest pipeline use it unchanged; its ``model_id`` carries the backend
(``multilingual-e5-small@onnx-int8``), so its vectors never share a cache key or a collection
with another backend's.

Texts are tokenized with the export's Rust tokenizer (the one the torch path runs), truncated at
the model's ``max_seq_length`` as that tokenizer truncates (`SpecialTokens`), sorted by length and
batched so that a batch pads little and
holds at most ``max_batch_tokens`` tokens (attention memory grows with the square of the
length). Pooling (mean or CLS) and L2 normalization are numpy, as sentence-transformers does
them.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from index.prefixed import PrefixedEmbedder
from index.protocols import Vectors

log = logging.getLogger(__name__)


class OnnxModelFiles(Protocol):
    """An export folder as ``modelstore.onnx_export.read_export`` describes it."""

    @property
    def model_file(self) -> Path: ...

    @property
    def tokenizer_file(self) -> Path: ...

    @property
    def pooling(self) -> str: ...  # "mean" or "cls"

    @property
    def normalize(self) -> bool: ...

    @property
    def max_seq_length(self) -> int: ...

    @property
    def dimension(self) -> int: ...

    @property
    def pad_id(self) -> int: ...

    def verify(self) -> None:
        """Raise if a file differs from what the export recorded."""
        ...


def pool(
    hidden: NDArray[np.float32], mask: NDArray[np.int64], mode: str, normalize: bool
) -> NDArray[np.float32]:
    """Sentence vectors from token vectors ``(batch, seq, dim)``, as sentence-transformers pools.

    >>> h = np.array([[[1.0, 0.0], [3.0, 4.0], [9.0, 9.0]]], dtype=np.float32)
    >>> pool(h, np.array([[1, 1, 0]]), "mean", False).tolist()
    [[2.0, 2.0]]
    """
    if mode == "cls":
        out = hidden[:, 0, :].astype(np.float32)
    else:
        weights = mask[:, :, None].astype(np.float32)
        out = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
    if normalize:
        out = out / np.clip(np.linalg.norm(out, axis=1, keepdims=True), 1e-12, None)
    return out.astype(np.float32, copy=False)


@dataclass(frozen=True)
class SpecialTokens:
    """The ids a tokenizer's post-processor puts before and after one sequence (XLM-R: <s> and
    </s>; BERT: [CLS] and [SEP]). Truncating the bare tokens to the model's limit minus these and
    putting them around gives exactly what the tokenizer's own truncation gives."""

    before: tuple[int, ...]
    after: tuple[int, ...]

    @classmethod
    def of(cls, tokenizer: Any) -> SpecialTokens:
        bare = tokenizer.encode("a", add_special_tokens=False).ids
        full = tokenizer.encode("a", add_special_tokens=True).ids
        for start in range(len(full) - len(bare) + 1):
            if full[start : start + len(bare)] == bare:
                return cls(tuple(full[:start]), tuple(full[start + len(bare) :]))
        raise ValueError(f"the tokenizer's special tokens are not around the text: {full}")


def cpu_threads() -> int:
    """The cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


# Padded tokens a batch may hold. ONNX Runtime's arena keeps the peak of activation memory for
# the life of the process, so the widest batch sets the service's memory for good. 100 passages
# on 2 AVX2 cores (2026-12-06), e5 int8, budget 2048 -> 512 tokens: peak +0.29 -> +0.05 GiB over
# the loaded model, and no slower (XQuAD 7.1 -> 6.3 s, CMRC 2018 19.6 -> 17.4 s); e5 fp32 and
# MiniLM fp32 were faster at 512 too. Wider batches only pad more: texts are sorted by length.
MAX_BATCH_TOKENS = 512


class OnnxEmbedder(PrefixedEmbedder):
    def __init__(
        self,
        files: OnnxModelFiles,
        model_id: str,
        query_prefix: str = "",
        passage_prefix: str = "",
        batch_size: int = 32,
        max_batch_tokens: int = MAX_BATCH_TOKENS,
        threads: int | None = None,
    ) -> None:
        self.files = files
        super().__init__(model_id, query_prefix, passage_prefix)
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.threads = threads or cpu_threads()
        self.device = "cpu"
        self._lock = threading.Lock()
        self._session: Any = None
        # One tokenizer, never reconfigured after load (so threads may share it), without
        # truncation or special tokens: e5's takes 0.28 GiB resident, and a second copy
        # configured to truncate was the largest removable part of the service's memory.
        self._tokenizer: Any = None
        self._specials = SpecialTokens((), ())

    def load(self) -> OnnxEmbedder:
        if self._session is not None:  # set last, so everything else is ready when it is
            return self
        with self._lock:
            if self._session is None:
                import onnxruntime as ort
                from tokenizers import Tokenizer

                files = self.files
                files.verify()  # refuses files changed since the export
                options = ort.SessionOptions()
                options.intra_op_num_threads = self.threads
                options.inter_op_num_threads = 1
                options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
                options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                # Idle threads sleep instead of spinning: on a busy 2-core machine spinning cost
                # MiniLM int8 25% more CPU time and more wall time too (64 XQuAD passages: 5.1
                # vs 4.0 CPU s), and it steals cores from llama.cpp and the parse threads.
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                session = ort.InferenceSession(
                    str(files.model_file), options, providers=["CPUExecutionProvider"]
                )
                tokenizer = Tokenizer.from_file(str(files.tokenizer_file))
                tokenizer.no_padding()
                tokenizer.no_truncation()
                self._specials = SpecialTokens.of(tokenizer)
                self._tokenizer = tokenizer
                self._session = session
                log.info(
                    "embedder %s loaded (ONNX Runtime %s, %d threads, %s)",
                    self.model_id,
                    ort.__version__,
                    self.threads,
                    files.model_file,
                )
        return self

    @property
    def dimension(self) -> int:
        return self.files.dimension

    @property
    def max_tokens(self) -> int:
        return self.files.max_seq_length

    def count_tokens(self, text: str) -> int:
        # Rust tokenizers are safe to share across threads as long as nobody reconfigures
        # them; these two are configured once, at load.
        self.load()
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def _encode(self, texts: list[str]) -> Vectors:
        files = self.load().files
        out = np.zeros((len(texts), files.dimension), dtype=np.float32)
        if not texts:
            return out
        encoded = self.token_ids(texts)
        for batch in self._batches([len(e) for e in encoded]):
            width = max(len(encoded[i]) for i in batch)
            ids = np.full((len(batch), width), files.pad_id, dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, i in enumerate(batch):
                n = len(encoded[i])
                ids[row, :n] = encoded[i]
                mask[row, :n] = 1
            hidden = self._session.run(
                ["last_hidden_state"], {"input_ids": ids, "attention_mask": mask}
            )[0]
            out[batch] = pool(hidden, mask, files.pooling, files.normalize)
        return out

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        """The model's input ids of each text: special tokens around its tokens, cut to the
        model's ``max_seq_length`` (what the tokenizer's own truncation gives)."""
        self.load()
        room = self.files.max_seq_length - len(self._specials.before) - len(self._specials.after)
        before, after = list(self._specials.before), list(self._specials.after)
        encodings = self._tokenizer.encode_batch(texts, add_special_tokens=False)
        return [before + e.ids[: max(0, room)] + after for e in encodings]

    def _batches(self, lengths: list[int]) -> list[list[int]]:
        """Indices grouped by similar length, longest first: at most ``batch_size`` texts and
        ``max_batch_tokens`` padded tokens a batch (one text always fits)."""
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        batches: list[list[int]] = []
        current: list[int] = []
        for i in order:
            width = lengths[current[0]] if current else lengths[i]  # the batch's longest
            if current and (
                len(current) >= self.batch_size
                or (len(current) + 1) * width > self.max_batch_tokens
            ):
                batches.append(current)
                current = []
            current.append(i)
        if current:
            batches.append(current)
        return batches
