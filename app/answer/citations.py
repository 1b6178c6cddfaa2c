"""Citation markers in an answer: parse them, drop those pointing nowhere, infer when missing.

A marker is a bracketed list of passage numbers: ``[1]``, ``[1, 2]``, ``[1][2]``, ``[1-3]``, and
the full-width forms small models write after Chinese text: ``【1】``, ``［1］``, ``[１，２]``
(`text.citation_markers` holds the one regex that reads them).
The model's markers are never trusted blindly: only numbers 1..n of the passages actually shown
count. When the model cites nothing, `support_fallback` picks the passages whose content units
(see `app.answer.units`) cover the answer best. When a marker points at a passage that does not
hold what its sentence says while another shown passage does, `repoint_citations` moves it: the
1.5B model wrote "The orbit-agent is owned by Lin Wei. [1]" with passage 1 a release note that
names orbit-agent and passage 2 the owners' table.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from app.answer.units import content_units, coverage
from index.types import Hit
from text.citation_markers import MARKER, OPENING, marker_numbers, strip_markers

log = logging.getLogger(__name__)

# A cited passage "holds" its sentence when it has at least this share of the sentence's content
# units; another passage replaces it only when it holds the sentence and beats it by the margin.
HOLDS = 0.6
MARGIN = 0.25


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


def repoint_citations(answer: str, passages: Sequence[Hit | str]) -> str:
    """``answer`` with each run of markers whose passages do not hold the text it closes (the
    words since the previous marker) replaced by one marker for the shown passage that does.

    Only a clear win moves a citation: the other passage holds at least ``HOLDS`` of the text's
    content units and beats the cited passages together by ``MARGIN``. Markers must already be
    valid (``strip_invalid_markers``).

    >>> repoint_citations("Lin Wei owns orbit-agent [1].",
    ...                   ["orbit-agent leaked memory.", "orbit-agent: Owner Lin Wei"])
    'Lin Wei owns orbit-agent [2].'
    >>> repoint_citations("Lin Wei owns orbit-agent [1][2].",
    ...                   ["orbit-agent leaked memory.", "orbit-agent: Owner Lin Wei"])
    'Lin Wei owns orbit-agent [1][2].'
    """
    texts = [p if isinstance(p, str) else p.chunk.text for p in passages]
    runs: list[list[re.Match[str]]] = []  # markers with nothing but spaces between them
    for match in MARKER.finditer(answer):
        if runs and not answer[runs[-1][-1].end() : match.start()].strip():
            runs[-1].append(match)
        else:
            runs.append([match])
    out: list[str] = []
    start = 0
    for run in runs:
        begin, end = run[0].start(), run[-1].end()
        units = content_units(answer[start:begin])
        cited = {n for m in run for n in marker_numbers(m[1])}
        replacement = answer[begin:end]
        if units and cited:
            held = coverage(units, "\n".join(texts[n - 1] for n in sorted(cited)))
            best, number = max((coverage(units, t), -i) for i, t in enumerate(texts, start=1))
            if best >= HOLDS and best >= held + MARGIN:
                first = run[0][0]
                lead = " " if first.startswith(" ") else ""
                replacement = f"{lead}{first.lstrip()[0]}{-number}{first[-1]}"
                log.info(
                    "citation %s re-pointed to [%d]: it holds %.2f of the sentence, they %.2f",
                    sorted(cited),
                    -number,
                    best,
                    held,
                )
        out.append(answer[start:begin] + replacement)
        start = end
    out.append(answer[start:])
    return "".join(out)
