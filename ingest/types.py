"""What a parser returns: the document's text as blocks, each with its place in the document."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

BlockKind = Literal["heading", "paragraph", "table", "list"]


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
