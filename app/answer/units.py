"""Content units: the words an answer is made of, for overlap between answers and passages.

One measure serves the citation fallback, the confidence ``support`` score and the extractive
degraded answer, so they agree on what "the passage says the same thing" means:

- NFKC-normalise (full-width letters and digits become ASCII) and lowercase;
- Latin text (any run of letters and digits that is not Han): word tokens, minus English
  stopwords and question words ("how", "many"...). Numbers are kept: "90" is content;
- Chinese text: overlapping character bigrams over each run of Han characters, as Lucene's CJK
  analyzer does, since a Chinese sentence has no spaces and word segmentation depends on
  context; a run of one character is kept as a unigram. Stop characters (的, 是, 了...) split a
  run, so "的部署" gives 部署 and not the noise bigram 的部. Han characters are first folded onto
  simplified script (`text.chinese_script.simplify_chars`), so a traditional question or answer
  overlaps a simplified passage ("日誌" and "日志" are one unit).

Concession: no stemming, so "rotate" and "rotates" are different units. Answers mostly copy the
passage's wording, and a hand-checkable measure is worth more than a little recall.

>>> content_units("How often do API keys rotate?")
['api', 'keys', 'rotate']
>>> content_units("日志保留90天")
['日志', '志保', '保留', '90', '天']
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from text.chinese_script import simplify_chars
from text.script import HAN
from text.stopwords import CHINESE_STOP_CHARS, ENGLISH_STOPWORDS, QUESTION_FILLERS

_RUN = re.compile(rf"([{HAN}]+)|([^\W_{HAN}]+)")
# Question words and fillers carry no content of their own, on top of the stopwords
# (`text.stopwords` says why each list is what it is).
STOPWORDS = ENGLISH_STOPWORDS | QUESTION_FILLERS


def content_units(text: str) -> list[str]:
    """The content units of ``text``, in order of appearance (duplicates kept)."""
    units: list[str] = []
    for han, other in _RUN.findall(unicodedata.normalize("NFKC", text).lower()):
        if other:
            if other not in STOPWORDS:
                units.append(other)
            continue
        for piece in _split_stop_chars(simplify_chars(han)):
            if len(piece) == 1:
                units.append(piece)
            else:
                units.extend(piece[i : i + 2] for i in range(len(piece) - 1))
    return units


def unit_set(text: str) -> set[str]:
    return set(content_units(text))


def coverage(units: Iterable[str], other_text: str) -> float:
    """Share of the distinct ``units`` that occur among ``other_text``'s units (0 if none).

    >>> coverage(["api", "keys"], "API keys expire.")
    1.0
    """
    wanted = set(units)
    if not wanted:
        return 0.0
    return len(wanted & unit_set(other_text)) / len(wanted)


def _split_stop_chars(run: str) -> list[str]:
    pieces: list[str] = []
    current = ""
    for char in run:
        if char in CHINESE_STOP_CHARS:
            if current:
                pieces.append(current)
            current = ""
        else:
            current += char
    if current:
        pieces.append(current)
    return pieces
