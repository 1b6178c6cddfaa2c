"""Citation markers in an answer: parse them, drop those pointing nowhere, infer when missing.

A marker is a bracketed list of passage numbers: ``[1]``, ``[1, 2]``, ``[1][2]``, ``[1-3]``, and
the full-width forms small models write after Chinese text: ``【1】``, ``［1］``, ``[１，２]``
(`text.citation_markers` holds the one regex that reads them).
The model's markers are never trusted blindly: only numbers 1..n of the passages actually shown
count. When the model cites nothing, `support_fallback` picks the passages whose content units
(see `app.answer.units`) cover the answer best.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from app.answer.units import content_units, coverage
from index.types import Hit
from text.citation_markers import MARKER, OPENING, marker_numbers, strip_markers


def parse_citations(answer: str, n_passages: int) -> list[int]:
    """Valid passage numbers cited in ``answer``, in order of first appearance, without repeats.

    >>> parse_citations("Keys rotate [2][1] every 30 days 【2】, see [9].", 3)
    [2, 1]
    """
    seen: list[int] = []
    for match in MARKER.finditer(answer):
        for number in marker_numbers(match[1]):
            if 1 <= number <= n_passages and number not in seen:
                seen.append(number)
    return seen


def strip_invalid_markers(answer: str, n_passages: int) -> str:
    """``answer`` with out-of-range numbers removed from markers, and empty markers removed.

    >>> strip_invalid_markers("Yes [1, 7]. No [8].", 3)
    'Yes [1]. No.'
    """

    def fix(match: re.Match[str]) -> str:
        numbers = marker_numbers(match[1])
        valid = [n for n in numbers if 1 <= n <= n_passages]
        if len(valid) == len(numbers):
            return match[0]
        lead = " " if match[0][:1].isspace() else ""
        if not valid:  # drop it, and its leading space unless another marker follows
            follows = match.string[match.end() : match.end() + 1]
            return lead if follows and follows in OPENING else ""
        return f"{lead}[{', '.join(str(n) for n in dict.fromkeys(valid))}]"

    return MARKER.sub(fix, answer)


def support_fallback(
    answer: str,
    passages: Sequence[Hit | str],
    threshold: float = 0.3,
    max_citations: int = 2,
) -> list[int]:
    """Passage numbers (1-based) that best support an answer that cites nothing.

    A passage's support is the share of the answer's distinct content units it contains; those
    at or above ``threshold`` are returned, best first (ties by rank), at most ``max_citations``.

    >>> support_fallback("Keys rotate every 30 days.", ["Logs are kept.", "Keys rotate monthly."])
    [2]
    """
    units = content_units(strip_markers(answer))
    if not units:
        return []
    scored = []
    for number, passage in enumerate(passages, start=1):
        text = passage if isinstance(passage, str) else passage.chunk.text
        score = coverage(units, text)
        if score >= threshold:
            scored.append((-score, number))
    return [number for _, number in sorted(scored)[:max_citations]]
