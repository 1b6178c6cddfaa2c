"""Parsers: the sample corpus in ``examples/`` and generated bad inputs, each with its reason."""

from __future__ import annotations

import io
import os
import pickle
import unicodedata
import zipfile
from pathlib import Path

import pytest
from docx import Document
from pypdf import PdfReader, PdfWriter

from ingest.parsers import SUPPORTED_SUFFIXES, parse
from ingest.parsers.errors import ParseError
from ingest.types import Block, ParsedDocument

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
LIMIT = 10 * 1024 * 1024

SIMPLIFIED = (
    "本文整理了各业务团队在使用部署平台时最常提出的问题。如果这里没有你要找的答案，"
    "请在企业微信群中提问，工作日内平台组会在一小时内响应。每个团队默认最多可以创建二十个服务，"
    "如需更多，请提交配额调整工单，并说明业务原因。"
)
TRADITIONAL = (
    "本文整理了各業務團隊在使用部署平臺時最常提出的問題。如果這裡沒有你要找的答案，"
    "請在企業微信群中提問，工作日內平臺組會在一小時內響應。每個團隊預設最多可以建立二十個服務，"
    "如需更多，請提交配額調整工單，並說明業務原因。"
)


def _parse(path: Path) -> ParsedDocument:
    doc = parse(path, LIMIT)
    _check_invariants(doc)
    return doc


def _check_invariants(doc: ParsedDocument) -> None:
    assert doc.title and doc.blocks
    for block in doc.blocks:
        assert block.text and block.text == block.text.strip()
        assert block.text == unicodedata.normalize("NFC", block.text)
        if not block.text.startswith(("```", "~~~")):  # code keeps its blank lines
            assert "\n\n" not in block.text
        assert (1 <= block.level <= 6) if block.kind == "heading" else block.level == 0
    for block, (start, end) in zip(doc.blocks, doc.block_offsets(), strict=True):
        assert doc.text[start:end] == block.text


def _block(doc: ParsedDocument, needle: str) -> Block:
    return next(b for b in doc.blocks if needle in b.text)


def _reason(path: Path, max_bytes: int = LIMIT) -> str:
    with pytest.raises(ParseError) as caught:
        parse(path, max_bytes)
    assert caught.value.path == str(path)
    assert str(caught.value) == f"{path}: {caught.value.reason}"
    return caught.value.reason


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------------------- the sample corpus
def test_markdown_runbook_headings_tables_and_lists() -> None:
    doc = _parse(EXAMPLES / "orbit-runbook.md")
    assert doc.title == "Orbit Runbook"
    steps = _block(doc, "orbit rollback --service")
    assert steps.kind == "list"
    assert steps.heading_path == ("Orbit Runbook", "Rolling back", "Rollback steps")
    assert steps.text.startswith("1. Announce the rollback")
    table = _block(doc, "Daniel Ferreira")
    assert table.kind == "table"
    assert table.heading_path == ("Orbit Runbook", "Components and owners")
    assert "| orbit-scheduler | Daniel Ferreira | 8450 |" in table.text
    heading = _block(doc, "Rollback steps")
    assert (heading.kind, heading.level) == ("heading", 3)
    assert heading.heading_path == ("Orbit Runbook", "Rolling back")  # its ancestors


def test_markdown_chinese_faq() -> None:
    doc = _parse(EXAMPLES / "orbit-faq.zh.md")
    assert doc.title == "Orbit 常见问题"
    retention = _block(doc, "保留期为 90 天")
    assert retention.heading_path == ("Orbit 常见问题", "数据与日志", "部署日志会保存多久？")


def test_html_keeps_main_text_and_drops_boilerplate() -> None:
    doc = _parse(EXAMPLES / "release-notes.html")
    assert doc.title == "Orbit Release Notes"
    boilerplate = ("9.9 preview", "DOCSITE", "Contact support", "orbit-help@", "nav click")
    for junk in boilerplate:
        assert junk not in doc.text
    improvements = _block(doc, "40% faster")
    assert improvements.kind == "list"
    assert improvements.heading_path == (
        "Orbit Release Notes",
        "Orbit 3.4.0 — released 2024-03-12",
        "Improvements",
    )
    assert improvements.text.split("\n")[1].startswith("The default timeout")
    known = _block(doc, "silently skipped")
    assert known.kind == "paragraph" and known.heading_path[-1] == "Known issues"


def test_pdf_pages_headings_and_chinese_line_joins() -> None:
    doc = _parse(EXAMPLES / "security-policy.pdf")
    assert doc.title == "Orbit Platform Security Policy"
    assert {b.page for b in doc.blocks} == {1, 2, 3}
    assert _block(doc, "API keys rotate every 30 days").page == 2
    assert _block(doc, "break-glass account exists").page == 1
    chinese = _block(doc, "复盘报告不追究个人责任")  # one sentence across a line break, no space
    assert chinese.page == 3
    assert chinese.heading_path[-1] == "10. 事后复盘"
    assert "Orbit Security Policy v2.3 - page" not in doc.text  # running footer dropped
    assert "including contractors" in doc.text  # English lines joined with a space


def test_docx_body_in_document_order_with_table() -> None:
    doc = _parse(EXAMPLES / "onboarding.zh.docx")
    assert doc.title == "Orbit 平台组新员工入职指南"
    table = _block(doc, "王强")
    assert table.kind == "table"
    assert "Grafana 监控 | 王强 | 首次登录时自动开通只读权限" in table.text.split("\n")
    assert table.heading_path == ("Orbit 平台组新员工入职指南", "系统权限")
    i = doc.blocks.index(table)
    assert "下表列出" in doc.blocks[i - 1].text and "权限开通后" in doc.blocks[i + 1].text
    meetings = _block(doc, "站会")
    assert meetings.kind == "list" and len(meetings.text.split("\n")) == 3


def test_dispatch_is_case_insensitive(tmp_path: Path) -> None:
    assert {".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx"} <= SUPPORTED_SUFFIXES
    path = _write(tmp_path / "NOTES.MD", b"Title\n=====\n\nSome text.\n")
    doc = _parse(path)
    assert doc.title == "Title" and doc.blocks[1].heading_path == ("Title",)


# -------------------------------------------------------------------------- format details
def test_markdown_fence_is_one_block_and_hides_headings(tmp_path: Path) -> None:
    md = "# Guide\n\n## Setup\n\n```sh\n# not a heading\n\necho hi\n```\n\nAfter\n---\n\ntext\n"
    doc = _parse(_write(tmp_path / "guide.md", md.encode()))
    assert [b.text for b in doc.blocks if b.kind == "heading"] == ["Guide", "Setup", "After"]
    code = _block(doc, "not a heading")
    assert code.text == "```sh\n# not a heading\n\necho hi\n```"
    assert code.heading_path == ("Guide", "Setup")
    assert _block(doc, "text").heading_path == ("Guide", "After")


def test_html_meta_charset_tables_and_breaks(tmp_path: Path) -> None:
    html = (
        '<html><head><meta charset="gb2312"><title>值班手册</title></head><body>'
        "<div>前言文字<br>第二行</div><table><tr><th>系统</th><th>负责人</th></tr>"
        "<tr><td>监控</td><td>王强</td></tr></table></body></html>"
    )
    doc = _parse(_write(tmp_path / "page.htm", html.encode("gb18030")))
    assert doc.title == "值班手册"
    assert _block(doc, "前言").text == "前言文字\n第二行"
    assert _block(doc, "王强").text == "系统 | 负责人\n监控 | 王强"


def test_html_without_main_drops_site_chrome_but_keeps_article_header(tmp_path: Path) -> None:
    html = (
        "<body><svg><title>icon</title></svg><header>Site banner</header>"
        "<article><header><h1>Post</h1></header>"
        '<p hidden>secret</p><p style="display: none">also secret</p><p>Body text</p>'
        "<aside>advert</aside></article><footer>site footer</footer></body>"
    )
    doc = _parse(_write(tmp_path / "post.html", html.encode()))
    assert doc.title == "Post"
    assert [b.text for b in doc.blocks] == ["Post", "Body text"]
    assert doc.blocks[1].heading_path == ("Post",)


def test_docx_generated_structure(tmp_path: Path) -> None:
    document = Document()
    document.core_properties.title = "Handbook"
    document.add_heading("Intro", level=1)
    document.add_paragraph("Before the table.")
    document.add_heading("Details", level=2)
    table = document.add_table(rows=2, cols=3)
    merged = table.cell(0, 0).merge(table.cell(0, 1))
    merged.text = "Wide header"
    table.cell(0, 2).text = "Owner"
    for i, text in enumerate(("orbit-api", "8443", "Priya")):
        table.cell(1, i).text = text
    document.add_paragraph("first item", style="List Bullet")
    document.add_paragraph("second item", style="List Number")
    document.add_paragraph("After the list.")
    path = tmp_path / "handbook.docx"
    document.save(str(path))
    doc = _parse(path)
    assert doc.title == "Handbook"
    assert [(b.kind, b.text) for b in doc.blocks] == [
        ("heading", "Intro"),
        ("paragraph", "Before the table."),
        ("heading", "Details"),
        ("table", "Wide header | Owner\norbit-api | 8443 | Priya"),
        ("list", "first item\nsecond item"),
        ("paragraph", "After the list."),
    ]
    assert doc.blocks[3].heading_path == ("Intro", "Details")


def test_docx_title_falls_back_to_the_first_heading(tmp_path: Path) -> None:
    document = Document()  # no core-properties title
    document.add_paragraph("Preface.")
    document.add_heading("Getting started", level=1)
    path = tmp_path / "guide.docx"
    document.save(str(path))
    assert _parse(path).title == "Getting started"


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        (SIMPLIFIED, "gb18030"),
        (TRADITIONAL, "big5"),
        ("账号与权限", "gb18030"),  # a short heading: charset-normalizer alone reads Korean
        (SIMPLIFIED + "\nUTF-16 text", "utf-16"),  # Python writes a BOM
        ("UTF-8 with a BOM: café, 中文", "utf-8-sig"),
        ("Zoë’s “quoted” café", "cp1252"),
    ],
)
def test_text_encodings_decode_exactly(tmp_path: Path, text: str, encoding: str) -> None:
    doc = _parse(_write(tmp_path / "note.txt", text.encode(encoding)))
    assert doc.text == text
    assert doc.title == "note"


def test_text_paragraphs_split_on_blank_lines(tmp_path: Path) -> None:
    doc = _parse(_write(tmp_path / "a.txt", b"one  line\r\nsame   para\r\n \r\n\r\nsecond\n"))
    assert [b.text for b in doc.blocks] == ["one line\nsame para", "second"]


# ------------------------------------------------------------------------------ PDF failures
def _encrypted_pdf(user_password: str) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(EXAMPLES / "security-policy.pdf"))
    writer.encrypt(user_password=user_password, owner_password="owner-secret")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_pdf_failures(tmp_path: Path) -> None:
    real = (EXAMPLES / "security-policy.pdf").read_bytes()
    truncated = _write(tmp_path / "truncated.pdf", real[: len(real) // 2])
    assert _reason(truncated).startswith("corrupt PDF: ")
    assert _reason(_write(tmp_path / "fake.pdf", b"just text")).startswith("corrupt PDF: ")
    locked = _write(tmp_path / "locked.pdf", _encrypted_pdf("secret"))
    assert _reason(locked) == "encrypted PDF (password required)"
    blank = PdfWriter()
    blank.add_blank_page(width=200, height=200)
    out = io.BytesIO()
    blank.write(out)
    scanned = _write(tmp_path / "scan.pdf", out.getvalue())
    assert _reason(scanned) == "no extractable text (scanned PDF? OCR is not supported)"


def test_pdf_with_empty_user_password_is_read(tmp_path: Path) -> None:
    doc = _parse(_write(tmp_path / "protected.pdf", _encrypted_pdf("")))
    assert _block(doc, "API keys rotate every 30 days").page == 2


# -------------------------------------------------------------------- other bad inputs
def test_bad_files_have_clear_reasons(tmp_path: Path) -> None:
    binary = bytes(range(256)) * 8
    assert _reason(_write(tmp_path / "image.txt", binary)) == "binary content, not text"
    assert _reason(_write(tmp_path / "empty.txt", b"")) == "empty document"
    assert _reason(_write(tmp_path / "blank.md", b"  \n\t\n  \n")) == "empty document"
    assert _reason(_write(tmp_path / "rules.md", b"---\n\n***\n")) == "empty document"
    big = _write(tmp_path / "big.txt", b"x" * 2000)
    assert _reason(big, max_bytes=1000) == "file is 2000 bytes, over the limit of 1000"
    link = tmp_path / "gone.md"
    link.symlink_to(tmp_path / "missing.md")
    assert _reason(link) == "broken symlink"
    folder = tmp_path / "folder.md"
    folder.mkdir()
    assert _reason(folder).startswith("not a regular file")
    assert _reason(_write(tmp_path / "data.xyz", b"hello")) == "unsupported file type .xyz"
    assert _reason(tmp_path / "absent.txt") == "file not found"


def test_bad_docx_files(tmp_path: Path) -> None:
    noise = _write(tmp_path / "noise.docx", os.urandom(4096))
    assert _reason(noise).startswith("corrupt DOCX: ")
    other = io.BytesIO()
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("hello.txt", "not a Word document")
    assert _reason(_write(tmp_path / "zip.docx", other.getvalue())).startswith("not a DOCX")
    legacy = _write(tmp_path / "old.docx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 512)
    assert "legacy .doc" in _reason(legacy)
    empty = io.BytesIO()
    Document().save(empty)
    assert _reason(_write(tmp_path / "empty.docx", empty.getvalue())) == "empty document"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "secret.md", b"# Secret\n")
    path.chmod(0)
    try:
        assert _reason(path) == "permission denied"
    finally:
        path.chmod(0o600)


def test_permission_error_from_the_os(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same check as above, runnable as root: the OS refusing to open the file."""
    path = _write(tmp_path / "secret.md", b"# Secret\n")

    def deny(self: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", deny)
    assert _reason(path) == "permission denied"


def test_parse_error_is_a_picklable_value_error() -> None:
    error = ParseError(Path("a/b.pdf"), "corrupt PDF: bad xref")
    assert isinstance(error, ValueError)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.path, copy.reason, str(copy)) == ("a/b.pdf", "corrupt PDF: bad xref", str(error))
