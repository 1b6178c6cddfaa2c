"""What a parser returns: the document's text as blocks, each with its place in the document."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

BlockKind = Literal["heading", "paragraph", "table", "list"]


@dataclass(frozen=True, slots=True)
class Table:
    """A table's cells, so each row can be rendered on its own (:mod:`ingest.tables`).

    ``rows`` are the rows with text, in order, each a tuple of cell texts; with ``header`` the
    first of them is the header row (the column names). ``lines[k]`` is the line of the block's
    text that row ``k`` is on: a caption or a Markdown ``|---|`` rule is a line with no row.
    ``caption`` is the table's own title (an HTML ``<caption>``), "" if none.
    """

    rows: tuple[tuple[str, ...], ...]
    lines: tuple[int, ...]
    header: bool = False
    caption: str = ""

    def __post_init__(self) -> None:
        if len(self.lines) != len(self.rows) or list(self.lines) != sorted(set(self.lines)):
            raise ValueError("a table needs one increasing line number per row")

    @property
    def columns(self) -> tuple[str, ...] | None:
        """The header row's cells, or None for a table without one."""
        return self.rows[0] if self.header and self.rows else None

    @property
    def body(self) -> tuple[tuple[str, ...], ...]:
        """The rows under the header (every row when there is none)."""
        return self.rows[1:] if self.header else self.rows


@dataclass(frozen=True, slots=True)  # slots: a long document holds tens of thousands
class Block:
    """A structural unit of a document, in reading order.

    ``text`` is exactly what the block contributes to the document text; blocks are joined with
    "\\n\\n" to form ``ParsedDocument.text``, so offsets computed there are stable.
    """

    text: str
    kind: BlockKind = "paragraph"
    page: int | None = None  # 1-based page for PDFs
    heading_path: tuple[str, ...] = ()  # the headings this block sits under, outermost first
    level: int = 0  # heading level (1..6) for kind == "heading"
    table: Table | None = None  # a "table" block's cells, when its parser could tell them


@dataclass
class ParsedDocument:
    title: str
    blocks: list[Block] = field(default_factory=list)

    SEPARATOR = "\n\n"

    @property
    def text(self) -> str:
        return self.SEPARATOR.join(b.text for b in self.blocks)

    def block_offsets(self) -> list[tuple[int, int]]:
        """(start, end) of each block in ``text``."""
        offsets, pos = [], 0
        for block in self.blocks:
            offsets.append((pos, pos + len(block.text)))
            pos += len(block.text) + len(self.SEPARATOR)
        return offsets
