"""Generated documents of a given size in every format, for the limits and memory tests.

The text is English-like: pseudo-words drawn with Zipf frequencies from a few thousand, so it
deflates about as well as prose does (about 2.5:1). Pages are structured the way real ones are:
headings, paragraphs, lists, tables, with a few Chinese paragraphs; HTML pages are tag-dense
(navigation, nested elements, inline markup), the case that used about 170 times its size.
"""

from __future__ import annotations

import io
import itertools
import random
import zipfile
import zlib
from collections.abc import Callable
from functools import cache

from docx import Document

_SYLLABLES = [
    "ka", "lo", "mi", "ren", "tas", "vu", "pel", "dor", "an", "is", "tri", "som", "gal", "ex",
    "on", "ber", "nu", "fi", "cal", "mon", "ste", "quo", "ply", "wix", "jad", "ruk", "hem", "sol",
    "bri", "tun", "gor", "fa", "ce", "di", "po", "zu", "yen", "ol", "ark", "eth", "ing", "ous",
    "ment", "ly",
]  # fmt: skip
_CHINESE = (
    "部署回滚服务负责人队列缓存存储备份告警计费搜索请求超时重试分片副本索引预算策略事件发布版本配置"
)
_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


@cache
def _vocabulary() -> tuple[list[str], list[float]]:
    rng = random.Random(0)
    words = sorted({"".join(rng.choices(_SYLLABLES, k=rng.randint(1, 4))) for _ in range(20000)})
    rng.shuffle(words)
    return words, list(itertools.accumulate(1 / rank**0.9 for rank in range(1, len(words) + 1)))


class _Text:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.words, self.cumulative = _vocabulary()

    def sentence(self, n: int = 12) -> str:
        words = self.rng.choices(self.words, cum_weights=self.cumulative, k=n)
        return " ".join(words).capitalize() + "."

    def paragraph(self, sentences: int = 4) -> str:
        if self.rng.random() < 0.08:
            return "".join(self.rng.choices(_CHINESE, k=80)) + "。"
        return " ".join(self.sentence(self.rng.randint(6, 18)) for _ in range(sentences))


def _until(size: int, piece: Callable[[int], str]) -> list[str]:
    parts, total, i = [], 0, 0
    while total < size:
        i += 1
        part = piece(i)
        parts.append(part)
        total += len(part.encode())
    return parts


def text(size: int) -> bytes:
    t = _Text(1)
    return "\n\n".join(_until(size, lambda i: t.paragraph())).encode()


def markdown(size: int) -> bytes:
    t = _Text(2)

    def section(i: int) -> str:
        return (
            f"## Section {i}\n\n{t.paragraph()}\n\n- {t.sentence(6)}\n- {t.sentence(6)}\n"
            f"  - {t.sentence(4)}\n\n| key | value |\n|---|---|\n| {t.sentence(2)} | {i} |\n\n"
            f"```\nrun --step {i}\n```\n\n{t.paragraph(2)}"
        )

    return ("# Generated\n\n" + "\n\n".join(_until(size, section))).encode()


def html(size: int) -> bytes:
    t = _Text(3)

    def section(i: int) -> str:
        words = t.rng.choices(t.words, k=3)
        return (
            f'<section id="s{i}"><h2>Part {i}</h2><p>{t.sentence()} <a href="#r{i}">{words[0]}'
            f'</a> <span class="n">{t.sentence(5)}</span><br>{t.sentence(4)}</p>'
            f"<ul><li>{t.sentence(5)}</li><li><b>{words[1]}</b> {t.sentence(4)}<ul><li>"
            f"{t.sentence(3)}</li></ul></li></ul><table><tr><th>key</th><th>value</th></tr>"
            f"<tr><td>{words[2]}</td><td>{t.sentence(3)}</td></tr></table>"
            f'<div class="a"><div class="b"><span>{t.paragraph(1)}</span></div></div>'
            f'<nav><a href="/">home</a> <a href="/up">up</a></nav></section>'
        )

    body = "".join(_until(size, section))
    return (
        "<!doctype html><html><head><title>Generated</title><style>p{margin:0}</style>"
        f"</head><body><header>site</header><main>{body}</main><footer>foot</footer>"
        "</body></html>"
    ).encode()


def _escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;")


def docx(size: int) -> bytes:
    """A Word file (python-docx's template, so real styles) whose body is generated XML."""
    t = _Text(4)

    def block(i: int) -> str:
        if i % 25 == 1:
            return (
                '<w:p><w:pPr><w:pStyle w:val="Heading1"/></w:pPr>'
                f"<w:r><w:t>Part {i}</w:t></w:r></w:p>"
            )
        if i % 7 == 0:
            return (
                '<w:p><w:pPr><w:pStyle w:val="ListBullet"/></w:pPr><w:r><w:t>'
                f"{_escape(t.sentence(6))}</w:t></w:r></w:p>"
            )
        if i % 31 == 0:
            cells = "".join(
                f"<w:tc><w:p><w:r><w:t>{_escape(t.sentence(2))}</w:t></w:r></w:p></w:tc>"
                for _ in range(3)
            )
            return f"<w:tbl><w:tr>{cells}</w:tr><w:tr>{cells}</w:tr></w:tbl>"
        return (
            f'<w:p><w:r><w:t xml:space="preserve">{_escape(t.paragraph(2))} </w:t></w:r>'
            f"<w:r><w:rPr><w:b/></w:rPr><w:t>{_escape(t.sentence(3))}</w:t></w:r></w:p>"
        )

    body = "".join(_until(int(size * 2.6), block))  # the XML deflates about 2.6:1
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<w:document xmlns:w="{_W}"><w:body>{body}</w:body></w:document>'
    )
    return with_document_xml(xml.encode())


def template_member(name: str) -> bytes:
    """A member of python-docx's blank document, e.g. ``word/_rels/document.xml.rels``."""
    template = io.BytesIO()
    Document().save(template)
    with zipfile.ZipFile(template) as src:
        return src.read(name)


def with_document_xml(xml: bytes, *, extra: dict[str, bytes] | None = None) -> bytes:
    """python-docx's blank document with this ``word/document.xml``; ``extra`` members are
    added, or replace the template's of the same name."""
    template = io.BytesIO()
    Document().save(template)
    members = {"word/document.xml": xml, **(extra or {})}
    out = io.BytesIO()
    with zipfile.ZipFile(template) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, members.pop(info.filename, None) or src.read(info))
        for name, data in members.items():
            dst.writestr(name, data)
    return out.getvalue()


def pdf(size: int) -> bytes:
    """A text PDF: pages of 50 lines in Helvetica, each page's content deflated."""
    t = _Text(5)
    streams: list[bytes] = []
    total = 0
    while total < size:
        lines = [f"BT /F1 11 Tf 72 {760 - 14 * k} Td ({t.sentence(9)}) Tj ET" for k in range(50)]
        streams.append(zlib.compress("\n".join(lines).encode()))
        total += len(streams[-1]) + 200
    return pdf_pages(streams, deflated=True)


def pdf_pages(contents: list[bytes], *, deflated: bool = False) -> bytes:
    """A PDF with a page per content stream, Helvetica as font ``/F1``:
    ``pdf_pages([b"BT /F1 11 Tf 72 720 Td (Hello) Tj ET"])``."""
    objects: dict[int, bytes] = {
        3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    }
    pages: list[int] = []
    number = 10
    for stream in contents:
        flate = b" /Filter /FlateDecode" if deflated else b""
        objects[number] = (
            b"<< /Length %d%s >>\nstream\n" % (len(stream), flate) + stream + b"\nendstream"
        )
        objects[number + 1] = (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % number
        )
        pages.append(number + 1)
        number += 2
    objects[1] = b"<< /Type /Catalog /Pages 2 0 R >>"
    kids = b" ".join(b"%d 0 R" % p for p in pages)
    objects[2] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(pages))
    out = bytearray(b"%PDF-1.4\n")
    offsets: dict[int, int] = {}
    for key in sorted(objects):
        offsets[key] = len(out)
        out += b"%d 0 obj\n" % key + objects[key] + b"\nendobj\n"
    xref, top = len(out), max(objects) + 1
    out += b"xref\n0 %d\n0000000000 65535 f \n" % top
    for key in range(1, top):
        out += (b"%010d 00000 n \n" % offsets[key]) if key in offsets else b"0000000000 65535 f \n"
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (top, xref)
    return bytes(out)


GENERATORS: dict[str, Callable[[int], bytes]] = {
    ".txt": text,
    ".md": markdown,
    ".html": html,
    ".docx": docx,
    ".pdf": pdf,
}
