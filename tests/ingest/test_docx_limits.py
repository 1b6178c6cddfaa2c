"""DOCX within bounds: inflated bytes are counted as they come, styles are looked up once."""

from __future__ import annotations

import io
import struct
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from ingest.parsers import docx as docx_parser
from ingest.parsers import parse
from ingest.parsers.errors import ParseError
from tests.ingest.generated import template_member, with_document_xml

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
MB = 1024 * 1024


def _document(body: str) -> bytes:
    return f'<w:document xmlns:w="{W}"><w:body>{body}</w:body></w:document>'.encode()


def _paragraph(text: str, style: str | None = None) -> str:
    props = f'<w:pPr><w:pStyle w:val="{style}"/></w:pPr>' if style else ""
    return f"<w:p>{props}<w:r><w:t>{text}</w:t></w:r></w:p>"


def _declare_size(data: bytes, name: str, size: int) -> bytes:
    """The archive with member ``name``'s uncompressed size rewritten (local header and central
    directory) to ``size``, its content left as it is: a zip bomb that lies."""
    out = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        struct.pack_into("<I", out, archive.getinfo(name).header_offset + 22, size)
    end = data.rindex(b"PK\x05\x06")
    count, _, entry = struct.unpack_from("<HII", data, end + 10)
    for _ in range(count):
        name_length, extra_length, comment_length = struct.unpack_from("<HHH", data, entry + 28)
        if data[entry + 46 : entry + 46 + name_length] == name.encode():
            struct.pack_into("<I", out, entry + 24, size)
        entry += 46 + name_length + extra_length + comment_length
    return bytes(out)


def _parse_peak(path: Path, max_inflated: int) -> tuple[str | None, int]:
    """(refusal reason or None, peak bytes allocated by Python while parsing)."""
    tracemalloc.start()
    try:
        parse(path, 50 * MB, max_inflated)
        reason = None
    except ParseError as exc:
        reason = exc.reason
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return reason, peak


def test_a_member_that_lies_about_its_size_is_stopped_as_it_inflates(tmp_path: Path) -> None:
    spaces = " " * (64 * MB)  # deflates to about 64 KB
    honest = with_document_xml(_document(_paragraph("Hello") + f"<w:p>{spaces}</w:p>"))
    bomb = tmp_path / "bomb.docx"
    bomb.write_bytes(_declare_size(honest, "word/document.xml", 1000))
    assert bomb.stat().st_size < MB
    reason, peak = _parse_peak(bomb, max_inflated=1024 * MB)  # the budget would allow it all
    assert peak < 4 * MB  # it stopped at the lie: 64 MB were never held
    assert reason is not None and "inflates past its declared size" in reason


def test_an_archive_over_the_inflated_budget_is_refused(tmp_path: Path) -> None:
    spaces = " " * (24 * MB)
    path = tmp_path / "big.docx"
    path.write_bytes(with_document_xml(_document(f"<w:p>{spaces}</w:p>")))
    reason, peak = _parse_peak(path, max_inflated=8 * MB)
    assert peak < 4 * MB
    assert reason is not None and "DOCQA_MAX_INFLATED_MB" in reason and "8 MB" in reason


def test_members_the_text_does_not_need_are_never_inflated(tmp_path: Path) -> None:
    """An image (or any part but the few XML ones read) costs nothing, whatever its size."""
    picture = bytes(range(256)) * (128 * 1024)  # 32 MB
    rels = template_member("word/_rels/document.xml.rels").replace(
        b"</Relationships>",
        b'<Relationship Id="rIdPic" Target="media/a.png" Type="http://schemas.openxmlformats'
        b'.org/officeDocument/2006/relationships/image"/></Relationships>',
    )
    types = template_member("[Content_Types].xml").replace(
        b"</Types>", b'<Default Extension="png" ContentType="image/png"/></Types>'
    )
    path = tmp_path / "pictures.docx"
    extra = {
        "word/media/a.png": picture,
        "word/_rels/document.xml.rels": rels,
        "[Content_Types].xml": types,
    }
    path.write_bytes(with_document_xml(_document(_paragraph("Caption")), extra=extra))
    reason, peak = _parse_peak(path, max_inflated=4 * MB)
    assert peak < 4 * MB + path.stat().st_size
    assert reason is None


def test_an_archive_of_too_many_members_is_refused(tmp_path: Path) -> None:
    extra = {f"customXml/extra{i}.xml": b"<a/>" for i in range(10_001)}
    path = tmp_path / "many.docx"
    path.write_bytes(with_document_xml(_document(_paragraph("x")), extra=extra))
    with pytest.raises(ParseError, match="too many members"):
        parse(path, 50 * MB)


def test_each_style_is_looked_up_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Styles are resolved per style id, not per paragraph (python-docx's paragraph.style
    scanned every style for each paragraph: 40,000 paragraphs took 39 s)."""
    resolved: list[str | None] = []
    real = docx_parser._Styles.resolve

    def counting(self: docx_parser._Styles, style_id: str | None) -> docx_parser._Style:
        resolved.append(style_id)
        return real(self, style_id)

    monkeypatch.setattr(docx_parser._Styles, "resolve", counting)
    styles = ["Heading1", None, "ListBullet", "NoSuchStyle", None, "Normal"]
    body = "".join(_paragraph(f"line {i}", styles[i % len(styles)]) for i in range(6000))
    path = tmp_path / "long.docx"
    path.write_bytes(with_document_xml(_document(body)))
    doc = parse(path, 50 * MB)
    assert sorted(map(str, resolved)) == sorted(map(str, set(styles)))
    kinds = {b.kind for b in doc.blocks}
    assert kinds == {"heading", "paragraph", "list"}
    assert sum(b.kind == "heading" for b in doc.blocks) == 1000


def test_text_in_insertions_content_controls_and_merged_cells(tmp_path: Path) -> None:
    body = (
        '<w:p><w:r><w:t xml:space="preserve">Kept </w:t></w:r><w:ins w:id="1"><w:r>'
        '<w:t>inserted</w:t></w:r></w:ins><w:del w:id="2"><w:r><w:delText>gone</w:delText>'
        "</w:r></w:del></w:p>"
        "<w:sdt><w:sdtContent>" + _paragraph("In a content control") + "</w:sdtContent></w:sdt>"
        '<w:tbl><w:tr><w:tc><w:tcPr><w:vMerge w:val="restart"/></w:tcPr>'
        + _paragraph("Region")
        + "</w:tc><w:tc>"
        + _paragraph("north")
        + "</w:tc></w:tr><w:tr><w:tc><w:tcPr><w:vMerge/></w:tcPr><w:p/></w:tc><w:tc>"
        + _paragraph("south")
        + "</w:tc></w:tr></w:tbl>"
    )
    path = tmp_path / "edits.docx"
    path.write_bytes(with_document_xml(_document(body)))
    assert [(b.kind, b.text) for b in parse(path, 50 * MB).blocks] == [
        ("paragraph", "Kept inserted"),
        ("paragraph", "In a content control"),
        ("table", "Region | north\nRegion | south"),
    ]
