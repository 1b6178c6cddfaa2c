"""A reranker that asks the generator's own model whether a passage answers the question.

Score = P("yes") / (P("yes") + P("no")) of the first answer token to the versioned prompt
``prompts/rerank_v1.md``, one prompt read per (question, passage) pair. No cross-encoder with
bundled weights exists offline; a small instruct model ranks well enough this way (the 0.5B Qwen
ranked 12/12 right on a small bilingual check).

It holds no weights of its own: ``judge`` is the loaded generator (anything with
``yes_probability``), and ``run`` puts the scoring into the generator's bounded queue, so
reranking and answering never run the model at once, and a full queue refuses both alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from index.protocols import YesNoJudge
from index.types import Hit
from prompts.template import Messages, PromptTemplate, named

Scores = list[float]
RunInQueue = Callable[[Callable[[], Scores]], Scores]


def _inline(job: Callable[[], Scores]) -> Scores:
    return job()


class LLMReranker:
    def __init__(
        self,
        judge: YesNoJudge,
        run: RunInQueue = _inline,
        max_passage_chars: int = 2000,
        prompt: PromptTemplate | None = None,
    ) -> None:
        self.judge = judge
        self.run = run
        self.max_passage_chars = max_passage_chars
        self.prompt = prompt or named("rerank_v1")

    def messages(self, question: str, passage: str) -> Messages:
        return self.prompt.render(passage=passage[: self.max_passage_chars], question=question)

    def score(self, question: str, passages: Sequence[str]) -> Scores:
        prompts = [self.messages(question, p) for p in passages]
        return self.run(lambda: self.judge.yes_probability(prompts))

    def rerank(self, question: str, hits: Sequence[Hit], top_k: int) -> list[Hit]:
        scores = self.score(question, [h.chunk.index_text for h in hits])
        for hit, s in zip(hits, scores, strict=True):
            hit.scores["rerank"] = s
            hit.score = s
        return sorted(hits, key=lambda h: (-h.score, h.chunk.id))[:top_k]
