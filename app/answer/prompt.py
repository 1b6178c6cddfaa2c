"""The answer prompt: numbered passages plus instructions, fitted into a token budget.

The wording lives in one versioned file, ``prompts/answer_v5.md`` (the format of
``prompts.template``), covered by golden tests. Bump its version, and ``PROMPT_VERSION`` follows,
whenever the wording changes: answers, evals and caches record which prompt produced them.

Version 5 states the decline rule as a rule of the system message ("only if no passage states
the answer") and once more before the question, and ends the user message with the request to
answer and cite. Version 3 ended it with the decline sentence, and the 1.5B model copied it: it
declined 13 of 29 answerable XQuAD questions whose gold passage ranked first, and 20% of the
answerable questions of a held-out sample. Version 5 declines 2% of those, but answers more
unanswerable questions, so the default profile pairs it with the answerability check
(``ModelSpec.answerable_floor``). Measured with ``bench/prompt_ab.py``; docs/EVALUATION.md has
the table. (Version 4, the rule in the system message only, is kept as the measured
alternative.)

Version 3 gives the decline sentence in English whatever the question's language: given the
Chinese one after a Chinese question, Qwen2.5-1.5B copied it and declined every Chinese question
(7 of 7 on the samples, tables or not), while with the English one it answers them. The service
turns any decline into the question's language (``decline_phrase``), so users see no English.

Version 2 keeps the system message free of placeholders: the same text for every question, in
every language, so llama.cpp reuses its KV cache (the fixed instructions come first and are not
read again). Everything that varies (passages, question, language, decline phrase) is in the
user message. It also tells the model that passages are data, not instructions.

Passages arrive best first. When they do not all fit, the lowest-ranked are dropped first (the
kept ones are always a prefix of the ranking, numbered 1..n in that order); a single top passage
that is too long on its own is truncated rather than dropping everything. A passage is the
chunk's ``index_text``: for a table chunk, its rows rendered one per line with their column names
(``ingest.tables``), which a small model reads right where it misreads a Markdown row; and the
rows that name what the question names come first (`passage_text`): the 1.5B model still
answered with the first row's owner when the asked-for row was third.

Note for packaging: a non-editable install must ship ``app/answer/*.md`` as package data.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from app.answer.units import unit_set
from index.types import Hit
from ingest.tables import row_key
from prompts.template import PromptTemplate, named
from text.chinese_script import simplify_chars
from text.language import Language, detect_language

log = logging.getLogger(__name__)

TEMPLATE = "answer_v5"
DECLINE_EN = "I don't know based on the provided documents."
DECLINE_ZH = "根据提供的文档，我无法回答这个问题。"
LANGUAGE_NAMES = {"en": "English", "zh": "Chinese (简体中文)"}
TRUNCATION_MARK = " …"

CountTokens = Callable[[str], int]


@dataclass
class PromptBuild:
    messages: list[dict[str, str]]
    passages: list[Hit]  # the hits kept, numbered 1..n in this order
    dropped: int  # hits left out for the budget
    question: str  # as the prompt carries it (a follow-up's standalone rewrite)
    truncated: bool = False  # the top passage was cut to fit
    language: Language = "en"


def load_template() -> PromptTemplate:
    return named(TEMPLATE)


PROMPT_VERSION = load_template().version


def question_language(text: str) -> Language:
    """The language to answer ``text`` in: `text.language.detect_language`'s rule, which the
    evaluation shares (Han characters at least half of the "words", counting each Han character
    and each Latin run as one), so a Chinese question naming an English product stays Chinese.

    >>> question_language("谁负责 Grafana 监控的权限？"), question_language("What does 部署 mean?")
    ('zh', 'en')
    """
    return detect_language(text)


def decline_phrase(language: Language) -> str:
    return DECLINE_ZH if language == "zh" else DECLINE_EN


def source_label(hit: Hit) -> str:
    """``(source: <title or file name>, page N)`` for a passage header."""
    chunk = hit.chunk
    name = chunk.title.strip() or Path(chunk.source).name or chunk.source
    page = f", page {chunk.page}" if chunk.page is not None else ""
    return f"(source: {name}{page})"


def format_passage(number: int, hit: Hit, text: str | None = None) -> str:
    body = (hit.chunk.index_text if text is None else text).strip()  # a table's rows rendered
    return f"[{number}] {source_label(hit)}\n{body}"


def passage_text(hit: Hit, question: str) -> str:
    """What the model reads of a passage: the chunk's ``index_text``, with each table's rows
    (``Chunk.row_lines``) reordered so that those whose first cell (the row's name) shares the
    most content units with the question come first, then those sharing most elsewhere; other
    rows, and every other line, keep their order.

    >>> from index.types import Chunk
    >>> rows = "Owners\\norbit-api: Owner Priya\\norbit-agent: Owner Lin"
    >>> chunk = Chunk("c", "t", "d", "s", "", 0, 0, 1, rendered=rows, row_lines=((1, 3),))
    >>> passage_text(Hit(chunk, 1.0), "Who owns orbit-agent?").split("\\n")
    ['Owners', 'orbit-agent: Owner Lin', 'orbit-api: Owner Priya']
    """
    chunk = hit.chunk
    text = chunk.index_text
    if not chunk.row_lines:
        return text
    wanted = unit_set(question)

    def named(row: str) -> tuple[int, int]:
        return -len(wanted & unit_set(row_key(row))), -len(wanted & unit_set(row))

    lines = text.split("\n")
    for start, end in chunk.row_lines:
        if 0 <= start <= end <= len(lines):
            lines[start:end] = sorted(lines[start:end], key=named)
    return "\n".join(lines)


def render(template: PromptTemplate, question: str, blocks: Sequence[str]) -> list[dict[str, str]]:
    language = question_language(question)
    return template.render(
        language=LANGUAGE_NAMES[language],
        passages="\n\n".join(blocks) if blocks else "(no passages)",
        question=question.strip(),
    )


def build_messages(
    question: str,
    hits: Sequence[Hit],
    generator_count_tokens: CountTokens,
    budget_tokens: int,
    template: PromptTemplate | None = None,
) -> PromptBuild:
    """Messages for ``question`` with as many of ``hits`` (best first) as fit ``budget_tokens``.

    ``budget_tokens`` bounds the tokens of the two messages' contents; the caller leaves room for
    the chat template's few tokens and for the answer.
    """
    template = template or load_template()
    count = generator_count_tokens

    def total(blocks: Sequence[str]) -> int:
        return sum(count(m["content"]) for m in render(template, question, blocks))

    base = total([])
    blocks: list[str] = []
    used = base
    for number, hit in enumerate(hits, start=1):
        block = format_passage(number, hit, passage_text(hit, question))
        cost = count(block) + 2  # the blank line between passages
        if used + cost > budget_tokens:
            break
        blocks.append(block)
        used += cost
    # Per-block counts are estimates of the joined text; drop from the bottom until it truly fits.
    while blocks and total(blocks) > budget_tokens:
        blocks.pop()
    truncated = False
    if not blocks and hits:
        top = passage_text(hits[0], question)
        cut = _truncate_to_fit(hits[0], top, lambda b: total([b]) <= budget_tokens)
        if cut is not None:
            blocks, truncated = [cut], True
            log.info("top passage truncated to fit a %d-token prompt budget", budget_tokens)
    kept = list(hits[: len(blocks)])
    if len(kept) < len(hits):
        log.debug("prompt keeps %d of %d passages", len(kept), len(hits))
    return PromptBuild(
        messages=render(template, question, blocks),
        passages=kept,
        dropped=len(hits) - len(kept),
        question=question,
        truncated=truncated,
        language=question_language(question),
    )


def is_decline(answer_text: str) -> bool:
    """Whether the answer declines: either decline phrase, or a common variant, at its start,
    in either Chinese script (the phrases are simplified; the answer is folded onto simplified).

    >>> is_decline("I don't know."), is_decline("我無法回答這個問題"), is_decline("It is 5%.")
    (True, True, False)
    """
    text = _squash(simplify_chars(answer_text))
    if not text:
        return False
    if _squash(DECLINE_EN) in text or _squash(DECLINE_ZH) in text:
        return True
    return text.startswith(_DECLINE_STARTS)


_DECLINE_STARTS_RAW = (
    "I don't know",
    "I do not know",
    "I dont know",
    "I cannot answer",
    "I can't answer",
    "The provided documents do not",
    "The passages do not contain",
    "The documents do not contain",
    "我不知道",
    "不知道",
    "无法回答",
    "我无法回答",
    "根据提供的文档无法回答",
    "根据所提供的文档，我无法回答",
    "提供的文档中没有",
    "文档中没有",
)


def _squash(text: str) -> str:
    """Lowercase, NFKC, curly quotes straightened, whitespace and punctuation removed."""
    text = unicodedata.normalize("NFKC", text).replace("\u2019", "'").lower()
    return "".join(c for c in text if c.isalnum() or c == "'")


_DECLINE_STARTS = tuple(_squash(s) for s in _DECLINE_STARTS_RAW)


def _truncate_to_fit(hit: Hit, passage: str, fits: Callable[[str], bool]) -> str | None:
    """The longest prefix of the passage (cut at a character) whose block fits, or None."""
    text = passage.strip()
    lo, hi = 0, len(text)  # invariant: a prefix of length lo fits (or lo == 0)
    if not fits(format_passage(1, hit, TRUNCATION_MARK)):
        return None
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(format_passage(1, hit, text[:mid] + TRUNCATION_MARK)):
            lo = mid
        else:
            hi = mid - 1
    return format_passage(1, hit, text[:lo] + TRUNCATION_MARK) if lo else None
