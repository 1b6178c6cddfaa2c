"""HTML (``.html``, ``.htm``): the main text of a page, as blocks in document order.

lxml's HTML parser (BSD; libxml2) reads real-world, broken HTML the way browsers roughly do. We
take its events as a stream (``start``/``data``/``end`` into a target, lxml's SAX interface)
and never build a tree: a tree (BeautifulSoup's took about 170 times the file's size, a 3 MB
page 500 MB) is what made HTML the one parser whose memory was not bounded by the file. Now a
parse holds the page's text and the blocks it makes, and a few open elements. The events are
the ones BeautifulSoup's lxml builder received, so the text is the same.

Boilerplate is dropped: scripts, styles, navigation, site headers and footers, asides, forms,
templates, SVG and hidden elements. A ``<header>`` or ``<footer>`` inside ``<main>``/
``<article>`` belongs to the content (an article's title) and is kept. The text read is that of
the first ``<main>``, else of the only ``<article>``, else of the whole body. If that leaves no
text at all (an unclosed ``<nav>`` can swallow a page), the whole page is read, less scripts and
styles. Deciding that takes a first pass over the events (for ``<main>``, the articles and the
title) and then one or more walks: each pass is a streaming parse of the same text.

Blocks: h1-h6 are headings (with a heading path, as in Markdown); ``<p>`` and bare text in
containers are paragraphs; a ``<ul>``/``<ol>``/``<dl>`` is one "list" block, an item per line
(a nested list's items follow their parent item's line); ``<pre>`` keeps its spacing; a
``<table>`` is one "table" block, its caption, then a row per line, cells joined by " | ", with
its cells (``Block.table``); its first row is the header when it is in ``<thead>`` or all its
cells are ``<th>``. ``colspan``/``rowspan`` are not expanded: a spanning cell is one cell.
Bytes are decoded honouring a BOM, then ``<meta charset>``, then the text detection.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from pathlib import Path

from lxml import etree

from ingest.parsers._common import BlockBuilder, clean_inline, clean_verbatim, title_or_stem
from ingest.parsers.encoding import decode
from ingest.types import ParsedDocument, Table

logger = logging.getLogger(__name__)

_NEVER_TEXT = frozenset(
    {"head", "script", "style", "noscript", "template", "svg", "iframe", "object"}
)
_DROP = _NEVER_TEXT | {"nav", "aside", "form"}
_SITE_CHROME = frozenset({"header", "footer"})  # dropped unless inside <main> or <article>
_CONTENT = frozenset({"main", "article"})
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_LISTS = frozenset({"ul", "ol", "dl"})
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
_RUBY = frozenset({"rt", "rp"})  # annotations: not part of a <pre>'s or the title's text
_NOT_TITLE_TEXT = _RUBY | {"template"}
_BREAK = "\u2028"  # stands for <br> until whitespace is collapsed
_FEED = 1 << 16  # characters handed to the parser at a time

Attributes = Mapping[str, str]


def parse_html(data: bytes, path: Path) -> ParsedDocument:
    declared = _META_CHARSET.search(data[:4096])
    text = decode(data, path, declared.group(1).decode("ascii") if declared else None)
    survey = _Survey()
    _stream(text, survey)
    root = "main" if survey.has_main else "article" if survey.articles == 1 else None
    builder = _walk(text, root, boilerplate=True)
    if not builder.blocks and root is not None:
        builder = _walk(text, None, boilerplate=True)
    if not builder.blocks:  # e.g. an unclosed <nav> swallowed the page: keep all but code
        logger.info("%s: no main text; reading the whole page", path)
        builder = _walk(text, None, boilerplate=False)
    title = survey.title
    if not clean_inline(title or ""):
        title = next((b.text for b in builder.blocks if b.kind == "heading" and b.level == 1), "")
    return ParsedDocument(title=title_or_stem(title, path), blocks=builder.blocks)


def _stream(text: str, target: _Target) -> None:
    """Run lxml's HTML parser over ``text``, piece by piece, sending its events to ``target``."""
    parser = etree.HTMLParser(target=target, recover=True, no_network=True)
    for start in range(0, len(text), _FEED):
        parser.feed(text[start : start + _FEED])
    try:
        parser.close()
    except etree.XMLSyntaxError:  # "no element found": a page of comments or nothing
        target.finish()


def _is_hidden(attrib: Attributes) -> bool:
    return (
        "hidden" in attrib
        or str(attrib.get("aria-hidden", "")).lower() == "true"
        or bool(_DISPLAY_NONE.search(str(attrib.get("style", ""))))
    )


class _Target:
    """Receives lxml's events; knows which elements are dropped (with everything inside)."""

    def __init__(self, *, boilerplate: bool) -> None:
        self.boilerplate = boilerplate
        self._dropped: list[bool] = [False]  # per open element, and the document at the bottom
        self._content_depth = 0  # open <main>/<article> elements, dropped or not

    def start(self, tag: str, attrib: Attributes) -> None:
        dropped = self._dropped[-1] or self._drops(tag, attrib)
        self._dropped.append(dropped)
        if tag in _CONTENT:
            self._content_depth += 1
        self.open(tag, attrib, dropped)

    def end(self, tag: str) -> None:
        if len(self._dropped) > 1:
            self._dropped.pop()
        if tag in _CONTENT:
            self._content_depth -= 1
        self.close_element(tag)

    def _drops(self, tag: str, attrib: Attributes) -> bool:
        if not self.boilerplate:
            return tag in _NEVER_TEXT
        return (
            tag in _DROP or (tag in _SITE_CHROME and self._content_depth == 0) or _is_hidden(attrib)
        )

    def data(self, text: str) -> None:
        if not self._dropped[-1]:
            self.text(text)

    def close(self) -> None:
        self.finish()

    # What a pass does with the events that are not dropped.
    def open(self, tag: str, attrib: Attributes, dropped: bool) -> None: ...

    def close_element(self, tag: str) -> None: ...

    def text(self, text: str) -> None: ...

    def finish(self) -> None: ...


class _Survey(_Target):
    """The first pass: the title, whether a ``<main>`` is left, how many articles are."""

    def __init__(self) -> None:
        super().__init__(boilerplate=True)
        self.title: str | None = None
        self.has_main = False
        self.articles = 0
        self._svg = 0
        self._not_text = 0  # open <template>, <rt>, <rp>: their strings are no title text
        self._title: list[str] | None = None  # the title's text while inside it

    def start(self, tag: str, attrib: Attributes) -> None:
        if tag in _NOT_TITLE_TEXT:
            self._not_text += 1
        if tag == "svg":
            self._svg += 1
        elif tag == "title" and self.title is None and self._title is None and not self._svg:
            self._title = []  # the first title not inside an inline <svg>, dropped or not
        super().start(tag, attrib)

    def open(self, tag: str, attrib: Attributes, dropped: bool) -> None:
        if not dropped:
            self.has_main = self.has_main or tag == "main"
            self.articles += tag == "article"

    def end(self, tag: str) -> None:
        if tag in _NOT_TITLE_TEXT:
            self._not_text = max(0, self._not_text - 1)
        if tag == "svg":
            self._svg = max(0, self._svg - 1)
        elif tag == "title" and self._title is not None:
            self.title, self._title = "".join(self._title), None
        super().end(tag)

    def data(self, text: str) -> None:
        if self._title is not None and not self._not_text:
            self._title.append(text)


# ----------------------------------------------------------------------------- the walk
def _walk(text: str, root: str | None, *, boilerplate: bool) -> BlockBuilder:
    """Blocks of the first ``root`` element left after dropping (None: the whole page)."""
    walker = _Walker(root, boilerplate=boilerplate)
    _stream(text, walker)
    return walker.builder


class _Frame:
    """What an open element does with its content: ``child`` gives the frame of an element
    inside it, ``text`` takes text inside it, ``end`` runs when it closes. By default an
    element inside is part of this one (its text, its children, but not its end)."""

    def child(self, tag: str, dropped: bool) -> _Frame:
        return _SKIP if dropped else _Nested(self)

    def text(self, text: str) -> None:
        pass

    def ruby_text(self, text: str) -> None:
        """Text inside a ruby annotation (<rt>, <rp>): like any other text, except in <pre>."""
        self.text(text)

    def end(self) -> None:
        pass


class _Nested(_Frame):
    """An element inside another whose content is the outer element's (an <em> in a <p>)."""

    def __init__(self, outer: _Frame) -> None:
        self.outer = outer

    def child(self, tag: str, dropped: bool) -> _Frame:
        return self.outer.child(tag, dropped)

    def text(self, text: str) -> None:
        self.outer.text(text)

    def ruby_text(self, text: str) -> None:
        self.outer.ruby_text(text)


class _Skip(_Frame):
    def child(self, tag: str, dropped: bool) -> _Frame:
        return self


_SKIP = _Skip()  # a dropped element, or content that contributes nothing


class _Walker(_Target):
    def __init__(self, root: str | None, *, boilerplate: bool) -> None:
        super().__init__(boilerplate=boilerplate)
        self.builder = BlockBuilder()
        self.pending: list[str] = []  # inline text waiting to become a paragraph
        self._root = root
        self._ruby = 0  # open <rt>/<rp> elements
        self._frames: list[_Frame] = [_Container(self) if root is None else _Outside(self)]

    def flush(self) -> None:
        self.builder.add(_flow("".join(self.pending)))
        self.pending.clear()

    def found_root(self, tag: str) -> bool:
        """True once, for the first root element left (the walk reads that one only)."""
        if tag != self._root:
            return False
        self._root = None
        return True

    def open(self, tag: str, attrib: Attributes, dropped: bool) -> None:
        self._ruby += tag in _RUBY
        self._frames.append(self._frames[-1].child(tag, dropped))

    def close_element(self, tag: str) -> None:
        if tag in _RUBY:
            self._ruby = max(0, self._ruby - 1)
        if len(self._frames) > 1:
            self._frames.pop().end()

    def text(self, text: str) -> None:
        frame = self._frames[-1]
        (frame.ruby_text if self._ruby else frame.text)(text)

    def finish(self) -> None:
        while len(self._frames) > 1:  # unclosed elements at the end of the page
            self._frames.pop().end()
        self.flush()


class _Outside(_Frame):
    """Before the root element (or after it): nothing is read until it starts."""

    def __init__(self, walker: _Walker) -> None:
        self.walker = walker

    def child(self, tag: str, dropped: bool) -> _Frame:
        if dropped:
            return _SKIP
        return _Container(self.walker) if self.walker.found_root(tag) else _Nested(self)


class _Container(_Frame):
    """An element whose children are blocks: div, section, body, the root, ..."""

    def __init__(self, walker: _Walker) -> None:
        self.walker = walker

    def child(self, tag: str, dropped: bool) -> _Frame:
        walker = self.walker
        if dropped:
            return _SKIP
        if tag in _INLINE:
            return _Inline(walker.pending.append)
        if tag == "br":
            walker.pending.append(_BREAK)
            return _SKIP
        walker.flush()
        builder = walker.builder
        if tag in _HEADINGS:
            level = _HEADINGS[tag]
            return _Inline(None, lambda s: builder.heading(s, level))
        if tag == "p":
            return _Inline(None, lambda s: builder.add(_flow(s)))
        if tag in _LISTS:
            return _List(lambda lines: builder.add("\n".join(lines), "list"))
        if tag == "pre":
            return _Pre(lambda s: builder.add(clean_verbatim(s)))
        if tag == "table":
            return _Table(lambda s, cells: builder.add(s, "table", table=cells))
        return _Container(walker)

    def text(self, text: str) -> None:
        self.walker.pending.append(text)

    def end(self) -> None:
        self.walker.flush()


class _Inline(_Frame):
    """Text of an element and everything in it, as :func:`_flow` expects it: <br> marked, a
    space where a nested block starts. Pieces go to ``sink`` as they come, or, with ``done``,
    are joined and handed over at the element's end."""

    def __init__(
        self, sink: Callable[[str], None] | None, done: Callable[[str], object] | None = None
    ) -> None:
        self._parts: list[str] = []
        self._sink = sink or self._parts.append
        self._done = done

    def child(self, tag: str, dropped: bool) -> _Frame:
        if dropped:
            return _SKIP
        if tag == "br":
            self._sink(_BREAK)
        elif tag in _BLOCKS_IN_TEXT:
            self._sink(" ")
        return _Nested(self)

    def text(self, text: str) -> None:
        self._sink(text)

    def end(self) -> None:
        if self._done is not None:
            self._done("".join(self._parts))


class _Pre(_Frame):
    """All the text inside, as written (a <br> adds nothing; ruby annotations are left out)."""

    def __init__(self, done: Callable[[str], object]) -> None:
        self._parts: list[str] = []
        self._done = done

    def ruby_text(self, text: str) -> None:
        pass  # a ruby annotation, even around the <pre>, is not its text

    def text(self, text: str) -> None:
        self._parts.append(text)

    def end(self) -> None:
        self._done("".join(self._parts))


class _List(_Frame):
    """A list: a line per item and per bare text, then the lines of lists nested in an item."""

    def __init__(self, done: Callable[[list[str]], object]) -> None:
        self.lines: list[str] = []
        self._done = done
        self._bare: list[str] = []  # text directly in the list, until the next element

    def child(self, tag: str, dropped: bool) -> _Frame:
        self._end_bare()
        if dropped:
            return _SKIP
        if tag in _LISTS:
            return _List(self.lines.extend)
        return _Item(self)

    def text(self, text: str) -> None:
        self._bare.append(text)

    def _end_bare(self) -> None:
        if self._bare:
            self.lines.append(clean_inline("".join(self._bare)))
            self._bare = []

    def end(self) -> None:
        self._end_bare()
        self._done([line for line in self.lines if line])


class _Item(_Frame):
    """An item of a list (any element in it but a list): one line of its text; lists nested
    in it (at any depth, not inside a deeper list) are listed after that line."""

    def __init__(self, owner: _List) -> None:
        self._owner = owner
        self._parts: list[str] = []
        self._nested: list[list[str]] = []

    def child(self, tag: str, dropped: bool) -> _Frame:
        if dropped:
            return _SKIP
        if tag in _LISTS:
            lines: list[str] = []
            self._nested.append(lines)
            return _List(lines.extend)
        if tag == "br":
            self._parts.append(_BREAK)
        elif tag in _BLOCKS_IN_TEXT:
            self._parts.append(" ")
        return _Nested(self)

    def text(self, text: str) -> None:
        self._parts.append(text)

    def end(self) -> None:
        self._owner.lines.append(_flow("".join(self._parts)).replace("\n", " "))
        for lines in self._nested:
            self._owner.lines.extend(lines)


class _Table(_Frame):
    """A table: its caption, then one line per row of its own (not of a nested table), the
    cells' text joined by " | "; and those rows' cells, for ``Block.table``."""

    def __init__(self, done: Callable[[str, Table | None], object]) -> None:
        self._done = done
        self.caption: str | None = None
        self.rows: list[tuple[tuple[str, ...], bool] | None] = []  # (cells, a header row)

    def child(self, tag: str, dropped: bool) -> _Frame:
        if dropped or tag == "table":
            return _SKIP  # a table outside any cell of this one adds no row to it
        if tag == "caption":
            return self.caption_frame()
        if tag == "tr":
            return _Row(self)
        if tag == "thead":
            return _Head(self)
        return _Nested(self)  # tbody, tfoot, colgroup, ...: their rows are this table's

    def caption_frame(self) -> _Frame:
        """The first caption is the table's; any other is left out."""
        if self.caption is not None:
            return _SKIP
        self.caption = ""
        return _Inline(None, self._set_caption)

    def _set_caption(self, text: str) -> None:
        self.caption = clean_inline(text)

    def end(self) -> None:
        rows = [row for row in self.rows if row is not None]
        caption = self.caption or ""
        lines = [caption, *(" | ".join(cells) for cells, _ in rows)]
        first = 1 if caption else 0
        table = None
        if rows:
            numbers = tuple(range(first, first + len(rows)))
            cells = tuple(cells for cells, _ in rows)
            table = Table(cells, numbers, header=rows[0][1], caption=caption)
        self._done("\n".join(line for line in lines if line), table)


class _Head(_Frame):
    """A ``<thead>``: its rows are header rows of the table."""

    def __init__(self, table: _Table) -> None:
        self._table = table

    def child(self, tag: str, dropped: bool) -> _Frame:
        if tag == "tr" and not dropped:
            return _Row(self._table, head=True)
        return self._table.child(tag, dropped)


class _Row(_Frame):
    def __init__(self, table: _Table, head: bool = False) -> None:
        self._table = table
        self._slot = len(table.rows)  # rows are listed in the order they start
        table.rows.append(None)
        self._head = head
        self._cells: list[tuple[str, bool]] = []  # (text, a <th>)

    def child(self, tag: str, dropped: bool) -> _Frame:
        if dropped or tag == "table":
            return _SKIP
        if tag in ("td", "th"):
            th = tag == "th"
            return _Inline(None, lambda s: self._cells.append((clean_inline(s), th)))
        if tag == "caption":
            return self._table.caption_frame()
        return _Nested(self)

    def end(self) -> None:
        if any(text for text, _ in self._cells):
            head = self._head or all(th for _, th in self._cells)
            self._table.rows[self._slot] = (tuple(text for text, _ in self._cells), head)


def _flow(text: str) -> str:
    """Collapse HTML whitespace; each <br> becomes a line break."""
    lines = (clean_inline(part) for part in text.split(_BREAK))
    return "\n".join(line for line in lines if line)
