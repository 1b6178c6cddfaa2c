"""The streaming HTML walker gives the blocks the tree walk gave (a parity guard for it).

The expected blocks are what the BeautifulSoup-based parser produced for these pages; the
streaming one was also compared with it on thousands of generated, often broken, pages.
"""

from __future__ import annotations

from pathlib import Path

from ingest.parsers import parse

PAGE = """<html><head><title>Runbook</title></head><body>
<nav><a href="/">Home</a></nav>
<main>
<h1>Runbook</h1>
<p>Intro <em>text</em><br>second line</p>
<ul><li>one<ul><li>one.a</li><li>one.b</li></ul> tail</li><li><b>two</b></li>loose text</ul>
<table><caption>Owners</caption><tr><th>Service</th><th>Owner</th></tr>
<tr><td>api<table><tr><td>inner</td></tr></table></td><td>Priya</td></tr></table>
<pre>  code line
    indented<br>same</pre>
<div>bare <span>inline</span><div>block</div>after</div>
<p hidden>secret</p><aside>ad</aside>
</main>
<footer>foot</footer>
</body></html>"""


def _blocks(tmp_path: Path, html: str) -> tuple[str, list[tuple[str, str, tuple[str, ...]]]]:
    path = tmp_path / "page.html"
    path.write_text(html, encoding="utf-8")
    doc = parse(path, 1 << 20)
    return doc.title, [(b.kind, b.text, b.heading_path) for b in doc.blocks]


def test_lists_tables_pre_and_containers(tmp_path: Path) -> None:
    title, blocks = _blocks(tmp_path, PAGE)
    assert title == "Runbook"
    under = ("Runbook",)
    assert blocks == [
        ("heading", "Runbook", ()),
        ("paragraph", "Intro text\nsecond line", under),
        ("list", "one tail\none.a\none.b\ntwo\nloose text", under),
        ("table", "Owners\nService | Owner\napi inner | Priya", under),
        ("paragraph", "code line\n    indentedsame", under),
        ("paragraph", "bare inline", under),
        ("paragraph", "block", under),
        ("paragraph", "after", under),
    ]


def test_a_page_swallowed_by_an_unclosed_nav_is_read_whole(tmp_path: Path) -> None:
    html = "<html><head><title>T</title></head><body><nav>Everything <p>is inside</p><h2>H</h2>"
    assert _blocks(tmp_path, html)[1] == [
        ("paragraph", "Everything", ()),
        ("paragraph", "is inside", ()),
        ("heading", "H", ()),
    ]


def test_several_articles_are_all_read_and_an_svg_title_is_no_title(tmp_path: Path) -> None:
    html = (
        "<body><svg><title>icon</title></svg><article><h1>First</h1><p>one</p></article>"
        "<article><h1>Second</h1><p>two</p></article></body>"
    )
    title, blocks = _blocks(tmp_path, html)
    assert title == "First"
    assert [text for _, text, _ in blocks] == ["First", "one", "Second", "two"]
