"""Helpers every parser shares: whitespace clean-up that respects Chinese, and a block builder.

Whitespace rules (the same for every format, so offsets and chunks behave alike):

- text is NFC-normalised and zero-width characters are dropped;
- runs of spaces and tabs (and no-break/ideographic spaces) become one space;
- a line break between two CJK characters is removed (Chinese has no spaces between words: a
  break there is a wrap, not a word gap); any other line break joins with one space, except in
  blocks whose line structure matters (lists, tables, code), which keep their lines.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from ingest.types import Block, BlockKind, Table
from text.script import WRAPS_WITHOUT_SPACE

_ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u00ad]")
_HSPACE = re.compile(r"[^\S\n]+")  # whitespace other than a newline
# Han, kana, CJK punctuation, full-width forms: a line break between two of them is a wrap.
_CJK_BREAK = re.compile(rf"(?<=[{WRAPS_WITHOUT_SPACE}])[^\S\n]*\n\s*(?=[{WRAPS_WITHOUT_SPACE}])")
_ANY_SPACE = re.compile(r"\s+")
_HYPHEN_BREAK = re.compile(r"(?<=[A-Za-z]-)\n\s*(?=[a-z])")


def _base(text: str) -> str:
    text = unicodedata.normalize("NFC", text)
    return _ZERO_WIDTH.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def clean_inline(text: str) -> str:
    """Flow text (HTML, table cells, PDF lines) as one line.

    >>> clean_inline("安全\\n事件  is\\n  reported")
    '安全事件 is reported'
    """
    text = _CJK_BREAK.sub("", _base(text))
    return _ANY_SPACE.sub(" ", text).strip()


def join_wrapped(text: str) -> str:
    """Like :func:`clean_inline`, and "write-\\nonce" joins as "write-once" (hyphen kept)."""
    return clean_inline(_HYPHEN_BREAK.sub("", _base(text)))


def clean_lines(text: str) -> str:
    """Keep the line structure, collapse spaces inside each line, drop blank lines.

    >>> clean_lines("  a   b \\n\\n\\tc ")
    'a b\\nc'
    """
    lines = (_HSPACE.sub(" ", line).strip() for line in _base(text).split("\n"))
    return "\n".join(line for line in lines if line)


def clean_verbatim(text: str) -> str:
    """Code and preformatted text: keep indentation, drop trailing spaces and outer blank lines."""
    lines = [line.rstrip() for line in _base(text).expandtabs(4).split("\n")]
    return "\n".join(lines).strip("\n").strip()


def title_or_stem(candidate: str | None, path: Path) -> str:
    title = clean_inline(candidate or "")
    return title or path.stem


class BlockBuilder:
    """Collects blocks in reading order and stamps each with the headings above it.

    A heading's own ``heading_path`` lists its ancestors; the blocks after it include it. Headings
    are nested by ``rank`` (the level unless given): a heading closes every open heading of the
    same or a deeper rank.
    """

    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self._open: list[tuple[int, str]] = []
        self._path: tuple[
            str, ...
        ] = ()  # the open headings' texts, shared by the blocks under them

    @property
    def path(self) -> tuple[str, ...]:
        return self._path

    def heading(
        self, text: str, level: int, *, rank: int | None = None, page: int | None = None
    ) -> str | None:
        """Add a heading block; returns its cleaned text (``None`` if it was empty)."""
        text = clean_inline(text)
        if not text:
            return None
        rank = level if rank is None else rank
        while self._open and self._open[-1][0] >= rank:
            self._open.pop()
        level = max(1, min(level, 6))
        self._path = tuple(heading for _, heading in self._open)
        self.blocks.append(Block(text, "heading", page, self._path, level))
        self._open.append((rank, text))
        self._path = (*self._path, text)
        return text

    def add(
        self,
        text: str,
        kind: BlockKind = "paragraph",
        page: int | None = None,
        table: Table | None = None,
    ) -> None:
        """Add a body block of already-cleaned text; empty text is skipped. A "table" block may
        bring its cells (``table``: row ``k`` on line ``table.lines[k]`` of ``text``)."""
        text = unicodedata.normalize("NFC", text).strip()
        if text:
            self.blocks.append(Block(text, kind, page, self.path, table=table))
