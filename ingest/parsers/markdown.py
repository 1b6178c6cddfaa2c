"""Markdown (``.md``, ``.markdown``): a small line scanner, not a renderer.

We keep the Markdown source text (links, emphasis and code spans as written) because it reads
well to both a person and a model, and needs no library. What matters for retrieval is structure:

- ATX (``## Title``) and setext (underlined) headings become heading blocks with levels, and every
  block carries the path of headings above it;
- a fenced code block (```` ``` ```` or ``~~~``) is one block, never split, and a ``#`` line inside
  it is code, not a heading;
- consecutive ``|`` lines are one "table" block, with its cells (``Block.table``: a row per
  line but the ``|---|`` rules, cells split at unescaped ``|``; the row above a rule on the
  second line is the header); a run of list items (with their continuation lines) is one "list"
  block; other lines group into paragraphs at blank lines.

YAML front matter (``---`` ... ``---`` at the top) is metadata and is skipped. The title is the
first level-1 heading, else the file name.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from ingest.parsers._common import BlockBuilder, clean_inline, clean_lines, clean_verbatim
from ingest.parsers.encoding import decode
from ingest.types import BlockKind, ParsedDocument, Table

logger = logging.getLogger(__name__)

_FENCE = re.compile(r"^([ \t]*)(`{3,}|~{3,})")
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_RULE = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_LIST_ITEM = re.compile(r"^[ \t]*(?:[-*+]|\d{1,9}[.)])(?:[ \t]+|$)")
_TABLE_ROW = re.compile(r"^ {0,3}\|")
_TABLE_RULE = re.compile(r"^[|: -]*-{3}[|: -]*$")  # the |---|:--:| line under a header
_ANY_RULE = re.compile(r"^[|: -]*-[|: -]*$")  # |-|:-:| is a rule too, though not shrunk
_CELL_BORDER = re.compile(r"(?<!\\)\|")  # a | not escaped as \|
_FRONT_MATTER_END = re.compile(r"^(?:---|\.\.\.)[ \t]*$")


def parse_markdown(data: bytes, path: Path) -> ParsedDocument:
    scanner = _Scanner(_skip_front_matter(decode(data, path).split("\n")))
    scanner.run()
    return ParsedDocument(title=scanner.title or path.stem, blocks=scanner.builder.blocks)


def _skip_front_matter(lines: list[str]) -> list[str]:
    if lines and lines[0].strip() == "---":
        for i, line in enumerate(lines[1:50], start=1):
            if _FRONT_MATTER_END.match(line):
                return lines[i + 1 :]
    return lines


class _Scanner:
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.builder = BlockBuilder()
        self.title: str | None = None
        self.kind: BlockKind | None = None  # the block being gathered
        self.buf: list[str] = []

    def run(self) -> None:
        i = 0
        while i < len(self.lines):
            i = self._step(i)
        self._flush()

    def _step(self, i: int) -> int:
        """Handle line ``i``; return the index of the next line to look at."""
        line = self.lines[i]
        fence = _FENCE.match(line)
        if fence:
            return self._fenced(i, fence)
        if not line.strip():
            if self.kind == "list" and self._list_continues(i + 1):
                return i + 1
            self._flush()
            return i + 1
        if atx := _ATX.match(line):
            self._flush()
            self._heading(atx.group(2) or "", len(atx.group(1)))
        elif (setext := _SETEXT.match(line)) and self.kind == "paragraph":
            text, self.buf, self.kind = " ".join(self.buf), [], None
            self._heading(text, 1 if setext.group(1)[0] == "=" else 2)
        elif _RULE.match(line):
            self._flush()
        elif _TABLE_ROW.match(line):
            self._gather("table", line)
        elif _LIST_ITEM.match(line) or self.kind == "list":
            self._gather("list", line)  # an item, or a continuation line of one
        else:
            self._gather("paragraph", line)
        return i + 1

    def _fenced(self, i: int, fence: re.Match[str]) -> int:
        marker = fence.group(2)
        close = re.compile(rf"^[ \t]*{re.escape(marker[0])}{{{len(marker)},}}[ \t]*$")
        end = next((j for j in range(i + 1, len(self.lines)) if close.match(self.lines[j])), None)
        last = len(self.lines) - 1 if end is None else end  # unclosed: code to the end
        code = self.lines[i : last + 1]
        if self.kind == "list" and fence.group(1):
            self.buf.extend(code)  # an indented fence inside a list item stays in the list
        else:
            self._flush()
            self.builder.add(clean_verbatim("\n".join(code)))
        return last + 1

    def _list_continues(self, i: int) -> bool:
        """After a blank line, does the list go on (another item, or an indented paragraph)?"""
        nxt = next((line for line in self.lines[i:] if line.strip()), "")
        return bool(_LIST_ITEM.match(nxt)) or nxt.startswith(("  ", "\t"))

    def _heading(self, text: str, level: int) -> None:
        text = clean_inline(text)
        added = self.builder.heading(text, level)
        if added and level == 1 and self.title is None:
            self.title = added

    def _gather(self, kind: BlockKind, line: str) -> None:
        if self.kind != kind:
            self._flush()
            self.kind = kind
        self.buf.append(line)

    def _flush(self) -> None:
        if self.buf and self.kind is not None:
            text = "\n".join(self.buf)
            if self.kind == "list":
                self.builder.add(_clean_list(text), "list")
            elif self.kind == "table":
                table = _clean_table(text)
                self.builder.add(table, "table", table=_cells(table))
            else:
                self.builder.add(clean_lines(text), self.kind)
        self.buf, self.kind = [], None


def _clean_list(text: str) -> str:
    """List lines keep their indentation (it shows nesting); spaces inside a line collapse."""
    lines = []
    for line in clean_verbatim(text).split("\n"):
        indent = len(line) - len(line.lstrip(" "))
        if line.strip():
            lines.append(" " * indent + re.sub(r"\s+", " ", line.strip()))
    return "\n".join(lines)


def _clean_table(text: str) -> str:
    """Spaces collapse; the header rule shrinks ("|------|" to "|---|"): dashes cost tokens."""
    lines = clean_lines(text).split("\n")
    return "\n".join(re.sub("-{3,}", "---", ln) if _TABLE_RULE.match(ln) else ln for ln in lines)


def _cells(text: str) -> Table | None:
    """The cells of a cleaned table block; None if no line holds any."""
    lines = text.split("\n")
    rows: list[tuple[str, ...]] = []
    numbers: list[int] = []
    for number, line in enumerate(lines):
        if _ANY_RULE.match(line):
            continue
        cells = _row_cells(line)
        if any(cells):
            rows.append(cells)
            numbers.append(number)
    if not rows:
        return None
    header = numbers[0] == 0 and len(lines) > 1 and bool(_ANY_RULE.match(lines[1]))
    return Table(tuple(rows), tuple(numbers), header=header)


def _row_cells(line: str) -> tuple[str, ...]:
    """``| a | b \\| c |`` -> ``("a", "b | c")``."""
    line = line.strip()
    line = line[1:] if line.startswith("|") else line
    line = line[:-1] if line.endswith("|") and not line.endswith("\\|") else line
    return tuple(cell.strip().replace("\\|", "|") for cell in _CELL_BORDER.split(line))
