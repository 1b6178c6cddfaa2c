"""Uploaded files: safe names, type and size limits, written to a private temporary folder."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from app.errors import PayloadTooLargeError, UnsupportedMediaError, ValidationFailedError
from ingest.parsers import SUPPORTED_SUFFIXES

_UNSAFE = re.compile(r"[^\w.\- ]+", re.UNICODE)


def safe_filename(name: str | None) -> str:
    """The base name only, without path parts or control characters.

    >>> safe_filename("../../etc/passwd.md")
    'passwd.md'
    >>> safe_filename("报告 2024.pdf")
    '报告 2024.pdf'
    """
    if not name:
        raise ValidationFailedError("the uploaded file has no name")
    base = unicodedata.normalize("NFC", name).replace("\\", "/").split("/")[-1]
    base = _UNSAFE.sub("_", base).strip(" .")
    if not base or base in {".", ".."}:
        raise ValidationFailedError(f"unusable file name {name!r}")
    return base[:200]


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
