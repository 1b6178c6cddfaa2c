"""Uploaded files: safe names and sources, type and size limits."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from app.errors import PayloadTooLargeError, UnsupportedMediaError, ValidationFailedError
from ingest.parsers import SUPPORTED_SUFFIXES

_UNSAFE = re.compile(r"[^\w.\- ]+", re.UNICODE)
NAME_BYTES = 200  # a file name's UTF-8 budget (Linux allows 255 bytes for one name)
SOURCE_CHARS = 1000
_SUFFIX_CHARS = 16  # longer "extensions" are not extensions


def _clean_part(part: str) -> str:
    return _UNSAFE.sub("_", part).strip(" .")


def _cut(name: str, budget: int) -> str:
    """``name`` within ``budget`` UTF-8 bytes, cut in its stem so the extension survives.

    >>> _cut("a" * 300 + ".pdf", 200)[-8:]
    'aaaa.pdf'
    """
    if len(name.encode()) <= budget:
        return name
    suffix = Path(name).suffix
    if len(suffix) > _SUFFIX_CHARS:
        suffix = ""
    stem = name[: len(name) - len(suffix)]
    room = budget - len(suffix.encode())
    stem = stem.encode()[:room].decode("utf-8", "ignore").rstrip(" .")
    return stem + suffix


def safe_filename(name: str | None) -> str:
    """The base name only, without path parts or control characters, within NAME_BYTES bytes
    (a long name is cut in its stem: the extension, which says the file type, stays).

    >>> safe_filename("../../etc/passwd.md")
    'passwd.md'
    >>> safe_filename("报告 2024.pdf")
    '报告 2024.pdf'
    """
    if not name:
        raise ValidationFailedError("the uploaded file has no name")
    base = _clean_part(unicodedata.normalize("NFC", name).replace("\\", "/").split("/")[-1])
    if not base or base in {".", ".."}:
        raise ValidationFailedError(f"unusable file name {name!r}")
    return _cut(base, NAME_BYTES)


def safe_source(source: str | None, filename: str) -> str:
    """An upload's identity in its collection: ``source`` as a relative path of safe parts
    (``team-a/report.md``), or the file's safe name when no ``source`` is given.

    >>> safe_source("/team-a//./report.md", "report.md"), safe_source(None, "report.md")
    ('team-a/report.md', 'report.md')
    """
    if source is None or not source.strip():
        return filename
    parts = unicodedata.normalize("NFC", source).replace("\\", "/").split("/")
    if ".." in (p.strip() for p in parts):
        raise ValidationFailedError(f"source {source!r} must not contain '..'")
    cleaned = [c for c in (_clean_part(p) for p in parts) if c]
    if not cleaned:
        raise ValidationFailedError(f"unusable source {source!r}")
    joined = "/".join(cleaned)
    if len(joined) > SOURCE_CHARS:
        raise ValidationFailedError(f"source is {len(joined)} characters, over {SOURCE_CHARS}")
    return joined


def check_type(name: str) -> None:
    suffix = Path(name).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        allowed = ", ".join(sorted(SUPPORTED_SUFFIXES))
        raise UnsupportedMediaError(
            f"file type {suffix or '(none)'} is not accepted; use {allowed}"
        )


def check_size(size: int, limit: int) -> None:
    if size > limit:
        raise PayloadTooLargeError(f"file is {size} bytes, over the limit of {limit}")
