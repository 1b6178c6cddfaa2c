"""PDF text lines to paragraphs, headings and lists, from the geometry pypdf reports.

pypdf's plain extraction gives lines in content order (safe for multi-column pages, unlike its
"layout" mode, which interleaves columns) but no paragraph breaks. Its text visitor tells us each
line's baseline and font size, so:

- a paragraph ends where the vertical gap to the next line is clearly wider than the page's usual
  line spacing, where the font size changes, where the text jumps upwards (a new column), or
  before a bullet;
- a short paragraph in a font clearly larger than the body text is a heading; the larger the
  font, the higher the heading (level 1 for the largest);
- a line that opens or closes most pages and differs only in its digits (a running header or
  "page 3" footer) is dropped;
- lines whose pieces of text start at the same x positions, line after line, are a table
  (:mod:`ingest.parsers._pdf_tables` says what is and is not detected): one paragraph whose
  ``rows`` hold its cells, a row per line of its text.

Lines of a paragraph are joined by :func:`~ingest.parsers._common.join_wrapped` (no space
between CJK characters, "write-\\nonce" stays hyphenated).
"""

from __future__ import annotations

import itertools
import math
import re
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ingest.parsers import _pdf_tables
from ingest.parsers._common import join_wrapped
from ingest.tables import CELL_SEPARATOR

_BULLET = re.compile(r"^[-•◦▪▫‣∙·●○■□–*]\s")
_DIGITS = re.compile(r"\d+")


@dataclass(frozen=True, slots=True)
class Line:
    text: str
    y: float  # baseline, in points from the bottom of the page
    size: float  # effective font size, in points
    cells: tuple[tuple[float, str], ...] = ()  # (x, text) of each piece drawn at its own x


@dataclass(frozen=True, slots=True)
class Paragraph:
    """A paragraph as the rest of the parse needs it. Its lines are not kept: every page's
    paragraphs wait for the whole document (running lines, heading sizes), and a line object per
    line cost about five times the text."""

    text: str
    size: float  # of its first line
    line_count: int
    is_bullet: bool
    rows: tuple[tuple[str, ...], ...] | None = None  # a table's cells, a row per line of text

    @classmethod
    def of(cls, lines: Sequence[Line]) -> Paragraph:
        text = join_wrapped("\n".join(line.text for line in lines))
        return cls(text, lines[0].size, len(lines), bool(_BULLET.match(lines[0].text)))

    @classmethod
    def table(cls, found: _pdf_tables.Found, lines: Sequence[Line]) -> Paragraph:
        """A table as one paragraph: a row per line, cells joined by " | "."""
        text = "\n".join(CELL_SEPARATOR.join(row) for row in found.rows)
        return cls(text, lines[found.start].size, found.end - found.start, False, found.rows)


class LineCollector:
    """A pypdf ``visitor_text`` callback that records each output line with its position."""

    def __init__(self) -> None:
        self.lines: list[Line] = []
        self._parts: list[str] = []
        self._where: tuple[float, float] | None = None
        self._cells: list[tuple[float, str]] = []

    def __call__(
        self, text: str, cm: Sequence[float], tm: Sequence[float], font: Any, font_size: float
    ) -> None:
        for k, piece in enumerate(text.split("\n")):
            if k:
                self.close()
            if piece.strip() and self._where is None:
                self._where = _position(cm, tm, font_size)
            if piece.strip():
                self._cell(round(tm[4] * cm[0] + tm[5] * cm[2] + cm[4], 1), piece)
            self._parts.append(piece)

    def _cell(self, x: float, text: str) -> None:
        """Record a piece drawn at ``x``; one drawn where the last began (a font change, not a
        move: pypdf reports the start of the text object) continues it."""
        if self._cells and abs(self._cells[-1][0] - x) < 0.5:
            x, before = self._cells.pop()
            text = before + text
        self._cells.append((x, text))

    def close(self) -> None:
        text = "".join(self._parts).strip()
        if text and self._where is not None:
            cells = tuple((x, " ".join(t.split())) for x, t in self._cells)
            self.lines.append(Line(text, *self._where, cells=cells))
        self._parts, self._where, self._cells = [], None, []


def _position(cm: Sequence[float], tm: Sequence[float], font_size: float) -> tuple[float, float]:
    """Baseline y and effective font size of text drawn with matrices ``tm`` then ``cm``."""
    y = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]
    scale = math.hypot(tm[2] * cm[0] + tm[3] * cm[2], tm[2] * cm[1] + tm[3] * cm[3])
    size = abs(font_size) * scale if scale else abs(font_size)
    return round(y, 1), round(size or 1.0, 1)


def paragraphs(lines: list[Line]) -> list[Paragraph]:
    """Group one page's lines into paragraphs."""
    gaps = [
        a.y - b.y
        for a, b in itertools.pairwise(lines)
        if a.size == b.size and 0.3 * b.size < a.y - b.y < 3 * b.size
    ]
    spacing = statistics.median(gaps) if gaps else None
    tables = {found.start: found for found in _pdf_tables.find(lines)}
    found: _pdf_tables.Found | None = None
    groups: list[list[Line] | _pdf_tables.Found] = []
    for i, line in enumerate(lines):
        if found is not None and i < found.end:
            continue  # a line of the table just taken
        found = tables.get(i)
        if found is not None:
            groups.append(found)
            continue
        last = groups[-1] if groups else None
        if isinstance(last, list) and not _new_paragraph(last[-1], line, spacing):
            last.append(line)
        else:
            groups.append([line])
    return [
        Paragraph.of(group) if isinstance(group, list) else Paragraph.table(group, lines)
        for group in groups
    ]


def _new_paragraph(prev: Line, cur: Line, spacing: float | None) -> bool:
    if _BULLET.match(cur.text):
        return True
    if abs(prev.size - cur.size) > 0.1 * max(prev.size, cur.size):
        return True
    gap = prev.y - cur.y
    if abs(gap) < 0.3 * cur.size:
        return False  # the same row, split by pypdf
    if gap < 0:
        return True  # back up the page: a new column or region
    return gap > (1.3 * spacing if spacing else 2.0 * cur.size)


def drop_running_lines(pages: list[list[Paragraph]]) -> None:
    """Remove headers/footers: first or last paragraphs repeated on most pages but for digits."""
    if len(pages) < 2:
        return
    counts: Counter[str] = Counter()
    for paras in pages:
        counts.update({_key(p) for p in (paras[:1] + paras[-1:])})
    running = {key for key, n in counts.items() if n >= max(2, 0.6 * len(pages))}
    for paras in pages:
        for edge in (-1, 0):
            if paras and _key(paras[edge]) in running:
                del paras[edge]


def _key(para: Paragraph) -> str:
    return _DIGITS.sub("#", para.text)


def heading_levels(pages: list[list[Paragraph]]) -> dict[float, int]:
    """Font size -> heading level, for sizes clearly above the body text's size."""
    weight: Counter[float] = Counter()
    for paras in pages:
        for para in paras:
            weight[para.size] += len(para.text)
    if not weight:
        return {}
    body = weight.most_common(1)[0][0]
    bigger = sorted({s for s in weight if s >= 1.15 * body}, reverse=True)
    return {size: min(i + 1, 6) for i, size in enumerate(bigger)}


def is_heading(para: Paragraph, levels: dict[float, int]) -> bool:
    return (
        para.rows is None
        and para.size in levels
        and para.line_count <= 3
        and len(para.text) <= 150
        and not para.is_bullet
    )
