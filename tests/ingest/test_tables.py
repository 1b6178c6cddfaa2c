"""Tables: each row rendered with its column names, a split table's header row in every chunk,
and offsets that still slice the document's own text."""

from __future__ import annotations

import pytest

from index.types import chunk_id
from ingest.chunker import Chunker, ChunkerConfig
from ingest.tables import render_row
from ingest.types import Block, ParsedDocument, Table

COMPONENTS = (
    ("Component", "Owner", "Port"),
    ("orbit-api", "Priya Raman", "8443"),
    ("orbit-scheduler", "Daniel Ferreira", "8450"),
    ("orbit-agent", "Lin Wei", "7070"),
    ("orbit-ui", "Hannah Okafor", "3000"),
)
SYSTEMS = (
    ("系统", "负责人", "申请方式"),
    ("GitLab 代码仓库", "张伟", "在工单系统提交申请，导师审批"),
    ("Orbit 控制台", "李娜", "由导师在控制台中发送邀请"),
    ("Grafana 监控", "王强", "首次登录时自动开通只读权限"),
    ("VPN", "陈静", "联系 IT 服务台，分机 8008"),
)


def words(text: str) -> int:
    """A stand-in tokenizer: one token per word, one per CJK character."""
    return sum(len(w) if any("\u4e00" <= ch <= "\u9fff" for ch in w) else 1 for w in text.split())


def markdown_table(rows: tuple[tuple[str, ...], ...]) -> tuple[str, Table]:
    """A Markdown table's text and its cells, as the Markdown parser gives them."""
    lines = [f"| {' | '.join(rows[0])} |", "|" + "---|" * len(rows[0])]
    lines += [f"| {' | '.join(row)} |" for row in rows[1:]]
    numbers = (0, *range(2, len(rows) + 1))
    return "\n".join(lines), Table(rows, numbers, header=True)


def _doc(title: str, section: str, rows: tuple[tuple[str, ...], ...], after: str) -> ParsedDocument:
    text, table = markdown_table(rows)
    path = (title, section)
    return ParsedDocument(
        title,
        [
            Block(title, "heading", level=1),
            Block(section, "heading", heading_path=(title,), level=2),
            Block(text, "table", heading_path=path, table=table),
            Block(after, heading_path=path),
        ],
    )


def runbook() -> ParsedDocument:
    return _doc("Orbit Runbook", "Components and owners", COMPONENTS, "Metrics are on port 9102.")


def onboarding() -> ParsedDocument:
    return _doc("入职指南", "系统权限", SYSTEMS, "权限开通后请确认。")


def test_a_table_that_fits_is_one_chunk_whose_rows_name_their_columns() -> None:
    doc = runbook()
    [chunk] = Chunker(words, ChunkerConfig(max_tokens=200)).chunk(doc, "d", "runbook.md")
    assert chunk.text == doc.text[chunk.start : chunk.end]  # provenance: the document's text
    assert "| orbit-scheduler | Daniel Ferreira | 8450 |" in chunk.text
    assert chunk.rendered == (
        "Orbit Runbook > Components and owners\n"
        "Component | Owner | Port\n"
        "orbit-api: Owner Priya Raman; Port 8443\n"
        "orbit-scheduler: Owner Daniel Ferreira; Port 8450\n"
        "orbit-agent: Owner Lin Wei; Port 7070\n"
        "orbit-ui: Owner Hannah Okafor; Port 3000\n"
        "\n"
        "Metrics are on port 9102."
    )
    assert chunk.index_text == chunk.rendered
    assert chunk.row_lines == ((2, 6),)  # which lines of the rendering are rows


EN_ROW = "orbit-scheduler: Owner Daniel Ferreira; Port 8450"
ZH_ROW = "Grafana 监控: 负责人 王强; 申请方式 首次登录时自动开通只读权限"


@pytest.mark.parametrize(
    ("doc", "budget", "header", "row"),
    [
        (runbook(), 30, "Component | Owner | Port", EN_ROW),
        (onboarding(), 60, "系统 | 负责人 | 申请方式", ZH_ROW),
    ],
    ids=["en", "zh"],
)
def test_a_split_table_repeats_its_header_row_in_every_chunk(
    doc: ParsedDocument, budget: int, header: str, row: str
) -> None:
    config = ChunkerConfig(max_tokens=budget, overlap_tokens=8)
    chunks = Chunker(words, config).chunk(doc, "d", "s")
    with_rows = [c for c in chunks if c.rendered is not None]
    assert len(with_rows) >= 2  # the table did not fit one chunk
    path = " > ".join(doc.blocks[2].heading_path)
    rendered_rows: list[str] = []
    for c in chunks:
        assert c.text == doc.text[c.start : c.end]
        assert words(c.index_text) <= config.max_tokens
    for c in with_rows:
        assert c.rendered is not None
        first, second, *rows = c.rendered.split("\n\n")[0].split("\n")
        assert (first, second) == (path, header)
        lines = c.rendered.split("\n")
        assert [lines[k] for a, b in c.row_lines for k in range(a, b)] == rows
        rendered_rows += rows
        for line in rows:  # each rendered row is a row of the chunk's own slice of the text
            key = line.split(": ")[0]
            assert f"| {key} |" in c.text
    table = doc.blocks[2].table
    assert table is not None
    assert len(rendered_rows) == len(table.body)  # every row once: no overlap inside a table
    assert row in rendered_rows
    assert f"| {header.split(' | ')[0]} |" not in with_rows[1].text  # the text is not copied


def test_a_row_over_the_budget_is_cut_like_prose_and_the_budget_holds() -> None:
    long_row = ("orbit-long", "Owner", " ".join(f"word{i}." for i in range(60)))
    rows = (*COMPONENTS[:2], long_row, *COMPONENTS[2:])
    doc = _doc("Orbit Runbook", "Components", rows, "After.")
    chunks = Chunker(words, ChunkerConfig(max_tokens=30, overlap_tokens=4)).chunk(doc, "d", "s")
    for c in chunks:
        assert c.text == doc.text[c.start : c.end]
        assert words(c.index_text) <= 30
    assert any("word59." in c.text for c in chunks)
    rendered = "\n".join(c.rendered or "" for c in chunks)
    assert "orbit-scheduler: Owner Daniel Ferreira; Port 8450" in rendered


def test_a_table_without_a_header_row_renders_its_cells_joined() -> None:
    text = "orbit-api | Priya Raman\nVPN | 陈静"
    table = Table((("orbit-api", "Priya Raman"), ("VPN", "陈静")), (0, 1))
    doc = ParsedDocument("t", [Block(text, "table", heading_path=("Owners",), table=table)])
    [chunk] = Chunker(words).chunk(doc, "d", "s")
    assert chunk.rendered == "Owners\norbit-api; Priya Raman\nVPN; 陈静"


def test_chunks_without_a_table_keep_their_text_and_id() -> None:
    doc = ParsedDocument(
        "t", [Block("| a | b |\n| 1 | 2 |", "table"), Block("Plain words.", heading_path=("H",))]
    )  # a table block its parser gave no cells for is read as written
    chunks = Chunker(words).chunk(doc, "d", "s")
    assert [c.rendered for c in chunks] == [None, None]
    assert [c.index_text for c in chunks] == [c.text for c in chunks]
    assert chunks[0].id == chunk_id("d", chunks[0].text, 0)


def test_the_id_covers_the_rendered_text() -> None:
    """Same document text, cells read with or without a header: other vectors, other ids."""
    text, table = markdown_table(COMPONENTS)
    no_header = Table(table.rows, table.lines, header=False)
    ids = [
        Chunker(words).chunk(ParsedDocument("t", [Block(text, "table", table=t)]), "d", "s")[0].id
        for t in (table, no_header)
    ]
    assert ids[0] != ids[1]


@pytest.mark.parametrize(
    ("row", "columns", "line"),
    [
        (("orbit-api", "Priya Raman", "8443"), ("Component", "Owner", "Port"),
         "orbit-api: Owner Priya Raman; Port 8443"),
        (("orbit-api", "", "8443"), ("Component", "Owner", "Port"), "orbit-api: Port 8443"),
        (("", "Priya Raman"), ("Component", "Owner"), "Owner Priya Raman"),
        (("a", "b", "extra"), ("K", "V"), "a: V b; extra"),
        (("a",), ("K", "V"), "a"),
        (("VPN", "陈静", ""), None, "VPN; 陈静"),
        (("Grafana 监控", "王强"), ("系统", "负责人"), "Grafana 监控: 负责人 王强"),
    ],
)  # fmt: skip
def test_render_row(row: tuple[str, ...], columns: tuple[str, ...] | None, line: str) -> None:
    assert render_row(row, columns) == line


def test_a_table_needs_a_line_per_row() -> None:
    with pytest.raises(ValueError, match="line number per row"):
        Table((("a",), ("b",)), (0,))
