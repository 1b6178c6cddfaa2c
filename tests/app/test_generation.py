"""Generators: the fake's protocol behaviour, the extractive fallback, and real SmolLM2 on CPU
in bf16, int8 and NF4 (greedy, streamed, deadline- and length-bounded, quantized once)."""

from __future__ import annotations

import gc
import json
import math
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
    assert next(bf16._model.parameters()).dtype == torch.bfloat16


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
