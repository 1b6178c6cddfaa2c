"""A GGUF model run by llama.cpp (llama-cpp-python): the generator on CPU.

The shipped models are Q4_K_M GGUF files; llama.cpp runs them as they are, with its own 4-bit
kernels, instead of dequantizing them into a 3.5 GB bf16 copy for transformers. On a 2-core CPU
that is several times faster (docs/BENCHMARKS.md), and it needs no native bf16.

The decoding loop is ours, on llama.cpp's ``eval``, because the service needs what
``create_chat_completion`` does not give together:

- greedy decoding with the log-probability of every chosen token (llama.cpp's own logprobs need
  ``logits_all``, which keeps n_ctx x vocab floats: 2.4 GB at 4,096 x 152k), computed here from
  the last position's logits alone;
- a deadline and a cancel event checked between prompt chunks and between tokens, so a client
  that went away frees the model within a fraction of a second, even while a long prompt is read;
- the KV cache kept between calls: the longest common token prefix of the new prompt and the last
  one is not read again. The prompt puts its fixed instructions first (``prompts/answer_v5.md``), so
  every question reuses them;
- streaming text with incomplete UTF-8 (half a Chinese character) held back, pieces joining to
  exactly the final text.

The chat template is the GGUF's own (``tokenizer.chat_template``), rendered with jinja2 the way
transformers does, and the prompt is tokenized as ``create_chat_completion`` does it.
"""

from __future__ import annotations

import codecs
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from app.errors import ClientClosedError
from app.generation.protocol import FinishReason, Generation, Messages, OnToken
from app.generation.yes_no import yes_no_tokens, yes_share
from modelstore.errors import EngineBuildError

log = logging.getLogger(__name__)

DEFAULT_PREFILL_CHUNK = 128  # tokens read per llama.cpp call: how often cancel is checked
# What llama.cpp's system info says of a build with ggml's AMX kernels. A native build
# (-march=native) on a CPU with AMX (Sapphire Rapids and later) compiles them in and moves the
# Q4_K/Q6_K weights into AMX buffers; on the Sapphire Rapids VMs seen here the first matrix
# product then kills the process with SIGSEGV in ggml_backend_amx_mul_mat
# (ggml-org/llama.cpp#20824), so such a build is refused at load, not left to crash a question.
AMX_BUILD = "AMX_INT8 = 1"
NO_AMX_FLAGS = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"  # the Makefile's LLAMA_NO_AMX


def check_build(system_info: str, allow_amx: bool) -> None:
    """Refuse a llama.cpp build with the AMX kernels (see AMX_BUILD) unless allowed."""
    if AMX_BUILD in system_info and not allow_amx:
        raise EngineBuildError(
            f"this llama-cpp-python was built with ggml's AMX kernels (llama.cpp reports "
            f"'{AMX_BUILD}'), which crash the process on the first Q4_K matrix product on "
            f"Sapphire Rapids virtual machines (ggml-org/llama.cpp#20824). Rebuild it without "
            f"them (what `make install` does): CMAKE_ARGS=\"-DCMAKE_C_FLAGS='{NO_AMX_FLAGS}' "
            f"-DCMAKE_CXX_FLAGS='{NO_AMX_FLAGS}'\" pip install --no-cache-dir --force-reinstall "
            f"--no-deps llama-cpp-python, or set DOCQA_LLM_ALLOW_AMX=true where AMX is known to "
            f"work"
        )


def available_cores() -> int:
    """Cores this process may run on (llama.cpp's own default is half the CPU count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class LlamaCppGenerator:
    def __init__(
        self,
        gguf_path: Path | str,
        model_id: str,
        quantization: str,
        context_tokens: int = 4096,
        threads: int | None = None,
        prefill_chunk: int = DEFAULT_PREFILL_CHUNK,
        allow_amx: bool = False,
    ) -> None:
        self.path = Path(gguf_path)
        self._model_id = model_id
        self._quantization = quantization  # the GGUF's own, read by the model store
        self.context_tokens = context_tokens
        self.threads = threads or available_cores()
        self.prefill_chunk = max(1, prefill_chunk)
        self.allow_amx = allow_amx
        self.load_seconds: float | None = None
        self._llm: Any = None
        self._vocab: Any = None
        self._formatter: Any = None
        self._load_lock = threading.Lock()
        self._generate_lock = threading.Lock()

    # -- protocol properties ------------------------------------------------------------------

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def engine(self) -> str:
        return "llamacpp"

    @property
    def quantization(self) -> str:
        return self._quantization

    @property
    def context_window(self) -> int:
        return int(self.load()._llm.n_ctx())

    # -- loading ------------------------------------------------------------------------------

    def load(self) -> LlamaCppGenerator:
        with self._load_lock:
            if self._llm is None:
                started = time.perf_counter()
                self._llm = self._open()
                self._formatter = self._chat_formatter()
                self.load_seconds = round(time.perf_counter() - started, 2)
                log.info(
                    "generator %s (%s GGUF) loaded by llama.cpp from %s in %.1f s: "
                    "%d threads, %d-token context",
                    self.model_id,
                    self.quantization,
                    self.path,
                    self.load_seconds,
                    self.threads,
                    self._llm.n_ctx(),
                )
        return self

    def _open(self) -> Any:
        from llama_cpp import Llama, llama_model_get_vocab, llama_print_system_info

        if not self.path.is_file():
            raise FileNotFoundError(f"GGUF file not found: {self.path}")
        check_build(llama_print_system_info().decode("utf-8", "replace"), self.allow_amx)
        llm = self._llama(Llama, self.context_tokens)
        train = int(llm._model.n_ctx_train())
        if train and train < self.context_tokens:  # a window past training only degrades
            log.info("model trained for %d tokens; context capped there", train)
            llm.close()
            llm = self._llama(Llama, train)
        self._vocab = llama_model_get_vocab(llm.model)
        return llm

    def _llama(self, llama_class: Any, n_ctx: int) -> Any:
        return llama_class(
            model_path=str(self.path),
            n_ctx=n_ctx,
            n_batch=max(self.prefill_chunk, 32),
            n_threads=self.threads,
            n_threads_batch=self.threads,
            logits_all=False,
            # Read, not mapped: llama.cpp repacks the quantized weights into its own CPU layout,
            # so a mapped file stays resident beside that copy (the 1.5B: 1.91 GiB resident
            # mapped, 1.33 GiB read, loading 0.6 s longer; bench/cpu_engines.py).
            use_mmap=False,
            verbose=False,
        )

    def _chat_formatter(self) -> Any:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        llm = self._llm
        template = llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise ValueError(f"{self.path} has no chat template (tokenizer.chat_template)")
        eos = llm._model.token_eos()
        bos = llm._model.token_bos()
        return Jinja2ChatFormatter(
            template=template,
            eos_token=llm._model.token_get_text(eos) if eos >= 0 else "",
            bos_token=llm._model.token_get_text(bos) if bos >= 0 else "",
            add_generation_prompt=True,
        )

    def close(self) -> None:
        with self._load_lock:
            if self._llm is not None:
                self._llm.close()
                self._llm = None

    # -- text ---------------------------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        return len(self.load()._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def render_chat(self, messages: Messages) -> str:
        return str(self.load()._formatter(messages=messages).prompt)

    def prompt_tokens(self, messages: Messages) -> list[int]:
        """Token ids of the rendered prompt, as ``create_chat_completion`` makes them."""
        prompt = self.render_chat(messages)
        # The template writes its own special tokens (BOS included where the model wants one).
        return list(self._llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True))

    # -- generation ---------------------------------------------------------------------------

    def generate(
        self,
        messages: Messages,
        max_new_tokens: int,
        deadline: float | None = None,
        on_token: OnToken | None = None,
        cancel: threading.Event | None = None,
    ) -> Generation:
        self.load()
        with self._generate_lock:  # one llama.cpp context: one generation at a time
            return self._generate(messages, max_new_tokens, deadline, on_token, cancel)

    def _generate(
        self,
        messages: Messages,
        max_new_tokens: int,
        deadline: float | None,
        on_token: OnToken | None,
        cancel: threading.Event | None,
    ) -> Generation:
        started = time.monotonic()
        llm = self._llm
        tokens = self.prompt_tokens(messages)
        n_prompt = len(tokens)
        room = int(llm.n_ctx()) - n_prompt
        if max_new_tokens > room:
            log.warning("prompt of %d tokens leaves room for %d new", n_prompt, room)
            max_new_tokens = max(room, 0)

        def stopped() -> FinishReason | None:
            if cancel is not None and cancel.is_set():
                return "cancelled"
            if deadline is not None and time.monotonic() >= deadline:
                return "timeout"
            return None

        early = stopped()
        if early is not None:
            return Generation("", n_prompt, 0, None, early)
        if max_new_tokens <= 0 or n_prompt == 0:
            return Generation("", n_prompt, 0, None, "length")

        cached, early = self._read_prompt(tokens, stopped)
        if early is not None:
            return Generation("", n_prompt, 0, None, early, cached_prompt_tokens=cached)

        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pieces: list[str] = []
        logprobs: list[float] = []
        first_token_s: float | None = None
        finish: FinishReason = "length"
        n_vocab = int(llm.n_vocab())
        for _ in range(max_new_tokens):
            logits = np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(n_vocab,))
            token = int(np.argmax(logits))
            logprobs.append(_logprob(logits, token))
            if first_token_s is None:
                first_token_s = time.monotonic() - started
            if self._is_end(token):
                finish = "stop"
                break
            piece = decoder.decode(llm._model.detokenize([token], special=False))
            if piece:
                pieces.append(piece)
                if on_token is not None:
                    on_token(piece)
            early = stopped()
            if early is not None:
                finish = early
                break
            llm.eval([token])
        tail = decoder.decode(b"", final=True)
        if tail:
            pieces.append(tail)
            if on_token is not None:
                on_token(tail)
        return Generation(
            text="".join(pieces),
            prompt_tokens=n_prompt,
            completion_tokens=len(logprobs),
            mean_logprob=float(np.mean(logprobs)) if logprobs else None,
            finish_reason=finish,
            first_token_s=first_token_s,
            cached_prompt_tokens=cached,
        )

    def yes_probability(
        self, prompts: Sequence[Messages], cancel: threading.Event | None = None
    ) -> list[float]:
        """Each prompt read (its common prefix with the last one reused), then the last
        position's logits of "yes" and "no"."""
        self.load()
        llm = self._llm
        yes, no = yes_no_tokens(
            lambda t: llm.tokenize(t.encode("utf-8"), add_bos=False, special=False)
        )
        n_vocab = int(llm.n_vocab())
        out: list[float] = []

        def cancelled() -> FinishReason | None:
            return "cancelled" if cancel is not None and cancel.is_set() else None

        with self._generate_lock:
            for messages in prompts:
                tokens = self.prompt_tokens(messages)[: int(llm.n_ctx())]
                _, early = self._read_prompt(tokens, cancelled)
                if early is not None:
                    raise ClientClosedError("yes/no scoring cancelled: the client went away")
                logits = np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(n_vocab,))
                out.append(yes_share(float(logits[yes]), float(logits[no])))
        return out

    def _read_prompt(
        self, tokens: list[int], stopped: Callable[[], FinishReason | None]
    ) -> tuple[int, FinishReason | None]:
        """Read ``tokens`` into the KV cache after the prefix it already holds, ``prefill_chunk``
        tokens per llama.cpp call, asking ``stopped`` before each call.

        Returns how many tokens came from the cache, and why reading stopped early (None when the
        whole prompt was read). A stopped read leaves a valid prefix in the cache (``n_tokens``
        says how much), which the next call reuses.
        """
        llm = self._llm
        cached = self._reuse_prefix(tokens)
        for start in range(cached, len(tokens), self.prefill_chunk):
            early = stopped()
            if early is not None:
                return cached, early
            llm.eval(tokens[start : start + self.prefill_chunk])
        return cached, None

    def _reuse_prefix(self, tokens: list[int]) -> int:
        """Keep the KV cache of the longest common prefix with the last prompt; returns its length.

        At least one prompt token is always read again, so fresh logits come out at its end.
        """
        llm = self._llm
        limit = min(int(llm.n_tokens), len(tokens) - 1)
        keep = 0
        if limit > 0:
            previous = np.asarray(llm.input_ids[:limit])
            differs = np.nonzero(previous != np.asarray(tokens[:limit]))[0]
            keep = int(differs[0]) if differs.size else limit
        if keep > 0 and llm._ctx.kv_cache_seq_rm(-1, keep, -1):
            llm.n_tokens = keep
            return keep
        llm.reset()
        return 0

    def _is_end(self, token: int) -> bool:
        from llama_cpp import llama_vocab_is_eog

        return bool(llama_vocab_is_eog(self._vocab, token))


def _logprob(logits: np.ndarray[Any, Any], token: int) -> float:
    """log_softmax(logits)[token], computed stably."""
    top = float(logits.max())
    return float(logits[token]) - top - float(np.log(np.exp(logits - top).sum()))
