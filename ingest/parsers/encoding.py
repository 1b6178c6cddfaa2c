"""Bytes to text for plain-text formats: BOMs, UTF-8, Chinese legacy encodings, then a guess.

Order of evidence, strongest first:

1. a byte-order mark (UTF-8, UTF-16, UTF-32), or an encoding the file declares (HTML ``<meta>``);
2. NUL bytes mean binary, unless the file is BOM-less UTF-16 (NULs on one byte parity only);
3. strict UTF-8 (and mostly-UTF-8 with some bad bytes, which become U+FFFD);
4. GB18030 versus Big5, decided by how many decoded ideographs are *common* characters (GB2312
   level 1 or Big5 level 1). charset-normalizer (MIT) alone misreads short Chinese texts (a
   heading or a line) as Korean or UTF-16 in about a third of our samples; a wrong decoding of
   either Chinese encoding yields mostly rare characters, so the count separates them reliably;
5. Windows-1252 for short texts with a few accented letters or curly quotes, where statistics
   have nothing to go on; charset-normalizer's best guess for anything else; Latin-1 last.

Concession: short texts in legacy *Korean* encodings (EUC-KR) can pass the step-4 test and be
read as Chinese, and a GB18030 text of one or two characters can happen to be valid UTF-8 (read
as such). The project's documents are English and Chinese, and UTF-8 is always safe.
"""

from __future__ import annotations

import codecs
import functools
import logging
import re
import unicodedata
from pathlib import Path

import charset_normalizer

from ingest.parsers.errors import ParseError
from text.script import has_han

logger = logging.getLogger(__name__)

_BOMS = (  # UTF-32 first: its little-endian BOM starts with UTF-16's
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_BIG5_FAMILY = ("big5", "cp950", "big5hkscs")
# Punctuation that both Chinese encodings share: neither evidence for nor against a decoding.
_NEUTRAL = re.compile(r"[\u00b7\u00d7\u00f7\u2010-\u206f\u2460-\u24ff\u3000-\u303f\uff00-\uffef]")
_WESTERN = re.compile(
    r"[\u00a0-\u00ff\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u2013-\u2026\u20ac]"
)
_FEW = 16  # non-ASCII bytes below which a Western text is too short for statistics
_SAMPLE = 64 * 1024  # characters scored; enough to decide, cheap for large files
_ALIASES = {"gb2312": "gb18030", "gbk": "gb18030", "iso8859-1": "cp1252", "ascii": "cp1252"}
BINARY_REASON = "binary content, not text"


def decode(data: bytes, path: Path, declared: str | None = None) -> str:
    """Decode ``data`` to text with ``\\n`` line ends; ParseError if it is binary."""
    text = _decode(data, declared)
    if text is None or _mostly_control(text[:_SAMPLE]):
        raise ParseError(path, BINARY_REASON)
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _decode(data: bytes, declared: str | None) -> str | None:
    """The text, or ``None`` for binary data."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return _strict(data[len(bom) :], codec) or _decode(data[len(bom) :], None)
    if declared and (text := _strict(data, _normalise_label(declared))) is not None:
        return text
    if b"\x00" in data:
        return _utf16_without_bom(data)
    if (text := _utf8(data)) is not None:
        return text
    if (text := _chinese(data)) is not None:
        return text
    if (text := _short_western(data)) is not None:
        return text
    best = charset_normalizer.from_bytes(data).best()
    if best is not None and not best.encoding.startswith(("utf_16", "utf_32")):
        logger.debug("charset-normalizer chose %s", best.encoding)
        return str(best)
    return _strict(data, "cp1252") or data.decode("latin-1")


def _strict(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return None


def _normalise_label(label: str) -> str:
    """A declared charset as the codec to try: GB2312/GBK as GB18030, Latin-1 as Windows-1252."""
    try:
        name = codecs.lookup(label.strip()).name
    except LookupError:
        return label
    if name.startswith(("utf-16", "utf-32")):  # a <meta> cannot be read in UTF-16 (WHATWG)
        return "utf-8"
    return _ALIASES.get(name, name)


def _utf16_without_bom(data: bytes) -> str | None:
    """UTF-16 without a BOM: NULs (the high bytes of ASCII characters) on one parity only."""
    if len(data) % 2:
        return None
    even, odd = data[0::2].count(0), data[1::2].count(0)
    enough = max(1, len(data) // 100)  # 2% of one parity's bytes
    if odd >= enough and even == 0:
        return _strict(data, "utf-16-le")
    if even >= enough and odd == 0:
        return _strict(data, "utf-16-be")
    return None


def _utf8(data: bytes) -> str | None:
    text = _strict(data, "utf-8")
    if text is not None:
        return text
    # Mostly UTF-8 with some bad bytes (a pasted Windows-1252 quote, a damaged file): keep the
    # UTF-8 reading. Legacy Chinese or Latin-1 text is almost never valid UTF-8, so its share of
    # good multi-byte characters is tiny.
    loose = data.decode("utf-8", errors="replace")
    bad = loose.count("\ufffd")
    good = sum(1 for ch in loose if ch > "\x7f") - bad
    if bad * 5 > good:
        return None
    logger.warning("%d invalid UTF-8 sequences replaced with U+FFFD", bad)
    return loose


def _chinese(data: bytes) -> str | None:
    """GB18030 or Big5, whichever reads as common Chinese; ``None`` when neither does."""
    if not any(b > 0x7F for b in data[:_SAMPLE]):
        return None
    candidates = [_strict(data, "gb18030")]
    candidates.append(next(filter(None, (_strict(data, c) for c in _BIG5_FAMILY)), None))
    scored = [(_score(t[:_SAMPLE]), t) for t in candidates if t is not None]
    if not scored:
        return None
    (ratio, common), text = max(scored, key=lambda s: s[0])
    return text if ratio >= 0.85 and common >= 1 else None


def _short_western(data: bytes) -> str | None:
    """A few accented letters or curly quotes: Windows-1252, where statistics have too little
    to go on (charset-normalizer reads "café résumé" as Arabic or Central European)."""
    if sum(1 for b in data if b > 0x7F) > _FEW:
        return None
    text = _strict(data, "cp1252")
    if text is None or not all(ch < "\x80" or _WESTERN.match(ch) for ch in text):
        return None
    return text


def _score(text: str) -> tuple[float, int]:
    """(share of non-ASCII characters that are common ideographs, count of those)."""
    good = bad = 0
    for ch in text:
        if ch < "\x80" or _NEUTRAL.match(ch):
            continue
        if has_han(ch) and _is_common(ch):
            good += 1
        else:
            bad += 1
    return (good / (good + bad) if good + bad else 0.0), good


@functools.lru_cache(maxsize=16384)
def _is_common(ch: str) -> bool:
    """In GB2312 level 1 (first byte B0-D7) or Big5 level 1 (first byte A4-C6)."""
    for codec, low, high in (("gb2312", 0xB0, 0xD7), ("big5", 0xA4, 0xC6)):
        try:
            encoded = ch.encode(codec)
        except UnicodeEncodeError:
            continue
        if len(encoded) == 2 and low <= encoded[0] <= high:
            return True
    return False


def _mostly_control(text: str) -> bool:
    if not text:
        return False
    controls = sum(
        1 for ch in text if ch not in "\t\n\r\f\v\x1b" and unicodedata.category(ch) == "Cc"
    )
    return controls > 0.05 * len(text)
