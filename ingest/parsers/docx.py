"""Word (``.docx``) with python-docx: body paragraphs and tables in document order.

python-docx (MIT) is the standard pure-Python reader of the Office Open XML format; it gives us
styles, which carry the document's structure. We walk the body's XML children ourselves
(``w:p`` paragraphs, ``w:tbl`` tables, and the content of ``w:sdt`` content controls) because
python-docx's ``paragraphs`` and ``tables`` lists lose their interleaving.

- ``Title`` and ``Heading N`` styles (or an outline level) are headings; the Title sits above
  ``Heading 1`` in heading paths;
- paragraphs with a list style (its name contains "List") or list numbering form "list" blocks,
  one item per line, consecutive items together;
- a table is one "table" block: a row per line, cells joined by " | " (a merged cell once).

Not read: headers, footers, footnotes, comments and text boxes. Legacy ``.doc`` files and
password-protected documents (both OLE containers) are rejected with a reason saying so. The
title is the document's core-properties title, else its first Title or Heading 1, else the
file name.
"""

from __future__ import annotations

import io
import logging
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docx
from docx.opc.constants import RELATIONSHIP_TYPE as RT
from docx.oxml.ns import qn
from docx.table import Table
from docx.text.paragraph import Paragraph

from ingest.parsers._common import BlockBuilder, clean_inline, clean_lines, title_or_stem
from ingest.parsers.errors import ParseError
from ingest.types import ParsedDocument

logger = logging.getLogger(__name__)

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_MAX_UNZIPPED = 512 * 1024 * 1024  # python-docx loads every part into memory
_HEADING_STYLE = re.compile(r"^(?:heading|标题)\s*([1-9])$", re.IGNORECASE)


def parse_docx(data: bytes, path: Path) -> ParsedDocument:
    _check_container(data, path)
    try:
        document = docx.Document(io.BytesIO(data))
        builder, first_heading = _walk(document)
        title = _core_title(document) or first_heading
    except MemoryError:
        raise
    except Exception as exc:  # zip, XML and python-docx errors on damaged input all mean this
        detail = str(exc).strip() or type(exc).__name__
        raise ParseError(path, f"corrupt DOCX: {detail}") from exc
    return ParsedDocument(title=title_or_stem(title, path), blocks=builder.blocks)


def _check_container(data: bytes, path: Path) -> None:
    if data.startswith(_OLE_MAGIC):
        reason = "not a DOCX file (legacy .doc or password-protected Word file; not supported)"
        raise ParseError(path, reason)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
            unzipped = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        raise ParseError(path, f"corrupt DOCX: not a valid zip archive ({exc})") from exc
    if "word/document.xml" not in names:
        raise ParseError(path, "not a DOCX file (no word/document.xml in the archive)")
    if unzipped > _MAX_UNZIPPED:
        raise ParseError(path, f"DOCX unpacks to {unzipped} bytes, over {_MAX_UNZIPPED}")


def _core_title(document: Any) -> str | None:
    """The core-properties title, if the file has core properties (python-docx invents a
    default part, titled "Word Document", when it does not)."""
    rels = document.part.package.rels.values()
    if not any(rel.reltype == RT.CORE_PROPERTIES for rel in rels):
        return None
    return (document.core_properties.title or "").strip() or None


def _body_items(parent: Any, document: Any) -> Iterator[Paragraph | Table]:
    for child in parent.iterchildren():
        if child.tag == qn("w:p"):
            yield Paragraph(child, document)
        elif child.tag == qn("w:tbl"):
            yield Table(child, document)
        elif child.tag == qn("w:sdt"):
            content = child.find(qn("w:sdtContent"))
            if content is not None:
                yield from _body_items(content, document)


def _walk(document: Any) -> tuple[BlockBuilder, str | None]:
    builder = BlockBuilder()
    items: list[str] = []
    title: str | None = None
    heading_one: str | None = None
    for item in _body_items(document.element.body, document):
        if isinstance(item, Paragraph):
            role, level = _role(item)
            text = clean_lines(item.text)
            if role == "list":
                if text:
                    items.append(text.replace("\n", " "))
                continue
            if not text:
                continue
        else:
            role, level, text = "table", 0, _table_text(item)
        if items:
            builder.add("\n".join(items), "list")
            items = []
        if role == "title":
            added = builder.heading(text, 1, rank=0)
            title = title or added
        elif role == "heading":
            added = builder.heading(text, level)
            heading_one = heading_one or (added if level == 1 else None)
        else:
            builder.add(text, "table" if role == "table" else "paragraph")
    if items:
        builder.add("\n".join(items), "list")
    return builder, title or heading_one


def _role(paragraph: Paragraph) -> tuple[str, int]:
    """("title" | "heading" | "list" | "paragraph", heading level)."""
    style = paragraph.style
    name = (style.name or "") if style is not None else ""
    if name.lower() == "title":
        return "title", 1
    if match := _HEADING_STYLE.match(name.strip()):
        return "heading", min(int(match.group(1)), 6)
    outline = _outline_level(paragraph, style)
    if outline is not None:
        return "heading", outline
    if "list" in name.lower() or paragraph._p.xpath("./w:pPr/w:numPr"):
        return "list", 0
    return "paragraph", 0


def _outline_level(paragraph: Paragraph, style: Any) -> int | None:
    """A heading level from ``w:outlineLvl`` (0-based; 9 means body text) on the paragraph/style."""
    values = paragraph._p.xpath("./w:pPr/w:outlineLvl/@w:val")
    if not values and style is not None:
        values = style.element.xpath("./w:pPr/w:outlineLvl/@w:val")
    if values and str(values[0]).isdigit() and int(values[0]) < 6:
        return int(values[0]) + 1
    return None


def _table_text(table: Table) -> str:
    rows: list[str] = []
    for row in table.rows:
        seen: list[Any] = []
        cells: list[str] = []
        for cell in row.cells:
            if any(cell._tc is tc for tc in seen):
                continue  # a horizontally merged cell is listed once per grid column
            seen.append(cell._tc)
            cells.append(" ".join(filter(None, (clean_inline(p.text) for p in cell.paragraphs))))
        if any(cells):
            rows.append(" | ".join(cells))
    return "\n".join(rows)
