"""Plain text (``.txt``): decode (see :mod:`ingest.parsers.encoding`), split on blank lines.

Each paragraph keeps its line breaks (a plain-text file's lines may be a list, an address or a
log); spaces inside a line are collapsed. There are no headings, so the title is the file name.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from ingest.parsers._common import BlockBuilder, clean_lines
from ingest.parsers.encoding import decode
from ingest.types import ParsedDocument

logger = logging.getLogger(__name__)

_BLANK_LINE = re.compile(r"\n[^\S\n]*\n\s*")


def parse_text(data: bytes, path: Path) -> ParsedDocument:
    text = decode(data, path)
    builder = BlockBuilder()
    for paragraph in _BLANK_LINE.split(text):
        builder.add(clean_lines(paragraph))
    return ParsedDocument(title=path.stem, blocks=builder.blocks)
