"""Document parsers: one file in, a :class:`~ingest.types.ParsedDocument` (blocks in order) out.

``parse(path, max_bytes)`` picks the parser by the file's extension (case-insensitive). Every
problem with the input (missing, too big, empty, unreadable, damaged, wrong format) is a
:class:`ParseError` with a short reason for the person who owns the file; no library exception
escapes for bad content. The file is read once, up to ``max_bytes``, and the parsers work on
those bytes, so a file that changes while we read cannot slip past the limit.

Formats: ``.txt`` (:mod:`.text`), ``.md``/``.markdown`` (:mod:`.markdown`), ``.html``/``.htm``
(:mod:`.html`), ``.pdf`` (:mod:`.pdf`), ``.docx`` (:mod:`.docx`). Zip-based formats (DOCX, the
only one) also get ``max_inflated``: the bytes their members may inflate to, counted as they
inflate (:mod:`._zip`).
"""

from __future__ import annotations

import logging
import stat
from collections.abc import Callable
from pathlib import Path

from ingest.parsers.docx import parse_docx
from ingest.parsers.errors import ParseError
from ingest.parsers.html import parse_html
from ingest.parsers.markdown import parse_markdown
from ingest.parsers.pdf import parse_pdf
from ingest.parsers.text import parse_text
from ingest.types import ParsedDocument

__all__ = ["SUPPORTED_SUFFIXES", "ParseError", "parse"]

logger = logging.getLogger(__name__)

Parser = Callable[[bytes, Path], ParsedDocument]
ZipParser = Callable[[bytes, Path, int], ParsedDocument]  # data, path, inflated-bytes budget

_PARSERS: dict[str, Parser] = {
    ".txt": parse_text,
    ".md": parse_markdown,
    ".markdown": parse_markdown,
    ".html": parse_html,
    ".htm": parse_html,
    ".pdf": parse_pdf,
}
_ZIP_PARSERS: dict[str, ZipParser] = {".docx": parse_docx}
SUPPORTED_SUFFIXES: frozenset[str] = frozenset(_PARSERS) | frozenset(_ZIP_PARSERS)
EMPTY_REASON = "empty document"
INFLATED_PER_FILE_BYTE = 10  # default inflated budget: text XML deflates up to about 10:1


def parse(path: Path, max_bytes: int, max_inflated: int | None = None) -> ParsedDocument:
    """Parse the file at ``path``; ParseError (with ``.reason``) for any bad input.

    ``max_inflated`` (default ``INFLATED_PER_FILE_BYTE * max_bytes``) bounds what a zip-based
    file may unpack to.
    """
    path = Path(path)
    size = _check_file(path, max_bytes)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise ParseError(path, f"unsupported file type {suffix or '(no extension)'}")
    data = _read(path, size, max_bytes)
    if data.isspace():  # (not strip(): that copies the file)
        raise ParseError(path, EMPTY_REASON)
    inflated = max_inflated if max_inflated is not None else INFLATED_PER_FILE_BYTE * max_bytes
    try:
        if suffix in _ZIP_PARSERS:
            doc = _ZIP_PARSERS[suffix](data, path, inflated)
        else:
            doc = _PARSERS[suffix](data, path)
    except (ParseError, MemoryError):
        raise
    except RecursionError as exc:
        raise ParseError(path, "document structure is nested too deeply") from exc
    except Exception as exc:  # the boundary: a library failing on odd content costs one file
        logger.warning("%s: %s parser failed", path, path.suffix, exc_info=True)
        detail = str(exc).strip() or type(exc).__name__
        raise ParseError(path, f"cannot parse {path.suffix.lower()} file: {detail}") from exc
    if not doc.blocks:
        raise ParseError(path, EMPTY_REASON)
    logger.debug("%s: %d blocks, title %r", path, len(doc.blocks), doc.title)
    return doc


def _check_file(path: Path, max_bytes: int) -> int:
    """The size of a regular file within the size limit, or ParseError."""
    try:
        info = path.stat()
    except FileNotFoundError:
        reason = "broken symlink" if path.is_symlink() else "file not found"
        raise ParseError(path, reason) from None
    except PermissionError:
        raise ParseError(path, "permission denied") from None
    except OSError as exc:  # e.g. a symlink loop, a name too long
        reason = "broken symlink" if path.is_symlink() else f"cannot read file ({exc.strerror})"
        raise ParseError(path, reason) from None
    if stat.S_ISDIR(info.st_mode):
        raise ParseError(path, "not a regular file (a directory)")
    if not stat.S_ISREG(info.st_mode):
        raise ParseError(path, "not a regular file")
    if info.st_size > max_bytes:
        raise ParseError(path, f"file is {info.st_size} bytes, over the limit of {max_bytes}")
    return info.st_size


def _read(path: Path, size: int, max_bytes: int) -> bytes:
    """The file's bytes, never more than ``max_bytes`` of them."""
    try:
        with path.open("rb") as handle:
            # read(n) reserves n bytes first: ask for the size found, not for the limit.
            data = handle.read(size + 1)
            if len(data) > size:  # it grew since: read on, to the limit
                data += handle.read(max_bytes + 1 - len(data))
    except PermissionError:
        raise ParseError(path, "permission denied") from None
    except OSError as exc:
        raise ParseError(path, f"cannot read file ({exc.strerror or exc})") from None
    if len(data) > max_bytes:
        raise ParseError(path, f"file grew past the limit of {max_bytes} bytes while reading")
    if not data:
        raise ParseError(path, EMPTY_REASON)
    return data
