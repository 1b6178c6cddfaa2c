"""Yes/no scoring by the generator's own weights (the reranker's and the answerability check's
seam), with both real engines on the test profile's SmolLM2."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.generation.llamacpp_generator import LlamaCppGenerator
from app.generation.protocol import Generator
from app.generation.transformers_generator import TransformersGenerator
from app.generation.yes_no import yes_no_tokens, yes_share
from index.reranker import LLMReranker
from modelstore.cache import ModelCache
from modelstore.catalog import MODELS

QUESTION = "How often do API keys rotate?"
PASSAGES = [
    "The cafeteria serves soup on Mondays.",
    "API keys rotate every 30 days and are stored in the vault.",
]


@pytest.fixture(scope="module", params=["llamacpp", "transformers"])
def generator(request: pytest.FixtureRequest, test_models: ModelCache) -> Iterator[Generator]:
    spec = MODELS["smollm2-135m-instruct"]
    if request.param == "llamacpp":
        test_models.prepare(spec, fmt="gguf")
        gguf = test_models.status(spec, "gguf").path
        assert gguf is not None
        yield LlamaCppGenerator(gguf, spec.name, "int4", context_tokens=2048, threads=2).load()
    else:
        folder = test_models.status(spec).path
        assert isinstance(folder, Path)
        yield TransformersGenerator(
            folder, model_id=spec.name, quantization="none", device="cpu", cpu_dtype="float32"
        ).load()


def test_the_answering_passage_scores_higher(generator: Generator) -> None:
    scores = LLMReranker(generator).score(QUESTION, PASSAGES)
    assert len(scores) == 2 and all(0.0 < s < 1.0 for s in scores)
    assert scores[1] > scores[0]


def test_scores_do_not_depend_on_what_ran_before(generator: Generator) -> None:
    """llama.cpp reuses the KV cache of a common prefix: a score after a generation, or after
    other prompts, must equal a cold one (transformers pads a batch: the same must hold)."""
    reranker = LLMReranker(generator)
    cold = reranker.score(QUESTION, PASSAGES)
    generator.generate([{"role": "user", "content": "Say hello."}], 5)
    again = reranker.score(QUESTION, list(reversed(PASSAGES)))
    assert again[::-1] == pytest.approx(cold, abs=2e-3)


def test_yes_share_is_the_two_way_softmax() -> None:
    assert yes_share(2.0, 2.0) == 0.5
    assert yes_share(5.0, 0.0) == pytest.approx(0.99331, abs=1e-5)
    assert yes_share(-800.0, 800.0) == pytest.approx(0.0)  # no overflow


def test_a_tokenizer_that_cannot_tell_yes_from_no_is_refused() -> None:
    with pytest.raises(ValueError, match="yes"):
        yes_no_tokens(lambda _: [7])
    assert yes_no_tokens(lambda t: [1, 2] if t == "yes" else [3]) == (1, 3)
