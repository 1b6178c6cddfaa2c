"""Word (``.docx``): body paragraphs and tables in document order, read as a stream.

A DOCX is a zip of XML parts. We read the few parts we need ourselves, through
:class:`~ingest.parsers._zip.BoundedArchive`, which counts the bytes actually inflated (a member
that lies about its size, or an archive past ``DOCQA_MAX_INFLATED_MB``, is refused while it
inflates), and parse the main part with lxml's ``iterparse``, one body-level paragraph or table
at a time, freeing each once it is read. So time is linear in the document and memory is the
file, the text and one block, never the whole XML tree: python-docx (which builds that tree, and
looks a paragraph's style up by scanning every style) read a 38 KB file of 40,000 paragraphs in
39 s. python-docx stays what the tests and ``scripts/make_examples.py`` write documents with.

- Paragraphs styled ``Title`` or ``Heading N`` (or with an outline level) are headings; the
  Title sits above ``Heading 1`` in heading paths. A style is looked up once per style id.
- Paragraphs with a list style (its name contains "List") or list numbering form "list" blocks,
  one item per line, consecutive items together.
- A table is one "table" block: a row per line, cells joined by " | " (a merged cell once; a
  vertically merged cell repeats the text of the cell that starts it, as Word shows it). Its
  cells (``Block.table``) are kept by grid column, a cell spanning columns in its first one. The
  first row is the header when it is marked as one (``w:tblHeader``, "repeat as header row"),
  or, failing that, whenever the table has another row: Word tables rarely mark it, and most
  have one; a table of a single unmarked row has none.
- Body content inside content controls (``w:sdt``) and custom XML is read; text in tracked
  insertions, smart tags and simple fields is read; deleted text is not.

Not read: headers, footers, footnotes, comments and text boxes. Legacy ``.doc`` files and
password-protected documents (both OLE containers) are rejected with a reason saying so. The
title is the document's core-properties title, else its first Title or Heading 1, else the
file name.
"""

from __future__ import annotations

import logging
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lxml import etree

from ingest.parsers._common import BlockBuilder, clean_inline, clean_lines, title_or_stem
from ingest.parsers._zip import BoundedArchive
from ingest.parsers.errors import ParseError
from ingest.types import ParsedDocument, Table

logger = logging.getLogger(__name__)

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_HEADING_STYLE = re.compile(r"^(?:heading|标题)\s*([1-9])$", re.IGNORECASE)
_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_REL = "{http://schemas.openxmlformats.org/package/2006/relationships}Relationship"
_OFFICE_RT = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/"
_MAIN_RT = _OFFICE_RT + "officeDocument"
_STYLES_RT = _OFFICE_RT + "styles"
_CORE_RT = "http://schemas.openxmlformats.org/package/2006/relationships/metadata/core-properties"
_DC_TITLE = "{http://purl.org/dc/elements/1.1/}title"
_DEFAULT_MAIN = "word/document.xml"

# Body-level elements whose children are body content again.
_CONTAINERS = frozenset({f"{_W}body", f"{_W}sdt", f"{_W}sdtContent", f"{_W}customXml"})
# Inside a paragraph: elements whose runs are the paragraph's text (w:del is deleted text).
_RUN_HOLDERS = frozenset(
    f"{_W}{name}" for name in ("hyperlink", "ins", "smartTag", "fldSimple", "sdt", "sdtContent",
                               "customXml", "moveTo")
)  # fmt: skip
_RUN_TEXT = {f"{_W}tab": "\t", f"{_W}ptab": "\t", f"{_W}cr": "\n", f"{_W}noBreakHyphen": "-"}
_TRUE = {"1", "true", "on"}


def _xml_parser() -> etree.XMLParser:
    # No DTDs, entities or network: a part is data, never a reason to fetch or expand anything.
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def parse_docx(data: bytes, path: Path, max_inflated: int) -> ParsedDocument:
    if data.startswith(_OLE_MAGIC):
        reason = "not a DOCX file (legacy .doc or password-protected Word file; not supported)"
        raise ParseError(path, reason)
    archive = BoundedArchive(data, path, max_inflated=max_inflated, kind="DOCX")
    try:
        package = _relationships(archive, "")
        main = package.get(_MAIN_RT, _DEFAULT_MAIN)
        if main not in archive:
            raise ParseError(path, f"not a DOCX file (no {main} in the archive)")
        parts = _relationships(archive, main)
        styles = _Styles.load(archive, parts.get(_STYLES_RT))
        core = _core_title(archive, package.get(_CORE_RT))
        with archive.open(main) as stream:
            builder, first_heading = _walk(_body_blocks(stream), styles)
    except (etree.XMLSyntaxError, etree.ParseError) as exc:
        raise ParseError(path, f"corrupt DOCX: {exc}") from exc
    return ParsedDocument(title=title_or_stem(core or first_heading, path), blocks=builder.blocks)


# ---------------------------------------------------------------------------- package parts
def _relationships(archive: BoundedArchive, part: str) -> dict[str, str]:
    """Relationship type -> target part name, for the package ("") or a part."""
    folder, name = posixpath.split(part)
    rels = posixpath.join(folder, "_rels", f"{name}.rels")
    if rels not in archive:
        return {}
    root = etree.fromstring(archive.read(rels), _xml_parser())
    found: dict[str, str] = {}
    for rel in root.iter(_REL):
        kind, target = rel.get("Type"), rel.get("Target")
        if kind and target and rel.get("TargetMode") != "External" and kind not in found:
            joined = (
                target.lstrip("/") if target.startswith("/") else posixpath.join(folder, target)
            )
            found[kind] = posixpath.normpath(joined)
    return found


def _core_title(archive: BoundedArchive, part: str | None) -> str | None:
    if part is None or part not in archive:
        return None
    title = etree.fromstring(archive.read(part), _xml_parser()).find(_DC_TITLE)
    if title is None:
        return None
    return (title.text or "").strip() or None


@dataclass(frozen=True)
class _Style:
    name: str
    outline: int | None  # heading level from the style's own outline level


class _Styles:
    """Paragraph styles by id. A paragraph without a (known) style gets the default paragraph
    style, as Word shows it; each id is resolved once (``resolve``), then read from a dict."""

    def __init__(self, root: Any | None) -> None:
        self._elements: dict[str, Any] = {}
        self._default: str | None = None
        for style in root.iterfind(f"{_W}style") if root is not None else ():
            if style.get(f"{_W}type", "paragraph") != "paragraph":
                continue
            style_id = style.get(f"{_W}styleId")
            if style_id is not None:
                self._elements.setdefault(style_id, style)
                if style.get(f"{_W}default", "").lower() in _TRUE:
                    self._default = style_id  # Word takes the last default
        self._cache: dict[str | None, _Style] = {}

    @classmethod
    def load(cls, archive: BoundedArchive, part: str | None) -> _Styles:
        if part is None or part not in archive:
            return cls(None)
        return cls(etree.fromstring(archive.read(part), _xml_parser()))

    def get(self, style_id: str | None) -> _Style:
        style = self._cache.get(style_id)
        if style is None:
            style = self._cache[style_id] = self.resolve(style_id)
        return style

    def resolve(self, style_id: str | None) -> _Style:
        element = self._elements.get(style_id or "")
        if element is None:
            element = self._elements.get(self._default or "")
        if element is None:
            return _Style("", None)
        name = element.find(f"{_W}name")
        outline = element.find(f"{_W}pPr/{_W}outlineLvl")
        return _Style(
            (name.get(f"{_W}val") or "") if name is not None else "",
            _outline(outline.get(f"{_W}val") if outline is not None else None),
        )


def _outline(value: str | None) -> int | None:
    """A heading level from ``w:outlineLvl`` (0-based; 9 means body text)."""
    if value is not None and value.isdigit() and int(value) < 6:
        return int(value) + 1
    return None


# ------------------------------------------------------------------------------ the body
def _body_blocks(stream: Any) -> Iterator[Any]:
    """The body's paragraphs and tables, in order, each whole; freed once the caller is done."""
    for _, element in etree.iterparse(
        stream,
        events=("end",),
        tag=(f"{_W}p", f"{_W}tbl"),  # filtered in C: no Python object for the rest
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        remove_comments=True,
    ):
        parent = element.getparent()
        if not _in_body(parent):
            continue  # a paragraph or table inside a table: part of the outer one
        yield element
        element.clear(keep_tail=False)
        while element.getprevious() is not None:
            del parent[0]  # finished siblings, and whatever sat between them (w:sectPr, ...)


def _in_body(parent: Any) -> bool:
    """Whether children of ``parent`` are body content: the body, or a content control or
    custom XML element that is itself body content."""
    while parent is not None and parent.tag in _CONTAINERS:
        if parent.tag == f"{_W}body":
            return True
        parent = parent.getparent()
    return False


def _walk(blocks: Iterator[Any], styles: _Styles) -> tuple[BlockBuilder, str | None]:
    builder = BlockBuilder()
    items: list[str] = []
    title: str | None = None
    heading_one: str | None = None
    for element in blocks:
        cells: Table | None = None
        if element.tag == f"{_W}p":
            role, level = _role(element, styles)
            text = clean_lines(_paragraph_text(element))
            if role == "list":
                if text:
                    items.append(text.replace("\n", " "))
                continue
            if not text:
                continue
        else:
            role, level = "table", 0
            text, cells = _table(element)
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
            builder.add(text, "table" if role == "table" else "paragraph", table=cells)
    if items:
        builder.add("\n".join(items), "list")
    return builder, title or heading_one


def _role(paragraph: Any, styles: _Styles) -> tuple[str, int]:
    """("title" | "heading" | "list" | "paragraph", heading level)."""
    props = paragraph.find(f"{_W}pPr")
    style_ref = props.find(f"{_W}pStyle") if props is not None else None
    style = styles.get(style_ref.get(f"{_W}val") if style_ref is not None else None)
    name = style.name.strip().lower()
    if name == "title":
        return "title", 1
    if match := _HEADING_STYLE.match(name):
        return "heading", min(int(match.group(1)), 6)
    own = props.find(f"{_W}outlineLvl") if props is not None else None
    outline = _outline(own.get(f"{_W}val")) if own is not None else style.outline
    if outline is not None:
        return "heading", outline
    if "list" in name or (props is not None and props.find(f"{_W}numPr") is not None):
        return "list", 0
    return "paragraph", 0


def _paragraph_text(paragraph: Any) -> str:
    parts: list[str] = []
    _runs_text(paragraph, parts)
    return "".join(parts)


def _runs_text(holder: Any, parts: list[str]) -> None:
    for child in holder:
        if child.tag == f"{_W}r":
            for item in child:
                tag = item.tag
                if tag == f"{_W}t":
                    parts.append(item.text or "")
                elif tag == f"{_W}br":
                    parts.append(
                        "\n" if item.get(f"{_W}type", "textWrapping") == "textWrapping" else ""
                    )
                elif tag in _RUN_TEXT:
                    parts.append(_RUN_TEXT[tag])
        elif child.tag in _RUN_HOLDERS:
            _runs_text(child, parts)


def _table(table: Any) -> tuple[str, Table | None]:
    """A row per line, cells joined by " | "; a cell spanning columns once, a vertically merged
    cell with the text of the cell that starts it. And the cells by grid column."""
    rows: list[str] = []
    grids: list[tuple[str, ...]] = []
    marked = False  # the first row with text is marked as a header row
    above: dict[int, Any] = {}  # grid column -> the w:tc whose text shows there, previous row
    for row in table.iterfind(f"{_W}tr"):
        grid: dict[int, Any] = {}
        column = _int_val(row.find(f"{_W}trPr/{_W}gridBefore"), 0)
        cells: list[Any] = []
        for tc in row.iterfind(f"{_W}tc"):
            span = max(1, _int_val(tc.find(f"{_W}tcPr/{_W}gridSpan"), 1))
            merge = tc.find(f"{_W}tcPr/{_W}vMerge")
            shown = tc
            if merge is not None and merge.get(f"{_W}val", "continue") == "continue":
                shown = above.get(column)
            for offset in range(span):
                grid[column + offset] = shown
            column += span
            if shown is not None and not any(shown is seen for seen in cells):
                cells.append(shown)
        above = grid
        texts = {id(tc): _cell_text(tc) for tc in cells}
        if any(texts.values()):
            rows.append(" | ".join(texts[id(tc)] for tc in cells))
            grids.append(_by_column(grid, texts))
            if len(grids) == 1:
                marked = _on(row.find(f"{_W}trPr/{_W}tblHeader"))
    if not grids:
        return "", None
    header = marked or len(grids) > 1
    return "\n".join(rows), Table(tuple(grids), tuple(range(len(grids))), header=header)


def _by_column(grid: dict[int, Any], texts: dict[int, str]) -> tuple[str, ...]:
    """A row's cell texts by grid column: a cell in the first column it spans, "" elsewhere."""
    width = max(grid, default=-1) + 1
    seen: set[int] = set()
    out: list[str] = []
    for column in range(width):
        tc = grid.get(column)
        if tc is None or id(tc) in seen:
            out.append("")
        else:
            seen.add(id(tc))
            out.append(texts.get(id(tc), ""))
    return tuple(out)


def _on(element: Any | None) -> bool:
    """Whether an on/off property (``<w:tblHeader/>``, ``w:val="true"``) is set."""
    if element is None:
        return False
    return element.get(f"{_W}val", "true").lower() in _TRUE


def _cell_text(tc: Any) -> str:
    # Every paragraph in the cell, nested tables' included, in document order.
    return " ".join(filter(None, (clean_inline(_paragraph_text(p)) for p in tc.iter(f"{_W}p"))))


def _int_val(element: Any | None, default: int) -> int:
    value = element.get(f"{_W}val") if element is not None else None
    return int(value) if value is not None and value.isdigit() else default
