"""Tables on a PDF page, told from where each piece of a line's text starts.

A PDF has no tables, only text drawn at positions. pypdf's text visitor reports a line's text in
pieces, one per text object (``BT``...``ET``) or font change, each with the position it starts
at (:class:`~ingest.parsers._pdf_layout.LineCollector` keeps them as ``Line.cells``). A table
whose cells are drawn one by one (fpdf2, ReportLab, most report generators) shows as
consecutive lines whose pieces start at the same x positions, line after line. Detected:

- a run of at least two lines in one font size, going down the page by less than three times
  that size each, the first with pieces in two or more columns: the columns are where its
  pieces start, and it is taken as the header row (a PDF marks none);
- each later line with every piece starting within a few points of a column: a line with
  text in the first column and at least one other starts a row; a line with nothing in the
  first column continues the row above (a cell's text wrapped onto a second line);
- a list item (a bullet or a number, then the text, would look like two columns) never starts
  a table or a row.

Not detected, so read as paragraphs as before: cells moved to with ``Td`` inside one text
object (pypdf then reports the line as one piece, its cells joined by spaces; what Word and
LibreOffice exports usually do); centred or right-aligned columns (their pieces start at
different x); a header row with an empty cell, or a row with text in the first column only;
columns laid out with spaces inside one piece; tables drawn as images; and a table of one row.
A table split across pages is two tables, the second taking its first row as header.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ingest.parsers._common import join_wrapped

if TYPE_CHECKING:
    from ingest.parsers._pdf_layout import Line

_MARKER = re.compile(r"^(?:[-•◦▪▫‣∙·●○■□–*]|\(?\d{1,3}[.)]|\(?[a-zA-Z][.)])$")  # list items


@dataclass(frozen=True, slots=True)
class Found:
    """A table: ``lines[start:end]`` of the page, as ``rows`` of cells (the first the header)."""

    start: int
    end: int
    rows: tuple[tuple[str, ...], ...]


def find(lines: Sequence[Line]) -> list[Found]:
    """The tables among one page's lines, in order, none overlapping."""
    found: list[Found] = []
    i = 0
    while i < len(lines):
        table = _table_at(lines, i)
        if table is None:
            i += 1
        else:
            found.append(table)
            i = table.end
    return found


def _table_at(lines: Sequence[Line], i: int) -> Found | None:
    first = lines[i]
    columns = [x for x, _ in first.cells]
    if len(columns) < 2 or _MARKER.match(first.cells[0][1]):
        return None
    tolerance = max(2.0, 0.25 * first.size)
    rows = [[text for _, text in first.cells]]
    j = i + 1
    while j < len(lines):
        line, gap = lines[j], lines[j - 1].y - lines[j].y
        if abs(line.size - first.size) > 0.1 * first.size or not 0 < gap < 3 * line.size:
            break
        cells = _place(line, columns, tolerance)
        if cells is None:
            break
        if cells[0] and sum(1 for cell in cells if cell) >= 2 and not _MARKER.match(cells[0]):
            rows.append(cells)
        elif not cells[0]:  # a wrapped cell's next line
            rows[-1] = [
                join_wrapped(f"{a}\n{b}") if b else a for a, b in zip(rows[-1], cells, strict=True)
            ]
        else:
            break
        j += 1
    if len(rows) < 2:
        return None
    return Found(i, j, tuple(tuple(row) for row in rows))


def _place(line: Line, columns: list[float], tolerance: float) -> list[str] | None:
    """The line's pieces by column, or None if one starts off every column."""
    cells = [""] * len(columns)
    for x, text in line.cells:
        k = min(range(len(columns)), key=lambda c: abs(columns[c] - x))
        if abs(columns[k] - x) > tolerance:
            return None
        cells[k] = f"{cells[k]} {text}" if cells[k] else text
    return cells
