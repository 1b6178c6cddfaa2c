"""PDF (``.pdf``) with pypdf: text per page, each block stamped with its 1-based page.

pypdf (BSD-3) is pure Python with no native dependencies, and its licence lets us ship it.
PyMuPDF reads more PDFs but is AGPL, so it must not be used here.

- Encrypted files are read when the empty user password opens them (a common "no copying"
  protection); otherwise ParseError "encrypted PDF (password required)". AES needs the optional
  ``cryptography`` package; without it such files get a reason saying so.
- Damaged files raise ParseError "corrupt PDF: ..."; a page that fails on its own is skipped with
  a warning, so one bad page does not cost the document.
- A PDF with no text layer at all (a scan) raises ParseError: OCR is not supported.

Paragraphs, headings, lists, tables and running headers/footers come from the line geometry,
see :mod:`ingest.parsers._pdf_layout` (and :mod:`ingest.parsers._pdf_tables` for which tables
are found and which are not); a table's first row is taken as its header. The title is the
metadata title, else the file name.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

from pypdf import PdfReader
from pypdf.errors import DependencyError, PyPdfError
from pypdf.generic import IndirectObject

from ingest.parsers import _pdf_layout as layout
from ingest.parsers._common import BlockBuilder, title_or_stem
from ingest.parsers.errors import ParseError
from ingest.types import ParsedDocument, Table

logger = logging.getLogger(__name__)

SCANNED_REASON = "no extractable text (scanned PDF? OCR is not supported)"


def parse_pdf(data: bytes, path: Path) -> ParsedDocument:
    if b"%PDF-" not in data[:1024]:
        raise ParseError(path, "corrupt PDF: no %PDF header (not a PDF file)")
    try:
        # Not a bare BytesIO: pypdf asks it for getbuffer(), which copies the whole file.
        reader = PdfReader(io.BufferedReader(io.BytesIO(data)))
        _unlock(reader, path)
        count = len(reader.pages)
        title = _metadata_title(reader)
    except ParseError:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # pypdf raises many types on damaged input; all mean "corrupt"
        raise ParseError(path, f"corrupt PDF: {_describe(exc)}") from exc
    if count == 0:
        raise ParseError(path, "corrupt PDF: no pages")
    pages = [_page_paragraphs(reader, i, path) for i in range(count)]
    if all(p is None for p in pages):
        raise ParseError(path, "corrupt PDF: no page could be read")
    texts = [p or [] for p in pages]
    layout.drop_running_lines(texts)
    builder = _blocks(texts)
    if not builder.blocks:
        raise ParseError(path, SCANNED_REASON)
    return ParsedDocument(title=title_or_stem(title, path), blocks=builder.blocks)


def _unlock(reader: PdfReader, path: Path) -> None:
    if not reader.is_encrypted:
        return
    try:
        opened = reader.decrypt("")
    except DependencyError as exc:
        reason = "encrypted PDF (AES; reading it needs the 'cryptography' package)"
        raise ParseError(path, reason) from exc
    except NotImplementedError as exc:
        raise ParseError(path, f"encrypted PDF (unsupported encryption: {exc})") from exc
    if not opened:  # PasswordType.NOT_DECRYPTED == 0
        raise ParseError(path, "encrypted PDF (password required)")
    logger.debug("%s: encrypted PDF opened with the empty password", path)


def _metadata_title(reader: PdfReader) -> str | None:
    try:
        meta = reader.metadata
        title = meta.get("/Title") if meta else None
        if isinstance(title, IndirectObject):
            title = title.get_object()
    except (PyPdfError, KeyError, ValueError, TypeError, AttributeError):
        logger.debug("unreadable PDF metadata", exc_info=True)
        return None
    return str(title) if isinstance(title, str) else None


def _page_paragraphs(reader: PdfReader, index: int, path: Path) -> list[layout.Paragraph] | None:
    """The page's paragraphs; ``None`` if the page could not be read."""
    collector = layout.LineCollector()
    try:
        page = reader.pages[index]
        page.extract_text(visitor_text=collector)
    except MemoryError:
        raise
    except Exception as exc:  # one damaged page (bad font, broken stream) should not sink all
        logger.warning("%s: skipping page %d: %s", path, index + 1, _describe(exc))
        return None
    finally:
        _forget_decoded_contents(reader, index)
    collector.close()
    return layout.paragraphs(collector.lines)


def _forget_decoded_contents(reader: PdfReader, index: int) -> None:
    """Drop pypdf's cached inflation of a page's content streams once the page is read.

    pypdf keeps the decoded bytes of every stream it has read (``decoded_self``) for the
    reader's lifetime, so a whole document's inflated page contents (three or more times the
    file) would stay in memory until the last page. Each page's are read once: free them.
    """
    try:
        contents = reader.pages[index].get("/Contents")
        resolved = contents.get_object() if contents is not None else None
        streams = list(resolved) if isinstance(resolved, list) else [resolved]
        for item in streams:
            stream = item.get_object() if item is not None else None
            if stream is not None and getattr(stream, "decoded_self", None) is not None:
                stream.decoded_self = None
    except Exception:  # a cache we could not reach only costs memory
        logger.debug("could not free page %d's decoded contents", index + 1, exc_info=True)


def _blocks(pages: list[list[layout.Paragraph]]) -> BlockBuilder:
    levels = layout.heading_levels(pages)
    builder = BlockBuilder()
    for number, paras in enumerate(pages, start=1):
        items: list[str] = []
        for para in paras:
            if para.is_bullet:
                items.append(para.text)
                continue
            if items:
                builder.add("\n".join(items), "list", page=number)
                items = []
            if para.rows is not None:
                lines = tuple(range(len(para.rows)))
                table = Table(para.rows, lines, header=len(para.rows) > 1)
                builder.add(para.text, "table", page=number, table=table)
            elif layout.is_heading(para, levels):
                builder.heading(para.text, levels[para.size], page=number)
            else:
                builder.add(para.text, page=number)
        if items:
            builder.add("\n".join(items), "list", page=number)
    return builder


def _describe(exc: BaseException) -> str:
    return str(exc).strip() or type(exc).__name__
