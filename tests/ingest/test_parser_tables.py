"""Every parser that meets a table keeps it as a "table" block and gives its cells, row by row,
with a header row when the format shows one (``Block.table``)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from docx import Document
from docx.oxml import OxmlElement
from docx.oxml.ns import qn

from ingest.parsers import parse
from ingest.parsers.docx import parse_docx
from ingest.parsers.html import parse_html
from ingest.parsers.markdown import parse_markdown
from ingest.parsers.pdf import parse_pdf
from ingest.types import Block, ParsedDocument, Table
from tests.ingest.generated import pdf_pages

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
LIMIT = 10 * 1024 * 1024


def tables(doc: ParsedDocument) -> list[Block]:
    found = [b for b in doc.blocks if b.kind == "table"]
    for block in found:  # the cells are the text's: row k on line lines[k]
        assert block.table is not None
        text_lines = block.text.split("\n")
        for row, line in zip(block.table.rows, block.table.lines, strict=True):
            shown = text_lines[line].replace("\\|", "|")  # Markdown escapes a | in a cell
            assert all(cell in shown for cell in row), (row, shown)
    return found


def cells(block: Block) -> Table:
    assert block.table is not None
    return block.table


# ------------------------------------------------------------------------------ Markdown
def test_markdown_sample_table_keeps_its_header_and_rows() -> None:
    [block] = tables(parse(EXAMPLES / "orbit-runbook.md", LIMIT))
    table = cells(block)
    assert block.heading_path == ("Orbit Runbook", "Components and owners")
    assert table.header and table.columns == ("Component", "Owner", "Port", "Purpose")
    assert table.lines == (0, 2, 3, 4, 5)  # line 1 is the |---| rule
    scheduler = (
        "orbit-scheduler",
        "Daniel Ferreira",
        "8450",
        "Orders deploy jobs and enforces limits",
    )
    assert scheduler in table.body
    assert "| orbit-scheduler | Daniel Ferreira | 8450 |" in block.text  # the text as written


def test_markdown_tables_with_and_without_a_header_row() -> None:
    source = (
        "# 权限\n\n| 系统 | 负责人 |\n|:--|--:|\n| Grafana 监控 | 王强 |\n| a \\| b | `x` |\n\n"
        "Between.\n\n| no | header |\n| just | rows |\n"
    )
    with_header, without = tables(parse_markdown(source.encode(), Path("t.md")))
    assert cells(with_header).columns == ("系统", "负责人")
    assert cells(with_header).body == (("Grafana 监控", "王强"), ("a | b", "`x`"))
    assert not cells(without).header
    assert cells(without).rows == (("no", "header"), ("just", "rows"))


# ---------------------------------------------------------------------------------- HTML
def test_html_table_header_from_thead_or_th_and_caption() -> None:
    page = """<html><body><main><h1>Orbit</h1>
    <table><caption>Component owners</caption>
      <thead><tr><td>Component</td><td>Owner</td></tr></thead>
      <tbody><tr><th>orbit-api</th><td>Priya Raman</td></tr><tr><td></td><td></td></tr>
      <tr><td>orbit-scheduler</td><td>Daniel Ferreira</td></tr></tbody></table>
    <table><tr><th>系统</th><th>负责人</th></tr><tr><td>VPN</td><td>陈静</td></tr></table>
    <table><tr><th>orbit-ui</th><td>Hannah Okafor</td></tr><tr><td>a</td><td>b</td></tr></table>
    </main></body></html>"""
    thead, th, no_header = tables(parse_html(page.encode(), Path("t.html")))
    assert thead.text.split("\n")[0] == "Component owners"
    rows = (
        ("Component", "Owner"),
        ("orbit-api", "Priya Raman"),
        ("orbit-scheduler", "Daniel Ferreira"),
    )
    assert cells(thead) == Table(rows, (1, 2, 3), header=True, caption="Component owners")
    assert cells(th).columns == ("系统", "负责人") and cells(th).body == (("VPN", "陈静"),)
    assert not cells(no_header).header  # a <th> that names a row is no header row


# ---------------------------------------------------------------------------------- DOCX
def test_docx_sample_chinese_table() -> None:
    doc = parse(EXAMPLES / "onboarding.zh.docx", LIMIT)
    [block] = tables(doc)
    table = cells(block)
    assert block.heading_path[-1] == "系统权限"
    assert table.header and table.columns == ("系统", "负责人", "申请方式")
    assert ("Grafana 监控", "王强", "首次登录时自动开通只读权限") in table.body
    assert table.lines == tuple(range(len(table.rows)))


def _docx(build: list[list[str]], *, mark: str | None = None, merge: bool = False) -> bytes:
    """A Word file with one table; ``mark``: the first row's ``w:tblHeader`` value ("" for
    the bare element, None for none)."""
    document = Document()
    document.add_heading("Owners", level=1)
    table = document.add_table(rows=len(build), cols=len(build[0]))
    for r, row in enumerate(build):
        for c, text in enumerate(row):
            table.cell(r, c).text = text
    if merge:  # row 1: the last two cells become one spanning cell
        table.cell(1, 1).merge(table.cell(1, 2)).text = build[1][1]
    if mark is not None:
        element = OxmlElement("w:tblHeader")
        if mark:
            element.set(qn("w:val"), mark)
        table.rows[0]._tr.get_or_add_trPr().append(element)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def test_docx_first_row_is_the_header_marked_or_not_and_merged_cells_keep_their_column() -> None:
    rows = [
        ["组件", "负责人", "端口"],
        ["orbit-api", "Priya Raman", ""],
        ["orbit-ui", "Hannah", "3000"],
    ]
    [block] = tables(parse_docx(_docx(rows, merge=True), Path("t.docx"), LIMIT))
    table = cells(block)
    assert table.header and table.columns == ("组件", "负责人", "端口")
    assert table.body == (("orbit-api", "Priya Raman", ""), ("orbit-ui", "Hannah", "3000"))
    assert block.text.split("\n")[1] == "orbit-api | Priya Raman"  # a spanning cell once


@pytest.mark.parametrize(
    ("mark", "header"), [(None, False), ("", True), ("1", True), ("false", False)]
)
def test_docx_a_single_row_is_a_header_only_when_marked(mark: str | None, header: bool) -> None:
    [block] = tables(parse_docx(_docx([["VPN", "陈静"]], mark=mark), Path("a.docx"), LIMIT))
    assert cells(block).header is header
    assert cells(block).rows == (("VPN", "陈静"),)


# ----------------------------------------------------------------------------------- PDF
def _cells_drawn_one_by_one(rows: list[tuple[str, ...]], top: int = 690) -> list[str]:
    ops = []
    for k, row in enumerate(rows):
        for x, text in zip((72, 220, 380), row, strict=False):
            ops.append(f"BT /F1 11 Tf {x} {top - 16 * k} Td ({text}) Tj ET")
    return ops


def test_pdf_table_drawn_cell_by_cell_is_found_with_its_rows() -> None:
    rows = [
        ("Component", "Owner", "Port"),
        ("orbit-api", "Priya Raman", "8443"),
        ("orbit-scheduler", "Daniel Ferreira", "8450"),
    ]
    ops = [
        "BT /F1 11 Tf 72 720 Td (Component owners are listed below.) Tj ET",
        *_cells_drawn_one_by_one(rows),
        "BT /F1 11 Tf 220 642 Td (and schedules) Tj ET",  # a wrapped cell: the row above's
        "BT /F1 11 Tf 72 610 Td (All components expose metrics on port 9102.) Tj ET",
    ]
    doc = parse_pdf(pdf_pages(["\n".join(ops).encode()]), Path("t.pdf"))
    [block] = tables(doc)
    assert block.page == 1
    assert cells(block) == Table(
        (*rows[:2], ("orbit-scheduler", "Daniel Ferreira and schedules", "8450")),
        (0, 1, 2),
        header=True,
    )
    assert block.text.split("\n")[0] == "Component | Owner | Port"
    assert [b.kind for b in doc.blocks] == ["paragraph", "table", "paragraph"]


def test_pdf_only_aligned_cells_make_a_table_not_lists_or_font_changes() -> None:
    ops = [
        "BT /F1 11 Tf 72 720 Td (Plain start ) Tj /F1 11 Tf (bold middle) Tj ( end.) Tj ET",
        "BT /F1 11 Tf 72 706 Td (Plain start ) Tj /F1 11 Tf (bold middle) Tj ( end.) Tj ET",
        "BT /F1 11 Tf 72 680 Td (1.) Tj ET BT /F1 11 Tf 90 680 Td (First item) Tj ET",
        "BT /F1 11 Tf 72 666 Td (2.) Tj ET BT /F1 11 Tf 90 666 Td (Second item) Tj ET",
        # Known limit: cells moved to with Td inside one text object come as one piece.
        "BT /F1 11 Tf 72 640 Td (cell one) Tj 150 0 Td (cell two) Tj ET",
        "BT /F1 11 Tf 72 626 Td (r2 one) Tj 150 0 Td (r2 two) Tj ET",
        *_cells_drawn_one_by_one([("System", "Owner"), ("VPN", "Chen Jing")], top=580),
    ]
    doc = parse_pdf(pdf_pages(["\n".join(ops).encode()]), Path("t.pdf"))
    [block] = tables(doc)
    assert cells(block).rows == (("System", "Owner"), ("VPN", "Chen Jing"))
    assert "First item" in doc.text and "First item" not in block.text
    assert "cell two" not in block.text and "bold middle" not in block.text
    assert tables(parse(EXAMPLES / "security-policy.pdf", LIMIT)) == []  # the sample has none
