"""The llama.cpp generator on the real test-profile GGUF (SmolLM2-135M Q4_1), read directly from
its package: the chat template, greedy streaming, log-probabilities, the deadline, cancel, the
KV-cache prefix reuse, token counting; and the GGUF header reader."""

from __future__ import annotations

import math
import struct
import threading
import time
from pathlib import Path

import pytest

from app.generation.llamacpp_generator import (
    AMX_BUILD,
    NO_AMX_FLAGS,
    LlamaCppGenerator,
    check_build,
)
from app.generation.protocol import Generator
from modelstore.cache import ModelCache
from modelstore.catalog import MODELS
from modelstore.errors import EngineBuildError, ModelFormatError
from modelstore.gguf_info import gguf_quantization, quantization_class

MODEL_ID = "smollm2-135m-instruct"
SYSTEM = {"role": "system", "content": "You are a helpful assistant. Answer in one sentence."}
QUESTION = [SYSTEM, {"role": "user", "content": "What is the capital of France?"}]
OTHER = [SYSTEM, {"role": "user", "content": "Name a colour of the sky."}]


@pytest.fixture(scope="module")
def gguf(test_models: ModelCache) -> Path:
    spec = MODELS[MODEL_ID]
    test_models.prepare(spec, fmt="gguf")  # verifies the packaged file once, converts nothing
    path = test_models.status(spec, "gguf").path
    assert path is not None and path.suffix == ".gguf"
    return path


@pytest.fixture(scope="module")
def llm(gguf: Path) -> LlamaCppGenerator:
    return LlamaCppGenerator(gguf, MODEL_ID, "int4", context_tokens=2048, threads=2).load()


def test_it_is_a_generator_reading_the_packaged_gguf(llm: LlamaCppGenerator, gguf: Path) -> None:
    assert isinstance(llm, Generator)
    assert (llm.engine, llm.quantization, llm.context_window) == ("llamacpp", "int4", 2048)
    assert "site-packages" in str(gguf) or "dist-packages" in str(gguf)  # no copy, no conversion


# llama.cpp's system info line of a native build on a Sapphire Rapids VM (AMX compiled in) and of
# the same build made with the Makefile's flags (AMX left out).
AMX_INFO = (
    "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX_VNNI = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | "
    "BMI2 = 1 | AVX512 = 1 | AVX512_VBMI = 1 | AVX512_VNNI = 1 | AVX512_BF16 = 1 | "
    "AMX_INT8 = 1 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 | "
)
NO_AMX_INFO = AMX_INFO.replace("AMX_INT8 = 1 | ", "")


def test_a_build_with_the_amx_kernels_is_refused_with_how_to_rebuild_it() -> None:
    """Its first Q4_K matrix product kills the process (SIGSEGV in ggml_backend_amx_mul_mat on
    the Sapphire Rapids VMs here); refused at load, the service says why instead of dying."""
    with pytest.raises(EngineBuildError) as refused:
        check_build(AMX_INFO, allow_amx=False)
    message = str(refused.value)
    assert "-mno-amx-int8" in message and "DOCQA_LLM_ALLOW_AMX=true" in message
    check_build(NO_AMX_INFO, allow_amx=False)
    check_build(AMX_INFO, allow_amx=True)  # where AMX is known to work


def test_the_refusal_names_the_flags_the_makefile_builds_with() -> None:
    """The message's rebuild command and `make install` keep the same flags (two languages,
    one list: this catches one changed without the other)."""
    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text(encoding="utf-8")
    line = next(ln for ln in makefile.splitlines() if ln.startswith("LLAMA_NO_AMX :="))
    assert line.split(":=", 1)[1].strip() == NO_AMX_FLAGS


def test_the_installed_build_has_no_amx_kernels() -> None:
    """`make install` builds llama-cpp-python without them, on every CPU (on one without AMX
    a native build has none either)."""
    from llama_cpp import llama_print_system_info

    assert AMX_BUILD not in llama_print_system_info().decode("utf-8", "replace")


def test_the_weights_are_read_not_left_mapped(llm: LlamaCppGenerator, gguf: Path) -> None:
    """llama.cpp repacks the weights into its own layout; a mapping of the file would stay
    resident beside that copy (0.6 GiB for the 1.5B), so the file is read, not mapped."""
    maps = Path("/proc/self/maps")
    if not maps.exists():
        pytest.skip("no /proc/self/maps here")
    mapped = [line for line in maps.read_text().splitlines() if line.endswith(gguf.name)]
    assert mapped == [], mapped


def test_the_gguf_chat_template_is_applied(llm: LlamaCppGenerator) -> None:
    prompt = llm.render_chat(QUESTION)
    assert prompt.startswith("<|im_start|>system\nYou are a helpful assistant.")
    assert prompt.endswith("<|im_start|>assistant\n")
    assert "<|im_start|>user\nWhat is the capital of France?<|im_end|>" in prompt
    tokens = llm.prompt_tokens(QUESTION)
    assert tokens.count(tokens[0]) >= 3  # <|im_start|> is one special token, not text
    assert llm.count_tokens("What is the capital of France?") < len(tokens)


def test_greedy_streaming_with_logprobs(llm: LlamaCppGenerator) -> None:
    streamed: list[str] = []
    first = llm.generate(QUESTION, 12, on_token=streamed.append)
    again = llm.generate(QUESTION, 12)
    assert first.text.strip() and first.text == again.text  # greedy
    assert "".join(streamed) == first.text and len(streamed) > 1
    assert "Paris" in first.text
    assert first.prompt_tokens == len(llm.prompt_tokens(QUESTION))
    assert 0 < first.completion_tokens <= 12 and first.finish_reason in ("stop", "length")
    assert first.mean_logprob is not None and math.isfinite(first.mean_logprob)
    assert -20 < first.mean_logprob <= 0
    assert first.first_token_s is not None and first.first_token_s >= 0


def test_max_new_tokens_ends_with_length(llm: LlamaCppGenerator) -> None:
    result = llm.generate(OTHER, 3)
    assert (result.completion_tokens, result.finish_reason) == (3, "length")


def test_a_chinese_answer_streams_whole_characters(llm: LlamaCppGenerator) -> None:
    messages = [{"role": "user", "content": "请用中文回答：天空是什么颜色？"}]
    streamed: list[str] = []
    result = llm.generate(messages, 24, on_token=streamed.append)
    assert "".join(streamed) == result.text
    assert not any("\ufffd" in piece for piece in streamed)


def test_the_deadline_stops_generation(llm: LlamaCppGenerator) -> None:
    past = llm.generate(QUESTION, 50, deadline=time.monotonic() - 1)
    assert (past.text, past.finish_reason, past.completion_tokens) == ("", "timeout", 0)
    story = [{"role": "user", "content": "Write a long story about a dragon and a knight."}]
    soon = llm.generate(story, 400, deadline=time.monotonic() + 0.3)
    assert soon.finish_reason == "timeout" and 0 < soon.completion_tokens < 400
    assert soon.text.strip()  # what came before the deadline is kept


def test_cancel_stops_generation_at_once(llm: LlamaCppGenerator) -> None:
    cancel = threading.Event()
    seen: list[str] = []

    def cancel_after_two(piece: str) -> None:
        seen.append(piece)
        if len(seen) == 2:
            cancel.set()  # what the service does when the client disconnects

    long_answer = [{"role": "user", "content": "Write a long story about a dragon and a knight."}]
    result = llm.generate(long_answer, 200, on_token=cancel_after_two, cancel=cancel)
    assert result.finish_reason == "cancelled"
    assert result.completion_tokens == 2 and result.text == "".join(seen)
    before = llm.generate(long_answer, 5, cancel=cancel)  # cancelled before it starts
    assert (before.finish_reason, before.completion_tokens) == ("cancelled", 0)


def test_cancel_interrupts_a_long_prompt_between_chunks(gguf: Path) -> None:
    small_chunks = LlamaCppGenerator(gguf, MODEL_ID, "int4", 2048, threads=2, prefill_chunk=16)
    cancel = threading.Event()
    reads: list[int] = []
    small_chunks.load()
    real_eval = small_chunks._llm.eval

    def counting_eval(tokens: list[int]) -> None:
        reads.append(len(tokens))
        if len(reads) == 3:
            cancel.set()
        real_eval(tokens)

    small_chunks._llm.eval = counting_eval
    long_prompt = [{"role": "user", "content": "Summarize: " + "the sky is blue. " * 60}]
    result = small_chunks.generate(long_prompt, 20, cancel=cancel)
    assert result.finish_reason == "cancelled" and result.completion_tokens == 0
    assert len(reads) == 3 and result.prompt_tokens > 16 * 10  # stopped well before the end
    # The valid prefix stays cached, and the next call still answers correctly.
    small_chunks._llm.eval = real_eval
    fresh = small_chunks.generate(QUESTION, 8)
    assert fresh.finish_reason in ("stop", "length") and fresh.text.strip()


def test_the_shared_prompt_prefix_is_reused_and_changes_nothing(gguf: Path) -> None:
    warm = LlamaCppGenerator(gguf, MODEL_ID, "int4", 2048, threads=2).load()
    cold = LlamaCppGenerator(gguf, MODEL_ID, "int4", 2048, threads=2).load()
    first = warm.generate(QUESTION, 8)
    assert first.cached_prompt_tokens == 0
    reused = warm.generate(OTHER, 8)  # same system message: its tokens are not read again
    system_tokens = len(warm.prompt_tokens([SYSTEM]))
    assert reused.cached_prompt_tokens >= system_tokens - 3
    assert reused.cached_prompt_tokens < reused.prompt_tokens
    alone = cold.generate(OTHER, 8)
    assert alone.cached_prompt_tokens == 0
    assert (reused.text, reused.completion_tokens) == (alone.text, alone.completion_tokens)
    assert reused.mean_logprob == pytest.approx(alone.mean_logprob, abs=1e-3)


def test_a_prompt_past_the_window_leaves_no_room(gguf: Path) -> None:
    tiny = LlamaCppGenerator(gguf, MODEL_ID, "int4", context_tokens=256, threads=2)
    long_prompt = [{"role": "user", "content": "word " * 400}]
    result = tiny.generate(long_prompt, 10)
    assert (result.finish_reason, result.completion_tokens) == ("length", 0)


# -- the GGUF header --------------------------------------------------------------------------


def test_the_gguf_quantization_is_read_from_its_header(gguf: Path) -> None:
    quant = gguf_quantization(gguf)
    assert (quant.type, quant.klass) == ("Q4_1", "int4")
    assert [quantization_class(t) for t in ("Q4_K_M", "Q8_0", "F16", "Q5_K_M")] == [
        "int4",
        "int8",
        "none",
        "int8",
    ]


def _gguf_with(kvs: bytes, n_kv: int, tensors: bytes = b"", n_tensors: int = 0) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", 3, n_tensors, n_kv) + kvs + tensors


def _key(name: str, kind: int, value: bytes) -> bytes:
    raw = name.encode()
    return struct.pack("<Q", len(raw)) + raw + struct.pack("<I", kind) + value


def test_the_header_reader_skips_other_keys_and_falls_back_to_tensor_types(tmp_path: Path) -> None:
    words = struct.pack("<IQ", 8, 2) + b"".join(
        struct.pack("<Q", len(w)) + w for w in [b"a", b"bc"]
    )
    kvs = _key("general.name", 8, struct.pack("<Q", 3) + b"abc") + _key("tok", 9, words)
    typed = tmp_path / "typed.gguf"
    typed.write_bytes(_gguf_with(kvs + _key("general.file_type", 4, struct.pack("<I", 7)), 3))
    assert gguf_quantization(typed).type == "Q8_0"
    # No file type: the 2-D weights' own type decides (ggml type 12 is Q4_K).
    tensor = struct.pack("<Q", 1) + b"w" + struct.pack("<I2QIQ", 2, 64, 64, 12, 0)
    untyped = tmp_path / "untyped.gguf"
    untyped.write_bytes(_gguf_with(kvs, 2, tensor, 1))
    assert gguf_quantization(untyped).klass == "int4"
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"PK\x03\x04 not a gguf")
    with pytest.raises(ModelFormatError, match="not a GGUF"):
        gguf_quantization(bad)
