"""A table's rows as self-contained lines, for the embedder, BM25 and the prompt.

A small model reading a Markdown row (``| orbit-scheduler | Daniel Ferreira | 8450 |``) has to
count pipes to know which column a value sits in, and gets it wrong. So each row is also
rendered with its column names, the first cell naming the row::

    orbit-scheduler: Owner Daniel Ferreira; Port 8450; Purpose Orders deploy jobs

Empty cells are left out. A table without a header row renders as its cells joined:
``cell1; cell2; cell3``. Above its rows go the table's caption and its header row
(:func:`intro`), so a table cut across chunks still names its columns in every chunk. The
chunker puts these lines in a chunk's ``rendered`` text; the chunk's ``text`` stays a slice of
the document, for citations.
"""

from __future__ import annotations

from collections.abc import Sequence

from ingest.types import Table

CELL_SEPARATOR = " | "  # between the cells of a row as a block's text shows it
_AFTER_KEY = ": "  # after the cell that names a rendered row
_BETWEEN = "; "  # between the other cells of a rendered row


def render_row(row: Sequence[str], columns: Sequence[str] | None) -> str:
    """One row as a line that needs no other line to be read.

    >>> render_row(("orbit-api", "Priya Raman", "8443"), ("Component", "Owner", "Port"))
    'orbit-api: Owner Priya Raman; Port 8443'
    >>> render_row(("VPN", "", "分机 8008"), None)
    'VPN; 分机 8008'
    """
    row = [" ".join(cell.split()) for cell in row]  # one line, whatever the cells held
    if columns is None:
        return _BETWEEN.join(cell for cell in row if cell)
    key, rest = (row[0], row[1:]) if row else ("", [])
    named = []
    for column, cell in enumerate(rest, start=1):
        if cell:
            name = " ".join(columns[column].split()) if column < len(columns) else ""
            named.append(f"{name} {cell}" if name else cell)
    body = _BETWEEN.join(named)
    if not key:
        return body
    return f"{key}{_AFTER_KEY}{body}" if body else key


def row_key(line: str) -> str:
    """The cell that names a rendered row (its first): what comes before ": ", or, in a table
    without a header, before the first "; ".

    >>> row_key("orbit-api: Owner Priya Raman; Port 8443"), row_key("VPN; 陈静")
    ('orbit-api', 'VPN')
    """
    for separator in (_AFTER_KEY, _BETWEEN):
        if separator in line:
            return line.split(separator, 1)[0]
    return line


def intro(table: Table) -> tuple[str, ...]:
    """The lines that go above a table's rendered rows: its caption, its header row."""
    columns = table.columns
    lines = (table.caption, CELL_SEPARATOR.join(columns) if columns else "")
    return tuple(line for line in lines if line)


def rendered_rows(table: Table) -> list[str]:
    """Every row under the header, rendered; one entry per row of ``table.body``."""
    columns = table.columns
    return [render_row(row, columns) for row in table.body]


def row_spans(text: str, table: Table) -> list[tuple[int, int]]:
    """(start, end) in a table block's ``text`` of each row of ``table.body``: the row's line,
    with the lines before it that hold no body row (caption, header row, rule); the last row's
    span runs to the end. Consecutive spans are separated by one line break.

    >>> t = Table((("a", "b"), ("1", "2"), ("3", "4")), (0, 2, 3), header=True)
    >>> [text[s:e] for text in ["| a | b |\\n|---|---|\\n| 1 | 2 |\\n| 3 | 4 |"]
    ...  for s, e in row_spans(text, t)]
    ['| a | b |\\n|---|---|\\n| 1 | 2 |', '| 3 | 4 |']
    """
    starts = [0]
    for k, char in enumerate(text):
        if char == "\n":
            starts.append(k + 1)
    ends = [s - 1 for s in starts[1:]] + [len(text)]
    body_lines = table.lines[1:] if table.header else table.lines
    spans: list[tuple[int, int]] = []
    begin = 0
    for k, line in enumerate(body_lines):
        end = len(text) if k == len(body_lines) - 1 else ends[line]
        spans.append((begin, end))
        begin = end + 1
    return spans
