"""The noise variant of a run (``--noise-passages N``): does the answer stay right when the
prompt also holds N passages on the same topic from other documents?

For each question, the N best-ranked chunks of documents that are neither its gold documents nor
among its retrieved passages are added to its passages, and the passages are shuffled with a
seed derived from the run's seed and the question's id (the gold passage no longer comes first
as a rule, as in the noise-robustness test of Chen et al. 2024, "Benchmarking Large Language
Models in Retrieval-Augmented Generation"). Distractors are retrieved for the question itself,
so they are the near misses a real corpus serves: same subject, no answer. The service's own
answer flow runs unchanged on top (`AskService` over a backend whose retriever adds the noise);
compare the run with the same run without noise (`docqa eval compare`) for how often the
answer stays right.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any, cast

from index.protocols import Filters
from index.retriever import Retrieval, Retriever
from index.types import Hit

# How deep to look for distractors: the question's own passages and the gold documents' chunks
# are skipped on the way.
SEARCH_DEPTH = 50


class NoisyRetriever:
    """A retriever that adds ``noise`` distractor passages to every retrieval, then shuffles.

    ``gold`` is set before each question (the eval ids of its gold documents); ``doc_of`` maps a
    chunk's source to its eval document id.
    """

    def __init__(
        self, inner: Retriever, noise: int, seed: int, doc_of: Callable[[str], str | None]
    ) -> None:
        self.inner = inner
        self.noise = noise
        self.seed = seed
        self.doc_of = doc_of
        self.gold: frozenset[str] = frozenset()
        self.question_id = ""

    def for_question(self, question_id: str, gold: Iterable[str]) -> None:
        self.question_id = question_id
        self.gold = frozenset(gold)

    def retrieve(
        self, query: str, k: int = 5, filters: Filters | None = None, **options: Any
    ) -> Retrieval:
        result = self.inner.retrieve(query, k=k, filters=filters, **options)
        deep = self.inner.retrieve(query, k=max(SEARCH_DEPTH, k + self.noise), filters=filters)
        hits = list(result.hits)
        hits += distractors(deep.hits, hits, self.gold, self.doc_of, self.noise)
        random.Random(self._seed()).shuffle(hits)
        return replace(result, hits=hits)

    def _seed(self) -> int:
        key = f"{self.seed}:{self.question_id}".encode()
        return int.from_bytes(hashlib.sha256(key).digest()[:8], "big")


def distractors(
    ranked: list[Hit],
    shown: list[Hit],
    gold: frozenset[str],
    doc_of: Callable[[str], str | None],
    n: int,
) -> list[Hit]:
    """The first ``n`` chunks of ``ranked`` from documents that are neither gold nor shown."""

    def doc(hit: Hit) -> str:
        return doc_of(hit.chunk.source) or hit.chunk.source

    taken_docs = {doc(h) for h in shown} | gold
    out: list[Hit] = []
    for hit in ranked:
        doc_id = doc(hit)
        if doc_id in taken_docs:
            continue
        out.append(hit)
        taken_docs.add(doc_id)  # one passage per document: four documents, not four chunks of one
        if len(out) == n:
            break
    return out


class NoisyBackend:
    """The service's backend with each collection's retriever made noisy (everything else is
    the real backend's)."""

    def __init__(self, inner: Any, retriever: NoisyRetriever) -> None:
        self._inner = inner
        self._retriever = retriever

    def retriever(self, collection: str) -> Retriever:
        # Duck-typed: the answer flow calls only ``retrieve``, which NoisyRetriever keeps.
        return cast(Retriever, self._retriever)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
