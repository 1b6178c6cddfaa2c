"""Generators: the fake's protocol behaviour, the extractive fallback, and real SmolLM2 on CPU
through transformers in the CPU's dtype, int8 and NF4 (greedy, streamed, deadline-, cancel- and
length-bounded, quantized once). llama.cpp has its own file, test_llamacpp_generator.py."""

from __future__ import annotations

import gc
import json
import math
import threading
import time
from pathlib import Path

import pytest
import torch

from app.generation.extractive import best_sentence, split_sentences
from app.generation.fake import FakeGenerator, pieces
from app.generation.protocol import Generator
from app.generation.transformers_generator import (
    MARKER,
    DeadlineCriteria,
    IncrementalDecoder,
    TransformersGenerator,
    cache_folder_name,
)
from index.hardware import cpu_compute_dtype, read_cpu_flags

MODEL_ID = "smollm2-135m-instruct"
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]

# -- FakeGenerator ------------------------------------------------------------------------------


def test_fake_replies_in_order_and_the_last_repeats() -> None:
    fake = FakeGenerator(["one [1].", "two"])
    texts = [fake.generate(QUESTION, 50).text for _ in range(3)]
    assert texts == ["one [1].", "two", "two"]
    assert len(fake.calls) == 3 and fake.calls[0] == QUESTION
    assert isinstance(fake, Generator)


def test_fake_reply_function_sees_the_messages() -> None:
    fake = FakeGenerator(lambda messages: messages[-1]["content"].upper())
    assert fake.generate(QUESTION, 50).text == "WHAT IS THE CAPITAL OF FRANCE?"


def test_fake_streams_word_by_word_and_respects_max_new_tokens() -> None:
    streamed: list[str] = []
    result = FakeGenerator(["Paris is the capital [1]."]).generate(
        QUESTION, 50, on_token=streamed.append
    )
    assert streamed == ["Paris", " is", " the", " capital", " [1]."]
    assert "".join(streamed) == result.text and result.finish_reason == "stop"
    assert result.completion_tokens == 5 and result.mean_logprob is not None
    cut = FakeGenerator(["a b c d"]).generate(QUESTION, 2)
    assert (cut.text, cut.finish_reason, cut.completion_tokens) == ("a b", "length", 2)
    assert pieces("日志 90 天。") == ["日", "志", " 90", " 天", "。"]


def test_fake_deadline_and_failure() -> None:
    past = FakeGenerator(["a b c"]).generate(QUESTION, 10, deadline=time.monotonic() - 1)
    assert (past.text, past.finish_reason) == ("", "timeout")
    slow = FakeGenerator(["a b c d e f g h"], seconds_per_token=0.02)
    partial = slow.generate(QUESTION, 10, deadline=time.monotonic() + 0.05)
    assert partial.finish_reason == "timeout" and 0 < partial.completion_tokens < 8
    broken = FakeGenerator(fail_with=RuntimeError("model crashed"))
    with pytest.raises(RuntimeError, match="crashed"):
        broken.generate(QUESTION, 10)


def test_fake_stops_when_cancelled() -> None:
    cancel = threading.Event()
    seen: list[str] = []

    def on_token(piece: str) -> None:
        seen.append(piece)
        if len(seen) == 2:
            cancel.set()  # what the service does when the client goes away

    result = FakeGenerator(["a b c d e f"]).generate(QUESTION, 10, on_token=on_token, cancel=cancel)
    assert (result.text, result.finish_reason, result.completion_tokens) == ("a b", "cancelled", 2)
    assert result.first_token_s is not None


def test_fake_counts_words_and_han_characters() -> None:
    fake = FakeGenerator()
    assert fake.count_tokens("API keys rotate") == 3
    assert fake.count_tokens("日志保留 90 天") == 6
    assert fake.render_chat(QUESTION).endswith("<|assistant|>\n")


# -- extractive fallback -----------------------------------------------------------------------


def test_best_sentence_english() -> None:
    passage = (
        "Orbit 3.4.0 added blue-green deploys. API keys rotate every 30 days! "
        "Sessions last 8 hours?\nContact security."
    )
    assert (
        best_sentence("How often do API keys rotate?", passage) == "API keys rotate every 30 days!"
    )
    assert best_sentence("Which release added blue-green deploys?", passage).startswith(
        "Orbit 3.4.0"
    )
    assert (
        best_sentence("Unrelated pasta recipe", passage) == "Orbit 3.4.0 added blue-green deploys."
    )
    assert best_sentence("anything", "  ") == ""


def test_best_sentence_chinese() -> None:
    passage = "每周二进行维护。部署日志保留 90 天；审计日志保留一年！"
    assert split_sentences(passage) == [
        "每周二进行维护。",
        "部署日志保留 90 天；",
        "审计日志保留一年！",
    ]
    assert best_sentence("部署日志保留多久？", passage) == "部署日志保留 90 天；"
    assert best_sentence("审计日志保留多久？", passage) == "审计日志保留一年！"


# -- the real model ---------------------------------------------------------------------------


def test_deadline_criteria_and_cache_folder_name() -> None:
    ids = torch.zeros((1, 3), dtype=torch.long)
    assert bool(DeadlineCriteria(time.monotonic() - 1)(ids, None)[0])
    assert not bool(DeadlineCriteria(time.monotonic() + 60)(ids, None)[0])
    cancel = threading.Event()
    stop = DeadlineCriteria(None, cancel)
    assert not bool(stop(ids, None)[0])
    cancel.set()
    assert bool(stop(ids, None)[0]) and stop.fired == "cancelled"
    assert cache_folder_name("org/My Model", "int4", "cuda") == "org--My_Model-int4-cuda"


@pytest.fixture(scope="module")
def bf16(smollm_path: Path) -> TransformersGenerator:
    return TransformersGenerator(smollm_path, MODEL_ID, "none", "cpu").load()


def test_bf16_generates_greedily_and_streams_pieces(bf16: TransformersGenerator) -> None:
    streamed: list[str] = []
    first = bf16.generate(QUESTION, 8, on_token=streamed.append)
    second = bf16.generate(QUESTION, 8)
    assert first.text.strip() and first.text == second.text
    assert "".join(streamed) == first.text and len(streamed) > 1
    assert first.prompt_tokens == bf16.count_tokens(bf16.render_chat(QUESTION))
    assert 0 < first.completion_tokens <= 8
    assert first.mean_logprob is not None and math.isfinite(first.mean_logprob)
    assert first.mean_logprob <= 0 and first.finish_reason in ("stop", "length")
    assert bf16.load_source == "original" and bf16.context_window == 8192
    native = bf16.dtype_choice.dtype == "bfloat16"
    assert next(bf16._model.parameters()).dtype == (torch.bfloat16 if native else torch.float32)


@pytest.mark.parametrize(
    ("flags", "dtype"),
    [
        ({"avx2", "avx512f", "avx512_bf16"}, torch.bfloat16),  # AMD Zen 4, Intel Cooper Lake
        ({"avx2", "avx512f", "amx_bf16", "amx_tile"}, torch.bfloat16),  # Sapphire Rapids
        ({"avx2", "avx512f"}, torch.float32),  # Skylake/Ice Lake servers: bf16 is emulated
        ({"avx2"}, torch.float32),
        (set(), torch.float32),  # no /proc/cpuinfo
    ],
)
def test_cpu_compute_dtype_follows_the_cpu_flags(
    smollm_path: Path, flags: set[str], dtype: torch.dtype
) -> None:
    gen = TransformersGenerator(smollm_path, MODEL_ID, "none", "cpu", cpu_flags=frozenset(flags))
    assert gen.compute_dtype == dtype
    assert ("no native bf16" in gen.dtype_choice.reason) == (dtype == torch.float32)


def test_the_chosen_dtype_is_the_one_loaded_and_logged(
    smollm_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="app.generation.transformers_generator")
    gen = TransformersGenerator(
        smollm_path, MODEL_ID, "none", "cpu", cpu_flags=frozenset({"avx2", "avx512f"})
    ).load()
    assert next(gen._model.parameters()).dtype == torch.float32
    assert "computes in float32: the CPU has no native bf16" in caplog.text
    assert gen.generate(QUESTION, 2).completion_tokens == 2


def test_cpu_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\n\nprocessor\t: 1\n")
    assert read_cpu_flags(info) >= {"avx2", "avx512_bf16"}
    assert cpu_compute_dtype(read_cpu_flags(info)).dtype == "bfloat16"
    assert read_cpu_flags(tmp_path / "missing") == frozenset()


def test_max_new_tokens_ends_with_length(bf16: TransformersGenerator) -> None:
    result = bf16.generate(QUESTION, 3)
    assert result.completion_tokens == 3 and result.finish_reason == "length"


def test_deadline_stops_generation(bf16: TransformersGenerator) -> None:
    started = time.monotonic()
    past = bf16.generate(QUESTION, 50, deadline=started - 1)
    assert (past.text, past.finish_reason, past.completion_tokens) == ("", "timeout", 0)
    assert time.monotonic() - started < 1.0
    soon = bf16.generate(QUESTION, 200, deadline=time.monotonic() + 0.05)
    assert soon.finish_reason == "timeout" and soon.completion_tokens <= 2


def test_streamer_holds_back_half_characters(bf16: TransformersGenerator) -> None:
    text = "部署日志保留 90 天。Done."
    ids = bf16.tokenizer(text, add_special_tokens=False)["input_ids"]
    streamed: list[str] = []
    decoder = IncrementalDecoder(bf16.tokenizer, streamed.append)
    decoder.put(torch.tensor([[0]]))  # the prompt, ignored
    for token in ids:
        decoder.put(torch.tensor([token]))
    decoder.end()
    assert "".join(streamed) == text == decoder.decode()
    assert not any("\ufffd" in piece for piece in streamed) and len(streamed) > 3


def test_context_window_is_capped(smollm_path: Path) -> None:
    assert TransformersGenerator(smollm_path, MODEL_ID, max_context=2048).context_window == 2048


@pytest.mark.parametrize(
    ("quantization", "layer"), [("int8", "Linear8bitLt"), ("int4", "Linear4bit")]
)
def test_quantized_model_is_saved_once_then_reloaded(
    smollm_path: Path, tmp_path: Path, quantization: str, layer: str
) -> None:
    first = TransformersGenerator(smollm_path, MODEL_ID, quantization, "cpu", tmp_path).load()  # type: ignore[arg-type]
    folder = tmp_path / f"{MODEL_ID}-{quantization}-cpu"
    assert first.load_source == "quantized-at-load" and first.cache_path == folder
    marker = json.loads((folder / MARKER).read_text())
    assert marker["quantization"] == quantization and (folder / "model.safetensors").is_file()
    # bitsandbytes on CPU spends ~1-2 s a token on a shared 2-core machine: two tokens suffice.
    a = first.generate(QUESTION, 2)
    assert a.text.strip() and a.completion_tokens == 2 and a.finish_reason == "length"
    assert a.mean_logprob is not None and math.isfinite(a.mean_logprob)
    del first
    gc.collect()
    again = TransformersGenerator(smollm_path, MODEL_ID, quantization, "cpu", tmp_path).load()  # type: ignore[arg-type]
    assert again.load_source == "quantized-cache"  # not quantized a second time
    assert type(again._model.model.layers[0].mlp.up_proj).__name__ == layer
    assert again.generate(QUESTION, 2).text == a.text  # greedy: the same prompt, the same text


def test_a_cache_folder_without_a_valid_marker_is_not_used(
    smollm_path: Path, tmp_path: Path
) -> None:
    gen = TransformersGenerator(smollm_path, MODEL_ID, "int4", "cpu", tmp_path)
    folder = gen.cache_path
    assert folder is not None
    folder.mkdir(parents=True)
    assert not gen._cache_valid(folder)  # an interrupted save
    (folder / MARKER).write_text(json.dumps({**gen._fingerprint(), "bitsandbytes": "0.1"}))
    assert not gen._cache_valid(folder)  # another bitsandbytes
    (folder / MARKER).write_text(json.dumps(gen._fingerprint()))
    assert gen._cache_valid(folder)
    assert TransformersGenerator(smollm_path, MODEL_ID, "none", "cpu", tmp_path).cache_path is None
