"""Which questions a run asks, and which documents it leaves out of the index.

1. ``--limit N --seed S``: a seeded sample of N questions (kept in file order); the corpus stays
   whole, so retrieval is as hard as with every question.
2. ``--unanswerable-fraction F``: questions are drawn (seeded by S) one at a time and their gold
   documents removed from the index, until at least F of the sampled questions have lost all
   of their gold documents. Removing a document affects every question that cites it:

   - a question whose gold documents are *all* removed becomes unanswerable (its right output
     is a decline), whether it was drawn or shares the documents of one that was; on SQuAD-style
     sets, where about five questions share a paragraph, the share therefore overshoots F by at
     most one paragraph's questions;
   - a question that lost *some* but not all of its gold documents (multi-hop HotpotQA, BEIR
     queries with several relevant abstracts) is excluded from the run: whether it can still be
     answered is unknowable, so it would count neither as a right decline nor as a miss.

Questions that are unanswerable in the data set itself (no gold documents and no answers) are
always kept, as unanswerable.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from eval.types import Question


@dataclass(frozen=True)
class Selected:
    question: Question
    answerable: bool


@dataclass
class Selection:
    questions: list[Selected]
    removed_docs: frozenset[str] = frozenset()
    excluded: list[str] = field(default_factory=list)  # question ids left out (partial removal)

    @property
    def unanswerable(self) -> int:
        return sum(not s.answerable for s in self.questions)


def sample(questions: list[Question], limit: int | None, seed: int) -> list[Question]:
    """A seeded sample of ``limit`` questions, in their original order (all when None or more).

    >>> qs = [Question(str(i), "q") for i in range(5)]
    >>> [q.id for q in sample(qs, 2, seed=1)] == [q.id for q in sample(qs, 2, seed=1)]
    True
    """
    if limit is None or limit >= len(questions):
        return list(questions)
    chosen = set(random.Random(seed).sample(range(len(questions)), limit))
    return [q for i, q in enumerate(questions) if i in chosen]


def draw(questions: list[Question], limit: int | None, seed: int) -> list[Question]:
    """The questions of ``sample`` in the order they were drawn (all of them, shuffled, when
    None or more): a sequence to time, in which neighbours in the file (questions on one
    paragraph) do not follow one another. The same as ``random.Random(seed).sample``.

    >>> qs = [Question(str(i), "q") for i in range(5)]
    >>> sorted(q.id for q in draw(qs, 2, seed=1)) == [q.id for q in sample(qs, 2, seed=1)]
    True
    """
    n = len(questions) if limit is None else min(limit, len(questions))
    return [questions[i] for i in random.Random(seed).sample(range(len(questions)), n)]


def select(
    questions: list[Question], limit: int | None, seed: int, unanswerable_fraction: float = 0.0
) -> Selection:
    """Sample, then make ``unanswerable_fraction`` of the sample unanswerable (see above)."""
    if not 0.0 <= unanswerable_fraction < 1.0:
        raise ValueError("the unanswerable fraction must be in [0, 1)")
    picked = sample(questions, limit, seed)
    removed: set[str] = set()
    if unanswerable_fraction > 0:
        target = math.ceil(unanswerable_fraction * len(picked))
        order = [q for q in picked if q.relevance]
        random.Random(f"unanswerable:{seed}").shuffle(order)
        for question in order:
            if _lost_all(picked, removed) >= target:
                break
            removed |= question.gold_docs
    selected: list[Selected] = []
    excluded: list[str] = []
    for question in picked:
        gold = question.gold_docs
        lost = gold & removed
        if gold and lost and lost != gold:
            excluded.append(question.id)
            continue
        answerable = not question.natively_unanswerable and not (gold and lost == gold)
        selected.append(Selected(question, answerable))
    return Selection(selected, frozenset(removed), excluded)


def _lost_all(questions: list[Question], removed: set[str]) -> int:
    return sum(1 for q in questions if q.relevance and q.gold_docs <= removed)
