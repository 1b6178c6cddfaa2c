"""Question sampling and the unanswerable rule (drawn questions, shared documents, partials)."""

from __future__ import annotations

import random

import pytest

from eval.selection import draw, sample, select
from eval.types import Question


def _q(qid: str, *docs: str, answers: tuple[str, ...] = ("x",)) -> Question:
    return Question(qid, f"question {qid}?", answers, dict.fromkeys(docs, 1))


def test_sample_is_seeded_and_keeps_file_order() -> None:
    questions = [_q(str(i), "d") for i in range(50)]
    a = sample(questions, 10, seed=7)
    assert [q.id for q in a] == [q.id for q in sample(questions, 10, seed=7)]
    assert [q.id for q in a] != [q.id for q in sample(questions, 10, seed=8)]
    assert [int(q.id) for q in a] == sorted(int(q.id) for q in a)
    assert len(a) == 10
    assert sample(questions, None, 0) == questions
    assert sample(questions, 500, 0) == questions


def test_draw_gives_the_sample_in_the_order_drawn() -> None:
    questions = [_q(str(i), "d") for i in range(50)]
    drawn = draw(questions, 10, seed=7)
    assert sorted(drawn, key=lambda q: int(q.id)) == sample(questions, 10, seed=7)
    assert drawn == random.Random(7).sample(questions, 10)  # what the benchmarks always drew
    assert [int(q.id) for q in drawn] != sorted(int(q.id) for q in drawn)
    assert draw(questions, 10, seed=7) == drawn
    everything = draw(questions, None, 0)
    assert sorted(everything, key=lambda q: int(q.id)) == questions
    assert draw(questions, 500, 0) == everything


def test_no_fraction_removes_nothing() -> None:
    questions = [_q("1", "a"), _q("2", "b"), _q("3", answers=())]
    chosen = select(questions, None, 0)
    assert chosen.removed_docs == frozenset()
    assert [s.answerable for s in chosen.questions] == [True, True, False]  # 3: no gold at all


def test_questions_sharing_a_removed_document_become_unanswerable() -> None:
    # five questions on paragraph p1, five on p2 (as in SQuAD): F = 0.2 of 10 -> 2 questions;
    # one drawn paragraph takes its 5 questions out, the overshoot the docstring describes
    questions = [_q(f"a{i}", "p1") for i in range(5)] + [_q(f"b{i}", "p2") for i in range(5)]
    chosen = select(questions, None, seed=3, unanswerable_fraction=0.2)
    assert len(chosen.removed_docs) == 1
    (removed,) = chosen.removed_docs
    gone = {s.question.id for s in chosen.questions if not s.answerable}
    assert gone == {q.id for q in questions if removed in q.gold_docs}
    assert chosen.unanswerable == 5 and not chosen.excluded


def test_partially_removed_questions_are_excluded() -> None:
    # h1 needs a and b; h2 needs b and c; h3 needs d. Removing h1's docs {a, b} leaves h2 with
    # c only: it is excluded, neither answerable nor unanswerable.
    questions = [_q("h1", "a", "b"), _q("h2", "b", "c"), _q("h3", "d")]
    for seed in range(20):
        chosen = select(questions, None, seed=seed, unanswerable_fraction=0.3)
        gold = {s.question.id: s.answerable for s in chosen.questions}
        for q in questions:
            lost = q.gold_docs & chosen.removed_docs
            if lost and lost != q.gold_docs:
                assert q.id in chosen.excluded and q.id not in gold
            elif lost:
                assert gold[q.id] is False
            else:
                assert gold[q.id] is True
        assert chosen.unanswerable >= 1  # ceil(0.3 * 3) = 1 at least lost all gold


def test_fraction_is_reached_and_seeded() -> None:
    questions = [_q(str(i), f"d{i}") for i in range(40)]
    a = select(questions, None, seed=1, unanswerable_fraction=0.25)
    assert a.unanswerable == 10  # one document each: exactly ceil(0.25 * 40)
    again = select(questions, None, seed=1, unanswerable_fraction=0.25)
    other = select(questions, None, seed=2, unanswerable_fraction=0.25)
    assert a.removed_docs == again.removed_docs
    assert a.removed_docs != other.removed_docs


def test_fraction_applies_to_the_sample() -> None:
    questions = [_q(str(i), f"d{i}") for i in range(100)]
    chosen = select(questions, 20, seed=5, unanswerable_fraction=0.5)
    assert len(chosen.questions) == 20 and chosen.unanswerable == 10
    sampled = {s.question.id for s in chosen.questions}
    assert all(doc[1:] in sampled for doc in chosen.removed_docs)  # only sampled gold removed


def test_fraction_must_be_below_one() -> None:
    with pytest.raises(ValueError):
        select([_q("1", "a")], None, 0, unanswerable_fraction=1.0)
