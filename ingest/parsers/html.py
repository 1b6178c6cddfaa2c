"""HTML (``.html``, ``.htm``): the main text of a page, as blocks in document order.

beautifulsoup4 (MIT) over the lxml parser (BSD) because together they read real-world, broken
HTML the way browsers roughly do, quickly, and give a tree we can walk ourselves.

Boilerplate is removed before walking: scripts, styles, navigation, site headers and footers,
asides, forms, templates, SVG and hidden elements. A ``<header>`` or ``<footer>`` inside
``<main>``/``<article>`` belongs to the content (an article's title) and is kept. The walk
starts at ``<main>``, else a single ``<article>``, else ``<body>``. If that leaves no text at all
(an unclosed ``<nav>`` can swallow a page), the whole page is read, less scripts and styles.

Blocks: h1-h6 are headings (with a heading path, as in Markdown); ``<p>`` and bare text in
containers are paragraphs; a ``<ul>``/``<ol>``/``<dl>`` is one "list" block, an item per line;
``<pre>`` keeps its spacing; a ``<table>`` is one "table" block, a row per line, cells joined by
" | ". Bytes are decoded honouring a BOM, then ``<meta charset>``, then the text detection.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from bs4 import BeautifulSoup
from bs4.element import NavigableString, PreformattedString, Tag

from ingest.parsers._common import BlockBuilder, clean_inline, clean_verbatim, title_or_stem
from ingest.parsers.encoding import decode
from ingest.types import ParsedDocument

logger = logging.getLogger(__name__)

_NEVER_TEXT = ["head", "script", "style", "noscript", "template", "svg", "iframe", "object"]
_DROP = [*_NEVER_TEXT, "nav", "aside", "form"]
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_LISTS = ["ul", "ol", "dl"]
_INLINE = frozenset(
    {
        "a", "abbr", "b", "bdi", "bdo", "big", "cite", "code", "data", "del", "dfn", "em",
        "font", "i", "img", "ins", "kbd", "label", "mark", "nobr", "q", "s", "samp", "small",
        "span", "strike", "strong", "sub", "sup", "time", "tt", "u", "var", "wbr",
    }
)  # fmt: skip
_BLOCKS_IN_TEXT = frozenset(
    {"p", "div", "li", "dt", "dd", "tr", "td", "th", "br", "blockquote", "section"}
)
_DISPLAY_NONE = re.compile(r"display\s*:\s*none", re.IGNORECASE)
_META_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:-]+)", re.I)
_BREAK = "\u2028"  # stands for <br> until whitespace is collapsed


def parse_html(data: bytes, path: Path) -> ParsedDocument:
    declared = _META_CHARSET.search(data[:4096])
    text = decode(data, path, declared.group(1).decode("ascii") if declared else None)
    soup = BeautifulSoup(text, "lxml")
    title_tag = soup.find("title")  # the first not inside an inline <svg>
    while isinstance(title_tag, Tag) and title_tag.find_parent("svg") is not None:
        title_tag = title_tag.find_next("title")
    title = title_tag.get_text() if isinstance(title_tag, Tag) else None
    _drop(soup, _DROP, boilerplate=True)
    body = soup.body or soup
    root = _content_root(soup) or body
    builder = _walk(root)
    if not builder.blocks and root is not body:
        builder = _walk(body)
    if not builder.blocks:  # e.g. an unclosed <nav> swallowed the page: keep all but code
        logger.info("%s: no main text; reading the whole page", path)
        soup = BeautifulSoup(text, "lxml")
        _drop(soup, _NEVER_TEXT, boilerplate=False)
        builder = _walk(soup.body or soup)
    if not clean_inline(title or ""):
        title = next((b.text for b in builder.blocks if b.kind == "heading" and b.level == 1), "")
    return ParsedDocument(title=title_or_stem(title, path), blocks=builder.blocks)


def _drop(soup: BeautifulSoup, names: list[str], *, boilerplate: bool) -> None:
    doomed = list(soup.find_all(names))
    if boilerplate:
        doomed += [
            tag
            for tag in soup.find_all(["header", "footer"])
            if tag.find_parent(["main", "article"]) is None
        ]
        doomed += soup.find_all(_is_hidden)
    for tag in doomed:
        if not tag.decomposed:  # already gone with a dropped ancestor
            tag.decompose()


def _is_hidden(tag: Tag) -> bool:
    return (
        tag.has_attr("hidden")
        or str(tag.get("aria-hidden", "")).lower() == "true"
        or bool(_DISPLAY_NONE.search(str(tag.get("style", ""))))
    )


def _content_root(soup: BeautifulSoup) -> Tag | None:
    main = soup.find("main")
    if isinstance(main, Tag):
        return main
    articles = soup.find_all("article")
    return articles[0] if len(articles) == 1 and isinstance(articles[0], Tag) else None


def _walk(root: Tag) -> BlockBuilder:
    builder = BlockBuilder()
    pending: list[str] = []  # inline text waiting to become a paragraph

    def flush() -> None:
        builder.add(_flow("".join(pending)))
        pending.clear()

    def visit(node: Tag) -> None:
        for child in node.children:
            if isinstance(child, NavigableString):
                if not isinstance(child, PreformattedString):  # comments, CDATA, doctype
                    pending.append(str(child))
                continue
            if not isinstance(child, Tag):
                continue
            name = child.name
            if name in _INLINE:
                pending.append(_inline_text(child))
                continue
            if name == "br":
                pending.append(_BREAK)
                continue
            flush()
            if name in _HEADINGS:
                builder.heading(_inline_text(child), _HEADINGS[name])
            elif name == "p":
                builder.add(_flow(_inline_text(child)))
            elif name in _LISTS:
                builder.add("\n".join(_list_lines(child)), "list")
            elif name == "pre":
                builder.add(clean_verbatim(child.get_text()))
            elif name == "table":
                builder.add(_table_text(child), "table")
            else:
                visit(child)  # a container: div, section, blockquote, figure, ...
                flush()

    visit(root)
    flush()
    return builder


def _inline_text(tag: Tag) -> str:
    """The text under ``tag``, with <br> marked and a space where a nested block starts."""
    parts: list[str] = []
    for node in tag.descendants:
        if isinstance(node, Tag):
            if node.name == "br":
                parts.append(_BREAK)
            elif node.name in _BLOCKS_IN_TEXT:
                parts.append(" ")
        elif isinstance(node, NavigableString) and not isinstance(node, PreformattedString):
            parts.append(str(node))
    return "".join(parts)


def _flow(text: str) -> str:
    """Collapse HTML whitespace; each <br> becomes a line break."""
    lines = (clean_inline(part) for part in text.split(_BREAK))
    return "\n".join(line for line in lines if line)


def _list_lines(lst: Tag) -> list[str]:
    """One line per item; a nested list's items follow their parent item's line."""
    lines: list[str] = []
    for child in lst.children:
        if not isinstance(child, Tag):
            if isinstance(child, NavigableString) and not isinstance(child, PreformattedString):
                lines.append(clean_inline(str(child)))
            continue
        if child.name in _LISTS:
            lines.extend(_list_lines(child))
            continue
        nested = [sub.extract() for sub in child.find_all(_LISTS) if sub.find_parent(_LISTS) is lst]
        lines.append(_flow(_inline_text(child)).replace("\n", " "))
        for sub in nested:
            lines.extend(_list_lines(sub))
    return [line for line in lines if line]


def _table_text(table: Tag) -> str:
    lines: list[str] = []
    caption = table.find("caption")
    if isinstance(caption, Tag) and caption.find_parent("table") is table:
        lines.append(clean_inline(_inline_text(caption)))
    for row in table.find_all("tr"):
        if row.find_parent("table") is not table:
            continue  # a row of a nested table: its text is part of the outer cell
        cells = [
            clean_inline(_inline_text(cell))
            for cell in row.find_all(["td", "th"])
            if cell.find_parent("tr") is row
        ]
        if any(cells):
            lines.append(" | ".join(cells))
    return "\n".join(line for line in lines if line)
