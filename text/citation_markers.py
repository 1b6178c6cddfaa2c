"""Citation markers in generated text: ``[1]``, ``[1, 2]``, ``[1-3]`` and their full-width forms.

One regex for every reader of an answer (the answer service checks the markers against the
passages shown, the confidence score and the evaluation read the answer without them). A marker
is a bracketed list of passage numbers separated by commas, enumeration commas, semicolons or
spaces, each number alone or a range; the brackets and digits may be the full-width forms
small models write after Chinese text: ``【1】``, ``［1］``, ``[１，２]``. A range wider than
`MAX_RANGE` ("[2024-03]") is a date, not a citation.

>>> marker_numbers("[1, 3-4]"), marker_numbers("【２】"), marker_numbers("[2024-03]")
([1, 3, 4], [2], [])
>>> strip_markers("Keys rotate monthly [1][2].")
'Keys rotate monthly.'
"""

from __future__ import annotations

import re
from typing import Final

OPENING: Final = "[【［"
CLOSING: Final = "]】］"
_SEP = r"\s*[,，、;；]\s*|\s+"
_ITEM = r"\d+(?:\s*[-–~]\s*\d+)?"  # \d also matches full-width digits
# Group 1 is the list inside the brackets; a leading space goes with the marker.
MARKER: Final = re.compile(
    rf"\s?[{re.escape(OPENING)}]\s*({_ITEM}(?:(?:{_SEP}){_ITEM})*)\s*[{re.escape(CLOSING)}]"
)
MAX_RANGE: Final = 20  # "[1-3]" expands; a range wider than this is not a citation


def marker_numbers(marker: str) -> list[int]:
    """The passage numbers a marker (or the list inside it) names, in order, ranges expanded."""
    numbers: list[int] = []
    for item in re.findall(_ITEM, marker):
        ends = [int(x) for x in re.findall(r"\d+", item)]  # int() reads full-width digits
        if len(ends) == 1:
            numbers.append(ends[0])
        elif 0 <= ends[1] - ends[0] <= MAX_RANGE:  # a range; "[2024-03]" is a date, skipped
            numbers.extend(range(ends[0], ends[1] + 1))
    return numbers


def strip_markers(text: str) -> str:
    """``text`` without its citation markers (and the space before each)."""
    return MARKER.sub("", text)
