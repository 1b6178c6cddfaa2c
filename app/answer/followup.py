"""Follow-up questions: rewritten into one standalone question for retrieval and the prompt.

The model rewrites the last question with the conversation in view (``prompts/rewrite_v2.md``,
its rules and examples in the fixed system message, so llama.cpp reuses their KV cache). The
rewrite is used only when it is one line, one question (a question mark when the asker used
one: the 1.5B model sometimes answers instead, "orbit-scheduler 的监听端口是 8450。"), in the
asker's language, not a copy of an earlier turn, not the question back unchanged while it still
points into the conversation ("那 VPN 呢？"), not the earlier question reworded without any word
the follow-up adds to it (after "How long does a production session last ...?", "And production
access itself?" came back as "What is the duration of a production session ...?"), and not out
of proportion to what was asked. The
rewrite is both the retrieval query and the question the answer prompt carries. Otherwise (or
when the model failed) a deterministic fallback stands in, and the reason is logged: the
question with the previous user question it follows up on, as one line. The fallback is never
worse than asking the bare follow-up, and its words keep the subject ("it" alone retrieves
nothing).

Version 2 of the prompt says what a pronoun stands for (the thing the earlier question asked
about, not a value in the answer): with version 1 the default profile's model rewrote "And who
owns it?" after "What port does orbit-agent use?" / "... port 7070" into "Who owns the port
7070?", and 4 of 8 sample follow-ups went wrong; with version 2, 1 ("VPN 呢？" came back as it
was asked). The 1.5B model still answers most Chinese follow-ups instead of rewriting them (6
of the 6 in tests/data/conversations.jsonl, all handed to the fallback by the rules above).
Instructions in Chinese were tried: they rewrote 2 of those 6 but returned "那 PagerDuty 值班
呢？" unchanged, which version 2 rewrites right, so no gain was measured and they were not kept.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Literal

from app.answer.units import unit_set
from prompts.template import Messages, PromptTemplate, named
from text.language import detect_language

log = logging.getLogger(__name__)

HISTORY_TURNS = 6  # the last three exchanges: enough for a pronoun, bounded for the prompt
_LABEL = re.compile(r"^\s*(standalone question|question|rewritten question|问题)\s*[:：]\s*", re.I)
_QUOTES = "\"'“”‘’「」『』`"
_QUESTION_MARKS = ("?", "？")
# Words that point back into the conversation. A rewrite that returns such a question unchanged
# resolved nothing (the default profile's model did so with 那 VPN 呢？); a standalone question
# asked in a chat comes back unchanged too, and keeps its rewrite.
_REFERENCE = re.compile(
    r"\b(it|its|they|them|their|that|this|these|those|he|she|him|her|and|about)\b|[它这那呢]",
    re.I,
)


# A word of Latin script (content units of Chinese are characters and bigrams, which a right
# rewrite replaces: 它们 -> 部署日志).
_WORD = re.compile(r"[a-z0-9][a-z0-9'-]*")
REWORDED = 0.5  # shared content units (Jaccard) that make a rewrite the earlier question again


@dataclass(frozen=True)
class Standalone:
    query: str
    source: Literal["model", "fallback"]
    reason: str = ""  # why the fallback was used


def rewrite_messages(
    history: list[dict[str, str]], question: str, template: PromptTemplate | None = None
) -> Messages:
    turns = "\n".join(f"{t['role']}: {_one_line(t['content'])}" for t in history[-HISTORY_TURNS:])
    return (template or named("rewrite_v2")).render(history=turns, question=question.strip())


def standalone(rewritten: str | None, history: list[dict[str, str]], question: str) -> Standalone:
    """The model's rewrite when it is usable, else the deterministic fallback (logged)."""
    question = question.strip()
    previous = next((t["content"].strip() for t in reversed(history) if t["role"] == "user"), "")
    reason = _unusable(rewritten, history, question, previous)
    if reason is None:
        assert rewritten is not None
        return Standalone(_clean(rewritten), "model")
    log.warning("follow-up rewrite %s; using the fallback", reason)
    return Standalone(fallback(question, previous), "fallback", reason)


def fallback(question: str, previous: str) -> str:
    """The follow-up with the question it follows, one line: "<question> (<previous>)"."""
    previous = _one_line(previous)
    if not previous or previous == question:
        return question
    return f"{question} ({previous})"


def _unusable(
    rewritten: str | None, history: list[dict[str, str]], question: str, previous: str
) -> str | None:
    if rewritten is None:
        return "failed"
    text = _clean(rewritten)
    if not text:
        return "came back empty"
    if len(text) > 3 * (len(question) + len(previous)) + 50:
        return f"is out of proportion ({len(text)} characters)"
    if question.endswith(_QUESTION_MARKS) and not text.endswith(_QUESTION_MARKS):
        return "is not a question"
    if detect_language(text) != detect_language(question):
        return "is in another language than the question"
    if _key(text) == _key(question) and _REFERENCE.search(question):
        return "came back unchanged with a reference unresolved"
    earlier = {_key(t["content"]) for t in history}
    if _key(text) in earlier and _key(text) != _key(question):
        return "copies an earlier turn"
    if _rewords(text, previous) and (dropped := _dropped(text, question, previous)):
        return f"rewords the earlier question, without what the follow-up adds ({dropped})"
    return None


def _rewords(text: str, previous: str) -> bool:
    """Whether ``text`` is the earlier question reworded: at least half of the content units of
    the two are shared (Jaccard)."""
    a, b = unit_set(text), unit_set(previous)
    return bool(a | b) and len(a & b) / len(a | b) >= REWORDED


def _dropped(text: str, question: str, previous: str) -> str:
    """The Latin-script words the follow-up adds to the earlier question, when ``text`` keeps
    none of them ("" otherwise)."""
    added = sorted(w for w in unit_set(question) - unit_set(previous) if _WORD.fullmatch(w))
    return ", ".join(added) if added and not set(added) & unit_set(text) else ""


def _clean(text: str) -> str:
    """The first non-empty line, without a "Standalone question:" label or quotes."""
    line = next((ln for ln in text.strip().splitlines() if ln.strip()), "")
    return _LABEL.sub("", line).strip().strip(_QUOTES).strip()


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _key(text: str) -> str:
    return re.sub(r"\W+", "", text).lower()
