"""A local causal LM through transformers, optionally quantized by bitsandbytes (int8 / NF4).

Loading (`load`, or lazily on first use):

- ``none``: fp16 on CUDA; on a CPU bf16 where the CPU has it natively (AVX512-BF16 or AMX: 2.6x
  faster than fp32 there), else fp32 (emulated bf16 is slower than fp32), logged at load.
- ``int8``: ``BitsAndBytesConfig(load_in_8bit=True)``.
- ``int4``: NF4, computing in the same dtype as ``none``.

Quantizing at load is slow (13-39 s for the 1.5B on CPU; 6-15 s int8 and about 20 s NF4 even
for the 135M on a busy 2-core CPU), so with a ``quantized_cache_dir`` the quantized model is
saved once to ``<dir>/<model_id>-<quant>-<cpu|cuda>/`` and later loads read it back (about
0.5 s). The save is crash-safe: written to a temporary folder, renamed into place, and a marker file
(`MARKER`) written last; a folder without a valid marker is ignored and rebuilt. The marker
records the source model's weight files (names and sizes) and the bitsandbytes version, and a
mismatch rebuilds the cache. Checked with bitsandbytes 0.50.2 on CPU: both int8
(``Linear8bitLt``) and NF4 (``Linear4bit``) save with ``save_pretrained`` and reload with the
same greedy output. If a save fails anyway, the quantized model is used as is and the failure
logged.

Generation is greedy (``do_sample=False``; temperature/top-p/top-k unset), one at a time under a
lock. Each step's scores give the log-probability of the chosen token; their mean is
``Generation.mean_logprob``. A stopping criterion ends generation at ``deadline``; a streamer
decodes incrementally, holding back incomplete UTF-8 (a half Chinese character), and hands the
new text to ``on_token``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    BitsAndBytesConfig,
    GenerationConfig,
    StoppingCriteria,
    StoppingCriteriaList,
)
from transformers.generation.streamers import BaseStreamer

from app.errors import ClientClosedError
from app.generation.protocol import FinishReason, Generation, Messages, OnToken
from app.generation.yes_no import YES_NO_BATCH, yes_no_tokens
from index.hardware import DtypeChoice, cpu_compute_dtype, pick_device

log = logging.getLogger(__name__)

Quantization = Literal["none", "int8", "int4"]
LoadSource = Literal["original", "quantized-at-load", "quantized-cache"]
MARKER = "docqa-quantized.json"
DEFAULT_MAX_CONTEXT = 8192


class DeadlineCriteria(StoppingCriteria):  # type: ignore[misc]
    """Stops generation once ``time.monotonic()`` passes ``deadline``, or ``cancel`` is set."""

    def __init__(self, deadline: float | None, cancel: threading.Event | None = None) -> None:
        self.deadline = deadline
        self.cancel = cancel
        self.fired: FinishReason | None = None

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        if self.cancel is not None and self.cancel.is_set():
            self.fired = "cancelled"
        elif self.deadline is not None and time.monotonic() >= self.deadline:
            self.fired = "timeout"
        return torch.full((input_ids.shape[0],), self.fired is not None, dtype=torch.bool)


class IncrementalDecoder(BaseStreamer):  # type: ignore[misc]
    """Collects generated ids and emits the newly decoded text (minus special tokens) per step."""

    def __init__(self, tokenizer: Any, on_token: OnToken | None) -> None:
        self.tokenizer = tokenizer
        self.on_token = on_token
        self.ids: list[int] = []
        self.emitted = ""
        self._prompt_seen = False
        self.started = time.monotonic()
        self.first_token_s: float | None = None

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:  # generate() first pushes the prompt
            self._prompt_seen = True
            return
        if self.first_token_s is None:
            self.first_token_s = time.monotonic() - self.started
        self.ids.extend(int(t) for t in value.reshape(-1).tolist())
        text = self.decode()
        if text.endswith("\ufffd") or not text.startswith(self.emitted):
            return  # an incomplete character, or a re-spacing: wait for more tokens
        self._emit(text[len(self.emitted) :])

    def end(self) -> None:
        text = self.decode()
        if text.startswith(self.emitted):
            self._emit(text[len(self.emitted) :])
        else:
            log.warning("streamed text diverged from the final decode; pieces will not join")

    def decode(self) -> str:
        return str(self.tokenizer.decode(self.ids, skip_special_tokens=True))

    def _emit(self, piece: str) -> None:
        if piece:
            self.emitted += piece
            if self.on_token is not None:
                self.on_token(piece)


class _OnceFilter(logging.Filter):
    """Lets one record of each message through: bitsandbytes int8 warns on every matmul."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        key = str(record.msg)
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


def _quiet_bitsandbytes() -> None:
    logger = logging.getLogger("bitsandbytes.autograd._functions")
    if not any(isinstance(f, _OnceFilter) for f in logger.filters):
        logger.addFilter(_OnceFilter())


def cache_folder_name(model_id: str, quantization: str, device_kind: str) -> str:
    """``<model_id>-<quant>-<device>``, with path separators and odd characters replaced.

    >>> cache_folder_name("Qwen/Qwen2.5-0.5B", "int4", "cpu")
    'Qwen--Qwen2.5-0.5B-int4-cpu'
    """
    safe = re.sub(r"[^\w.-]", "_", model_id.replace("/", "--"))
    return f"{safe}-{quantization}-{device_kind}"


class TransformersGenerator:
    def __init__(
        self,
        path: Path | str,
        model_id: str,
        quantization: Quantization = "none",
        device: str = "auto",
        quantized_cache_dir: Path | None = None,
        max_context: int = DEFAULT_MAX_CONTEXT,
        cpu_flags: frozenset[str] | None = None,
        cpu_dtype: str = "auto",
    ) -> None:
        if quantization not in ("none", "int8", "int4"):
            raise ValueError(f"quantization must be none, int8 or int4, not {quantization!r}")
        self.path = Path(path)
        self._model_id = model_id
        self._quantization: Quantization = quantization
        self.device = device
        self.quantized_cache_dir = quantized_cache_dir
        self.max_context = max_context
        self.cpu_flags = cpu_flags  # None: this machine's (tests pass others)
        self._dtype_choice: DtypeChoice | None = None
        if cpu_dtype in ("bfloat16", "float32"):
            self._dtype_choice = DtypeChoice(cpu_dtype, "set by DOCQA_LLM_CPU_DTYPE")  # type: ignore[arg-type]
        elif cpu_dtype != "auto":
            raise ValueError(f"cpu_dtype must be auto, bfloat16 or float32, not {cpu_dtype!r}")
        self.load_source: LoadSource | None = None
        self.load_seconds: float | None = None
        self._tokenizer: Any = None
        self._model: Any = None
        self._config: Any = None
        self._load_lock = threading.Lock()
        self._generate_lock = threading.Lock()

    # -- protocol properties --------------------------------------------------------------------

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def engine(self) -> str:
        return "transformers"

    @property
    def quantization(self) -> str:
        return self._quantization

    @property
    def context_window(self) -> int:
        if self._config is None:  # cheap: reads config.json only
            self._config = AutoConfig.from_pretrained(self.path)
        config = (
            self._config.get_text_config()
            if hasattr(self._config, "get_text_config")
            else self._config
        )
        window = getattr(config, "max_position_embeddings", None) or self.max_context
        return min(int(window), self.max_context)

    # -- loading ----------------------------------------------------------------------------------

    def load(self) -> TransformersGenerator:
        with self._load_lock:
            if self._model is None:
                started = time.perf_counter()
                self.device = pick_device(self.device)
                if self.device == "cpu":
                    choice = self.dtype_choice
                    log.info("transformers on CPU computes in %s: %s", choice.dtype, choice.reason)
                self._tokenizer = AutoTokenizer.from_pretrained(self.path)
                self._model = self._load_model()
                self._model.eval()
                self._config = self._model.config
                self.load_seconds = round(time.perf_counter() - started, 2)
                log.info(
                    "generator %s (%s, %s) loaded on %s from %s in %.1f s",
                    self.model_id,
                    self.quantization,
                    str(self.compute_dtype).removeprefix("torch."),
                    self.device,
                    self.load_source,
                    self.load_seconds,
                )
        return self

    @property
    def compute_dtype(self) -> torch.dtype:
        """fp16 on CUDA; on a CPU, bf16 only where it is native (see `index.hardware`)."""
        if self.device == "cuda":
            return torch.float16
        return torch.bfloat16 if self.dtype_choice.dtype == "bfloat16" else torch.float32

    @property
    def dtype_choice(self) -> DtypeChoice:
        if self._dtype_choice is None:
            self._dtype_choice = cpu_compute_dtype(self.cpu_flags)
        return self._dtype_choice

    @property
    def cache_path(self) -> Path | None:
        if self.quantized_cache_dir is None or self.quantization == "none":
            return None
        kind = "cuda" if pick_device(self.device) == "cuda" else "cpu"
        name = cache_folder_name(self.model_id, self.quantization, kind)
        return Path(self.quantized_cache_dir) / name

    def _load_model(self) -> Any:
        if self.quantization == "none":
            model = AutoModelForCausalLM.from_pretrained(self.path, dtype=self.compute_dtype)
            self.load_source = "original"
            return model.to(self.device)  # type: ignore[arg-type]
        _quiet_bitsandbytes()
        device_map = {"": 0} if self.device == "cuda" else {"": "cpu"}
        cached = self.cache_path
        if cached is not None and self._cache_valid(cached):
            model = AutoModelForCausalLM.from_pretrained(
                cached, dtype=self.compute_dtype, device_map=device_map
            )
            self.load_source = "quantized-cache"
            return model
        model = AutoModelForCausalLM.from_pretrained(
            self.path,
            dtype=self.compute_dtype,
            device_map=device_map,
            quantization_config=self._bnb_config(),
        )
        self.load_source = "quantized-at-load"
        if cached is not None:
            self._save_quantized(model, cached)
        return model

    def _bnb_config(self) -> BitsAndBytesConfig:
        if self.quantization == "int8":
            return BitsAndBytesConfig(load_in_8bit=True)  # type: ignore[no-untyped-call]
        return BitsAndBytesConfig(  # type: ignore[no-untyped-call]
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=self.compute_dtype,
        )

    def _fingerprint(self) -> dict[str, Any]:
        import bitsandbytes

        files = sorted(
            (p.name, p.stat().st_size)
            for p in (self.path.iterdir() if self.path.is_dir() else ())
            if p.suffix in (".safetensors", ".bin") or p.name == "config.json"
        )
        return {
            "model_id": self.model_id,
            "quantization": self.quantization,
            "device": "cuda" if self.device == "cuda" else "cpu",
            "dtype": str(self.compute_dtype),
            "source_files": [list(f) for f in files],
            "bitsandbytes": str(bitsandbytes.__version__),
        }

    def _cache_valid(self, folder: Path) -> bool:
        marker = folder / MARKER
        if not marker.is_file():
            if folder.exists():
                log.warning(
                    "quantized cache %s has no marker (interrupted save?); rebuilding", folder
                )
            return False
        try:
            recorded = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        expected = self._fingerprint()
        if any(recorded.get(k) != v for k, v in expected.items()):
            log.warning("quantized cache %s was built from another source; rebuilding", folder)
            return False
        return True

    def _save_quantized(self, model: Any, folder: Path) -> None:
        started = time.perf_counter()
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = folder.parent / f".{folder.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            model.save_pretrained(tmp)
            if folder.exists():
                if self._cache_valid(folder):  # another process finished first
                    log.info("quantized cache %s appeared meanwhile; keeping it", folder)
                    return
                shutil.rmtree(folder)  # stale: no valid marker
            os.replace(tmp, folder)
            record = {**self._fingerprint(), "saved_at": time.time()}
            part = folder / f".{MARKER}.tmp"
            part.write_text(json.dumps(record, indent=2), encoding="utf-8")
            os.replace(part, folder / MARKER)  # last: only now is the folder valid
            log.info("saved quantized model to %s in %.1f s", folder, time.perf_counter() - started)
        except Exception:  # a failed cache write must not fail the load
            log.warning("could not save the quantized model to %s", folder, exc_info=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    # -- text -------------------------------------------------------------------------------------

    @property
    def tokenizer(self) -> Any:
        return self.load()._tokenizer

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def render_chat(self, messages: Messages) -> str:
        return str(
            self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        )

    def _generation_config(self, max_new_tokens: int) -> GenerationConfig:
        config = GenerationConfig.from_dict(self._model.generation_config.to_dict())
        config.do_sample = False
        config.temperature = None
        config.top_p = None
        config.top_k = None
        config.max_new_tokens = max_new_tokens
        config.max_length = None
        config.output_scores = True
        config.return_dict_in_generate = True
        eos = _as_set(config.eos_token_id)
        if self._tokenizer.eos_token_id is not None:  # the chat template's end-of-turn token
            eos.add(int(self._tokenizer.eos_token_id))
        config.eos_token_id = sorted(eos) if len(eos) > 1 else next(iter(eos), None)
        if config.pad_token_id is None:
            config.pad_token_id = self._tokenizer.pad_token_id or _first(config.eos_token_id)
        return config

    def yes_probability(
        self, prompts: Sequence[Messages], cancel: threading.Event | None = None
    ) -> list[float]:
        """One forward pass per batch of prompts, left-padded; the softmax over the first tokens
        of "yes" and "no" at the last position."""
        self.load()
        yes, no = yes_no_tokens(lambda t: self._tokenizer.encode(t, add_special_tokens=False))
        out: list[float] = []
        with self._generate_lock:
            side = self._tokenizer.padding_side
            self._tokenizer.padding_side = "left"  # the last position is every prompt's end
            pad = self._tokenizer.pad_token_id
            if pad is None:
                self._tokenizer.pad_token = self._tokenizer.eos_token
            try:
                for start in range(0, len(prompts), YES_NO_BATCH):
                    if cancel is not None and cancel.is_set():
                        raise ClientClosedError("yes/no scoring cancelled: the client went away")
                    texts = [self.render_chat(m) for m in prompts[start : start + YES_NO_BATCH]]
                    batch = self._tokenizer(
                        texts, return_tensors="pt", padding=True, add_special_tokens=False
                    ).to(self._model.device)
                    with torch.inference_mode():
                        logits = self._model(**batch).logits[:, -1, :]
                    pair = logits[:, [yes, no]].float().softmax(dim=-1)[:, 0]
                    out.extend(float(v) for v in pair)
            finally:
                self._tokenizer.padding_side = side
        return out

    def generate(
        self,
        messages: Messages,
        max_new_tokens: int,
        deadline: float | None = None,
        on_token: OnToken | None = None,
        cancel: threading.Event | None = None,
    ) -> Generation:
        self.load()
        with self._generate_lock:  # one generation at a time; fast tokenizers dislike sharing
            prompt = self.render_chat(messages)
            inputs = self._tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
            prompt_tokens = int(inputs["input_ids"].shape[1])
            room = self.context_window - prompt_tokens
            if max_new_tokens > room:
                log.warning("prompt of %d tokens leaves room for %d new", prompt_tokens, room)
                max_new_tokens = max(room, 1)
            if cancel is not None and cancel.is_set():
                return Generation("", prompt_tokens, 0, None, "cancelled")
            if deadline is not None and time.monotonic() >= deadline:
                return Generation("", prompt_tokens, 0, None, "timeout")
            if max_new_tokens <= 0:
                return Generation("", prompt_tokens, 0, None, "length")
            config = self._generation_config(max_new_tokens)
            stop = DeadlineCriteria(deadline, cancel)
            streamer = IncrementalDecoder(self._tokenizer, on_token)
            with torch.inference_mode():
                out = self._model.generate(
                    **inputs.to(self._model.device),
                    generation_config=config,
                    stopping_criteria=StoppingCriteriaList([stop]),
                    streamer=streamer,
                )
        eos = _as_set(config.eos_token_id)
        new_ids = _trim_after_eos(out.sequences[0, prompt_tokens:].tolist(), eos)
        finish: FinishReason
        if new_ids and new_ids[-1] in eos:
            finish = "stop"
        elif stop.fired is not None:
            finish = stop.fired
        elif len(new_ids) >= max_new_tokens:
            finish = "length"
        else:
            finish = "stop"  # another stopping criterion of the model's generation config
        return Generation(
            text=streamer.decode(),
            prompt_tokens=prompt_tokens,
            completion_tokens=len(new_ids),
            mean_logprob=_mean_logprob(out.scores, new_ids),
            finish_reason=finish,
            first_token_s=streamer.first_token_s,
        )


def _mean_logprob(scores: tuple[torch.Tensor, ...] | None, ids: list[int]) -> float | None:
    """Mean of log_softmax(step scores)[chosen token] over the generated steps."""
    if not scores or not ids:
        return None
    total = 0.0
    for step, token in zip(scores, ids, strict=False):
        total += float(torch.log_softmax(step[0].float(), dim=-1)[token])
    return total / min(len(scores), len(ids))


def _as_set(value: int | list[int] | None) -> set[int]:
    if value is None:
        return set()
    return {value} if isinstance(value, int) else set(value)


def _first(value: int | list[int] | None) -> int | None:
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _trim_after_eos(ids: list[int], eos: set[int]) -> list[int]:
    for i, token in enumerate(ids):
        if token in eos:
            return ids[: i + 1]
    return ids
