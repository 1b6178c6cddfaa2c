"""Which sentences of a cited passage the answer relies on, so the source panel can mark them.

The API gives, for each ``[n]`` marker, the passage it points to. To show *what* was cited, the
answer sentences carrying ``[n]`` are compared with each sentence of the passage by shared content
terms: lower-cased words (English stop words dropped) and, for Chinese, character bigrams. Passage
sentences mostly covered by the answer are marked; when none is, the single best-matching one is,
if it shares enough. A deliberate concession: this is lexical, like the API's own citation
fallback; a paraphrase with no shared terms marks nothing, and the panel then shows the passage
unmarked. The segments always join back to the exact passage text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# ui reaches the service over HTTP only (tests/test_architecture.py), so it may not import the
# `text` package: it carries its own small copies of the citation-marker pattern, the Han range,
# the sentence ends and the stopwords (see text/citation_markers.py, text/script.py,
# text/sentences.py, text/stopwords.py). They need not match exactly: they only decide which
# passage sentences are highlighted, never what the service answers or cites.
_MARKER = re.compile(r"\s?[\[【［]\s*[\d０-９][\d０-９\s,，、;；\-–~]*[\]】］]")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_WORD = re.compile(r"[^\W_]+")
# A sentence ends after . ! ? ; : and a space, after Chinese end punctuation, at a blank line, or
# before a line that starts a list item, heading, quote or table row (a wrapped line does not).
_BOUNDARY = re.compile(
    r"(?<=[.!?;:])\s+|(?<=[。！？；：])\s*|\n\s*\n\s*|\n(?=[ \t]*(?:[-*+•#>|]|\d+[.)、]))"
)
_STOP_WORDS = (
    "a an and are as at be by can do does for from has have how i if in is it its of on or "
    "that the their there they this to was we what when where which who why will with you"
)
_STOP = frozenset(_STOP_WORDS.split(" "))
MIN_SHARED = 2  # terms a sentence must share with the answer to be marked
MIN_COVERAGE = 0.5  # share of a sentence's terms found in the answer


@dataclass(frozen=True)
class Segment:
    text: str
    marked: bool


def terms(text: str) -> set[str]:
    """Content terms: words without stop words, and bigrams of Chinese runs.

    >>> sorted(terms("Keys rotate every 30 days"))
    ['30', 'days', 'every', 'keys', 'rotate']
    >>> sorted(terms("密钥每30天轮换"))
    ['30', '天轮', '密钥', '轮换', '钥每']
    """
    found: set[str] = set()
    for run in _CJK.findall(text):
        if len(run) == 1:
            found.add(run)
        else:
            found.update(run[i : i + 2] for i in range(len(run) - 1))
    for word in _WORD.findall(_CJK.sub(" ", text).lower()):
        if word not in _STOP:
            found.add(word)
    return found


def strip_markers(text: str) -> str:
    """``text`` without its citation markers.

    >>> strip_markers("Keys rotate every 30 days [1][2].")
    'Keys rotate every 30 days.'
    """
    return _MARKER.sub("", text)


def _marker_numbers(marker: str) -> set[int]:
    numbers: set[int] = set()
    for item in re.findall(r"\d+(?:\s*[-–~]\s*\d+)?", marker):
        ends = [int(x) for x in re.findall(r"\d+", item)]
        if len(ends) == 2 and 0 <= ends[1] - ends[0] <= 20:
            numbers.update(range(ends[0], ends[1] + 1))
        else:
            numbers.add(ends[0])
    return numbers


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence; together they cover ``text`` exactly."""
    spans, start = [], 0
    for boundary in _BOUNDARY.finditer(text):
        if boundary.end() > start:
            spans.append((start, boundary.end()))
            start = boundary.end()
    if start < len(text):
        spans.append((start, len(text)))
    return spans


def citing_text(answer: str, n: int) -> str:
    """The sentences of ``answer`` that cite ``[n]``, without markers; the whole answer if none.

    >>> citing_text("Keys rotate monthly [1]. Logs stay a year [2].", 2)
    'Logs stay a year.'
    """
    cited = []
    for start, end in sentence_spans(answer):
        sentence = answer[start:end]
        if any(n in _marker_numbers(m[0]) for m in _MARKER.finditer(sentence)):
            cited.append(strip_markers(sentence).strip())
    return " ".join(cited) if cited else strip_markers(answer).strip()


def highlight(passage: str, cited: str) -> list[Segment]:
    """``passage`` cut into segments, those supporting ``cited`` marked.

    >>> passage = "Logs are kept. Keys rotate every 30 days."
    >>> [s.text for s in highlight(passage, "rotate every 30 days") if s.marked]
    ['Keys rotate every 30 days.']
    """
    wanted = terms(cited)
    bare = " ".join(cited.split()).lower()
    spans = sentence_spans(passage)
    scores: list[tuple[int, float]] = []
    marked: list[bool] = []
    for start, end in spans:
        sentence = passage[start:end]
        own = terms(sentence)
        shared = len(own & wanted)
        coverage = shared / len(own) if own else 0.0
        scores.append((shared, coverage))
        flat = " ".join(sentence.split()).lower()
        contains = (len(bare) >= 8 and bare in flat) or (len(flat) >= 20 and flat in bare)
        marked.append(contains or (shared >= MIN_SHARED and coverage >= MIN_COVERAGE))
    if not any(marked) and scores:
        best = max(range(len(scores)), key=lambda i: scores[i])
        if scores[best][0] >= min(MIN_SHARED, len(wanted)) > 0:
            marked[best] = True
    segments: list[Segment] = []
    for (start, end), mark in zip(spans, marked, strict=True):
        if segments and segments[-1].marked == mark:
            segments[-1] = Segment(segments[-1].text + passage[start:end], mark)
        else:
            segments.append(Segment(passage[start:end], mark))
    return segments
