"""The noise variant (``--noise-passages``): distractors from other documents added to each
question's passages and shuffled, the real answer flow on top."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings
from eval.noise import NoisyRetriever, distractors
from eval.runconfig import RunSpec
from eval.runner import run_evaluation
from index.retriever import Retrieval
from modelstore.cache import ModelCache
from tests.app.conftest import make_hit

TINY = Path(__file__).resolve().parents[1] / "data" / "eval" / "tiny.jsonl"
# Ranked chunks: doc-1 (gold), doc-2, two of doc-3, doc-4, doc-5.
SOURCES = ["doc-1.md", "doc-2.md", "doc-3.md", "doc-3.md", "doc-4.md", "doc-5.md"]
RANKED = [make_hit(n, f"passage {n}", source=s) for n, s in enumerate(SOURCES, start=1)]


def _doc(source: str) -> str:
    return source.removesuffix(".md")


def test_distractors_skip_gold_and_shown_documents_and_take_one_chunk_each() -> None:
    shown = RANKED[:2]  # doc-1 (gold) and doc-2
    got = distractors(RANKED, shown, frozenset({"doc-1"}), _doc, 2)
    assert [_doc(h.chunk.source) for h in got] == ["doc-3", "doc-4"]
    assert distractors(RANKED, shown, frozenset({"doc-1"}), _doc, 9)[-1] is RANKED[-1]


class _Ranked:
    def __init__(self) -> None:
        self.calls: list[int] = []

    def retrieve(self, query: str, k: int = 5, filters: Any = None, **options: Any) -> Retrieval:
        self.calls.append(k)
        return Retrieval(RANKED[:k], {"retrieve": 1.0})


def test_the_noisy_retriever_adds_n_passages_and_shuffles_by_question() -> None:
    inner = _Ranked()
    noisy = NoisyRetriever(inner, 2, seed=0, doc_of=_doc)  # type: ignore[arg-type]
    noisy.for_question("q1", {"doc-1"})
    first = noisy.retrieve("who?", k=2)
    assert sorted(h.chunk.id for h in first.hits) == sorted(
        h.chunk.id for h in [*RANKED[:2], RANKED[2], RANKED[4]]
    )
    assert first.timings_ms == {"retrieve": 1.0}
    again = noisy.retrieve("who?", k=2)
    assert [h.chunk.id for h in again.hits] == [h.chunk.id for h in first.hits]  # seeded
    orders = set()
    for qid in ("q1", "q2", "q3", "q4", "q5", "q6"):
        noisy.for_question(qid, {"doc-1"})
        orders.add(tuple(h.chunk.id for h in noisy.retrieve("who?", k=2).hits))
    assert len(orders) > 1  # the order depends on the question


def _lines(run_dir: Path) -> list[dict[str, Any]]:
    text = (run_dir / "per_question.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


@pytest.mark.slow
def test_a_noise_run_puts_the_distractors_in_the_real_prompt(
    settings: Settings, test_models: ModelCache
) -> None:
    """Through the real answer flow (SmolLM2, MiniLM, Chroma): with one passage per question
    and two distractors, every prompt is longer than without them, and the run says so."""
    small = settings.model_copy(update={"answer_max_tokens": 4, "evidence_floor": 0.0})
    plain = run_evaluation(
        small, RunSpec(dataset=TINY, format="jsonl", top_k=1, name="plain"), progress=False
    )
    noisy = run_evaluation(
        small,
        RunSpec(dataset=TINY, format="jsonl", top_k=1, noise_passages=2, name="noisy"),
        progress=False,
    )
    assert noisy.run.config()["mode"]["noise_passages"] == 2
    assert noisy.run.config()["fingerprint"] != plain.run.config()["fingerprint"]
    before = {r["id"]: r for r in _lines(plain.run.path)}
    after = {r["id"]: r for r in _lines(noisy.run.path)}
    assert before.keys() == after.keys()
    for qid, line in after.items():
        assert line["usage"]["prompt_tokens"] > before[qid]["usage"]["prompt_tokens"], qid
        assert line["retrieved"] == before[qid]["retrieved"]  # retrieval metrics: no noise
