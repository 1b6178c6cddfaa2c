"""The answerability check shares the answer prompt's KV cache in llama.cpp: the answer that
follows it reads only the few tokens where the two prompts differ."""

from __future__ import annotations

from pathlib import Path

from app.answer.answerability import answerability_messages
from app.answer.prompt import build_messages
from app.generation.llamacpp_generator import LlamaCppGenerator
from modelstore.cache import ModelCache
from modelstore.catalog import MODELS
from tests.app.conftest import make_hit

QUESTION = "How often do API keys rotate?"


def test_the_answer_reuses_the_checks_prompt_read(test_models: ModelCache) -> None:
    spec = MODELS["smollm2-135m-instruct"]
    test_models.prepare(spec, fmt="gguf")
    gguf = test_models.status(spec, "gguf").path
    assert isinstance(gguf, Path)
    llm = LlamaCppGenerator(gguf, spec.name, "int4", context_tokens=2048, threads=2).load()
    hits = [
        make_hit(1, "API keys rotate every 30 days. " * 10, title="Security Policy", page=2),
        make_hit(2, "Deployment logs are kept for 90 days. " * 10, source="wiki/orbit-faq.md"),
    ]
    prompt = build_messages(QUESTION, hits, llm.count_tokens, 1500)
    llm.generate([{"role": "user", "content": "Something else entirely."}], 2)  # a cold cache
    p = llm.yes_probability([answerability_messages(prompt)])[0]
    assert 0.0 < p < 1.0
    answer = llm.generate(prompt.messages, 4)
    assert answer.cached_prompt_tokens >= 0.85 * answer.prompt_tokens
