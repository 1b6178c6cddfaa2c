"""One question's line of ``per_question.jsonl``: what the service did and the question's metrics.

Which per-question metrics a line carries (absent ones are ``null`` and left out of the means):

- retrieval (``hit@1/5/10``, ``mrr@10``, ``rank``; ``ndcg@10`` for graded sets): answerable
  questions with gold documents (an unanswerable question's gold is not in the index);
- ``em``, ``f1``: answerable questions with gold answers, when answers were generated; a decline
  scores 0. Citation markers (``[1]``) are removed from the answer first;
- ``citation_precision``: answerable questions with gold documents that were answered with
  citations;
- ``support``: every answered (not declined) question: the share of the answer's content units
  found in the full text of its cited chunks (`app.answer.confidence.support_score`, the same
  measure the service's confidence uses);
- ``recall``: beside EM and F1, the share of the gold answer's tokens found in the answer
  (`eval.metrics.answer_recall`), which does not punish a right answer for restating the
  question or adding context, as F1 against a short span does;
- ``correct`` (for calibration): recall >= 0.75 for answerable questions with gold answers (all
  of a one- to three-token answer, three of four tokens); declined for unanswerable ones;
  otherwise ``null``. It was F1 >= 0.5, which counted long right answers as wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.answer.confidence import support_score
from eval.metrics import (
    answer_recall,
    answer_scores,
    citation_precision,
    first_relevant_rank,
    hit_at,
    is_chinese,
    mrr_at,
    ndcg_at,
)
from eval.selection import Selected
from text.citation_markers import strip_markers

RANK_DEPTH = 10
CORRECT_RECALL = 0.75


@dataclass
class Observation:
    """What one question got: from the ask response (None fields in retrieval-only runs) and
    from the retriever's ranking."""

    retrieved: list[str]  # document ids, deduped, best first (up to RANK_DEPTH)
    timings_ms: dict[str, float]
    answer: str | None = None
    declined: bool = False
    degraded: bool = False
    low_confidence: bool = False
    confidence: float | None = None
    citations: list[dict[str, Any]] = field(default_factory=list)  # n, chunk_id, doc_id
    cited_texts: list[str] = field(default_factory=list)  # full chunk texts, as cited
    usage: dict[str, int] | None = None  # prompt_tokens, completion_tokens
    query_cached: bool | None = None  # the query's vector came from the embedding cache
    query: str | None = None  # a follow-up's rewritten question, as retrieval was asked
    answerable: float | None = None  # the answerability check's P(yes), when it ran
    # What the confidence combined (retrieval, support, certainty), to refit its weights.
    confidence_parts: dict[str, float | None] | None = None
    cpu_ms: float | None = None  # this process's CPU time for the question, all threads
    error: str | None = None


def clean_answer(answer: str) -> str:
    """The answer without citation markers, as scored.

    >>> clean_answer("Every 30 days [1][2].")
    'Every 30 days.'
    """
    return strip_markers(answer).strip()


def record(selected: Selected, obs: Observation, graded: bool) -> dict[str, Any]:
    """The jsonl line for one question."""
    q = selected.question
    chinese = is_chinese(q.text)
    line: dict[str, Any] = {
        "id": q.id,
        "question": q.text,
        "history": [dict(t) for t in q.history] or None,
        "query": obs.query,
        "language": "zh" if chinese else "en",
        "gold_answers": list(q.answers),
        "gold_docs": dict(q.relevance),
        "answerable": selected.answerable,
        "answer": obs.answer,
        "declined": obs.declined,
        "degraded": obs.degraded,
        "low_confidence": obs.low_confidence,
        "confidence": obs.confidence,
        "p_answerable": obs.answerable,
        "confidence_parts": obs.confidence_parts,
        "citations": obs.citations,
        "retrieved": obs.retrieved[:RANK_DEPTH],
        "timings_ms": obs.timings_ms,
        "cpu_ms": obs.cpu_ms,
        "usage": obs.usage,
        "query_cached": obs.query_cached,
        "error": obs.error,
        "metrics": _metrics(selected, obs, graded, chinese),
    }
    return line


def _metrics(selected: Selected, obs: Observation, graded: bool, chinese: bool) -> dict[str, Any]:
    q = selected.question
    m: dict[str, Any] = dict.fromkeys(
        [
            *("rank", "hit@1", "hit@5", "hit@10", "mrr@10", "ndcg@10", "em", "f1", "recall"),
            *("citation_precision", "support", "correct"),
        ]
    )
    if obs.error is not None:
        return m
    ranking = obs.retrieved[:RANK_DEPTH]
    if selected.answerable and q.relevance:
        m["rank"] = first_relevant_rank(ranking, q.relevance, RANK_DEPTH)
        for k in (1, 5, 10):
            m[f"hit@{k}"] = hit_at(ranking, q.relevance, k)
        m["mrr@10"] = mrr_at(ranking, q.relevance, RANK_DEPTH)
        if graded:
            m["ndcg@10"] = ndcg_at(ranking, q.relevance, RANK_DEPTH)
    if obs.answer is None:  # retrieval only
        return m
    prediction = "" if obs.declined else clean_answer(obs.answer)
    if selected.answerable and q.answers:
        m["em"], m["f1"] = answer_scores(prediction, q.answers, chinese)
        m["recall"] = max(answer_recall(prediction, g, chinese) for g in q.answers)
        m["correct"] = m["recall"] >= CORRECT_RECALL
    elif not selected.answerable:
        m["correct"] = obs.declined
    if not obs.declined:
        if selected.answerable and q.relevance:
            m["citation_precision"] = citation_precision(
                [c.get("doc_id") for c in obs.citations], q.relevance
            )
        m["support"] = support_score(obs.answer, obs.cited_texts)
    return m
