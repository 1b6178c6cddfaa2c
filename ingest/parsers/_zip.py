"""Zip archives (DOCX) read within a budget of bytes actually inflated.

An archive states each member's size, and the statement can lie: a 951 KB DOCX declared 1,000
bytes for a ``word/document.xml`` that inflates to 900 MB, and :mod:`zipfile`'s ``read()``
inflates the whole member before it cuts the result to the declared size. So members are never
inflated by zipfile (nor by a library handed the archive). :meth:`BoundedArchive.open` inflates
one member itself, 64 KiB at a time, and counts what comes out against two limits:

- the member's declared size: a member that inflates past it is refused at once;
- the budget shared by every member read from the archive (``max_inflated``).

Only the members a parser asks for are ever inflated; the rest (images, fonts) cost nothing.
Members are read from the central directory's offsets and checked by CRC at their end.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

from ingest.parsers.errors import ParseError

MAX_MEMBERS = 10_000  # a Word document has tens to a few hundred; zipfile keeps one object each
_PIECE = 64 * 1024
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature ... file name length, extra field length
_EOCD = b"PK\x05\x06"


class BoundedArchive:
    """The members of a zip archive held in ``data``, inflated on demand within a budget.

    ``BoundedArchive(data, path, max_inflated=200 << 20, kind="DOCX").read("word/styles.xml")``
    """

    def __init__(self, data: bytes, path: Path, *, max_inflated: int, kind: str) -> None:
        self.path = path
        self.kind = kind
        self.max_inflated = max_inflated
        self.inflated = 0  # bytes inflated so far, every member together
        self._data = memoryview(data)
        _check_member_count(data, path, kind)
        try:
            self._zip = zipfile.ZipFile(io.BytesIO(data))
            self._infos = {info.filename: info for info in self._zip.infolist()}
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
            raise ParseError(path, f"corrupt {kind}: not a valid zip archive ({exc})") from exc

    def __contains__(self, name: str) -> bool:
        return name in self._infos

    def open(self, name: str) -> _MemberStream:
        """A binary stream of one member's inflated bytes (KeyError if there is no such member)."""
        info = self._infos[name]
        if info.flag_bits & 0x1:
            raise ParseError(self.path, f"{self.kind} member {name} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ParseError(
                self.path,
                f"corrupt {self.kind}: member {name} uses compression method "
                f"{info.compress_type}, not stored or deflate",
            )
        if self.inflated + info.file_size > self.max_inflated:
            raise self._over_budget(name)
        return _MemberStream(self, info, self._member_bytes(info))

    def read(self, name: str) -> bytes:
        """One member's inflated bytes, whole (for the small parts: relationships, styles)."""
        with self.open(name) as stream:
            return stream.read()

    def _member_bytes(self, info: zipfile.ZipInfo) -> memoryview:
        """The member's stored (compressed) bytes, located through its local header."""
        start = info.header_offset
        header = bytes(self._data[start : start + _LOCAL_HEADER.size])
        if len(header) < _LOCAL_HEADER.size or header[:4] != b"PK\x03\x04":
            raise ParseError(
                self.path, f"corrupt {self.kind}: bad local header for {info.filename}"
            )
        _, name_length, extra_length = _LOCAL_HEADER.unpack(header)
        begin = start + _LOCAL_HEADER.size + name_length + extra_length
        return self._data[begin : begin + info.compress_size]

    def _over_budget(self, name: str) -> ParseError:
        limit_mb = self.max_inflated / (1024 * 1024)
        return ParseError(
            self.path,
            f"{self.kind} unpacks to more than {limit_mb:g} MB (at {name}); "
            "refused as a possible zip bomb (limit: DOCQA_MAX_INFLATED_MB)",
        )


class _MemberStream(io.RawIOBase):
    """Inflates one member piece by piece; every byte counts against the archive's budget."""

    def __init__(self, archive: BoundedArchive, info: zipfile.ZipInfo, stored: memoryview) -> None:
        super().__init__()
        self._archive = archive
        self._info = info
        self._stored = stored
        self._offset = 0  # into the stored bytes
        self._inflater = zlib.decompressobj(-15) if info.compress_type else None
        self._pending = b""  # input the inflater has not taken yet
        self._size = 0
        self._crc = 0
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        piece = self._next(min(len(buffer), _PIECE))
        buffer[: len(piece)] = piece
        return len(piece)

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            pieces = []
            while piece := self._next(_PIECE):
                pieces.append(piece)
            return b"".join(pieces)
        return self._next(min(size, _PIECE)) if size else b""

    def _next(self, limit: int) -> bytes:
        """Up to ``limit`` more inflated bytes; b"" at the (checked) end of the member."""
        if self._done:
            return b""
        piece = self._inflate(max(limit, 1))
        if piece:
            self._count(piece)
        else:
            self._finish()
        return piece

    def _inflate(self, limit: int) -> bytes:
        if self._inflater is None:  # stored
            piece = bytes(self._stored[self._offset : self._offset + limit])
            self._offset += len(piece)
            return piece
        while True:
            if not self._pending and self._offset < len(self._stored):
                self._pending = bytes(self._stored[self._offset : self._offset + _PIECE])
                self._offset += len(self._pending)
            try:
                piece = self._inflater.decompress(self._pending, limit)
            except zlib.error as exc:
                raise self._corrupt(f"cannot inflate ({exc})") from exc
            self._pending = self._inflater.unconsumed_tail
            if piece or self._inflater.eof:
                return piece
            if not self._pending and self._offset >= len(self._stored):
                raise self._corrupt("truncated")

    def _count(self, piece: bytes) -> None:
        self._size += len(piece)
        self._archive.inflated += len(piece)
        if self._size > self._info.file_size:
            raise ParseError(
                self._archive.path,
                f"{self._archive.kind} member {self._info.filename} inflates past its declared "
                f"size of {self._info.file_size} bytes; refused as a possible zip bomb",
            )
        if self._archive.inflated > self._archive.max_inflated:
            raise self._archive._over_budget(self._info.filename)
        self._crc = zlib.crc32(piece, self._crc)

    def _finish(self) -> None:
        self._done = True
        if self._size != self._info.file_size:
            raise self._corrupt(f"{self._size} bytes, {self._info.file_size} declared")
        if self._crc != self._info.CRC:
            raise self._corrupt("bad CRC-32")

    def _corrupt(self, what: str) -> ParseError:
        kind = self._archive.kind
        return ParseError(
            self._archive.path, f"corrupt {kind}: member {self._info.filename}: {what}"
        )


def _check_member_count(data: bytes, path: Path, kind: str) -> None:
    """Refuse an archive of very many members before zipfile builds an object for each."""
    at = data.rfind(_EOCD, max(0, len(data) - 65_557))  # the record is 22 bytes, plus a comment
    if at < 0 or at + 22 > len(data):
        return  # not a zip at all: zipfile says so, with its own words
    (entries,) = struct.unpack_from("<H", data, at + 10)
    if entries == 0xFFFF or entries > MAX_MEMBERS:  # 0xFFFF: a ZIP64 count, at least that many
        raise ParseError(path, f"{kind} archive has too many members (over {MAX_MEMBERS})")
