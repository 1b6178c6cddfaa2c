"""Structure-aware chunking with a token budget measured by the embedder's own tokenizer.

Design:

- A document is first cut into *sections*: a heading starts one, and so does a page change, so
  every chunk has one exact heading path and one page.
- Inside a section, whole blocks (paragraphs, lists, tables) are packed into chunks up to the
  budget. A block over the budget is cut into sentences (English ``.!?`` and Chinese ``。！？；``
  and line ends); a sentence over the budget is cut between words (whitespace), or between
  characters for Chinese, which has no spaces. A table that fits is never split.
- Consecutive chunks of one section overlap by up to ``overlap_tokens`` of whole sentences, so a
  fact cut at a boundary is still whole in one chunk.
- A chunk's text is exactly ``document.text[start:end]``: its offsets are its provenance.
- Tables the parser gave cells for (``Block.table``) are also *rendered*
  (:mod:`ingest.tables`): each row as a line naming its columns, under the table's caption and
  header row, all under the section's heading path. A chunk holding table rows carries that
  text as ``Chunk.rendered``, which the embedder, BM25 and the prompt read instead of ``text``
  (prose in the chunk stays as written); a chunk without rows has none. The budget is measured
  on what is read: rows by their rendered lines, and a chunk with rows pays once for the
  heading path and once per table for its header. A table too long for one chunk is cut
  between rows, never inside one unless a single row is over the budget (that row is then cut
  like prose, unrendered), and every chunk of it repeats the header row in its rendered text.

Token counts of pieces are summed, a slight over-estimate of the joined text's count, so a chunk
never exceeds the budget.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from index.types import CHUNKER_VERSION, Chunk, chunk_id
from ingest import tables
from ingest.types import Block, ParsedDocument
from text.script import SPACELESS
from text.sentences import SENTENCE_END

CountTokens = Callable[[str], int]

# Sentence ends are `text.sentences`' (the extractive answer's sentences are the same).
_SENTENCE_END = SENTENCE_END
_WORD_GAP = re.compile(r"\s+")
# Han and kana words are written without spaces: such a sentence may be cut between characters.
_CJK = re.compile(f"[{SPACELESS}]")


@dataclass(frozen=True, eq=False)  # compared by identity: two tables may look alike
class _TableHead:
    """What a chunk holding rows of one table renders once above them: caption, header row."""

    lines: tuple[str, ...]
    tokens: int


@dataclass(frozen=True)
class _Piece:
    start: int
    end: int
    tokens: int  # of what is read: the rendered rows for a table's piece
    block_start: bool  # the piece begins a block (a natural place to start a chunk)
    heading: bool = False  # a heading block (the heading path stands for it in rendered text)
    table: _TableHead | None = None  # set on a piece of a table's rows
    rows: tuple[str, ...] = ()  # those rows, rendered


@dataclass(frozen=True)
class ChunkerConfig:
    max_tokens: int = 200
    overlap_tokens: int = 32

    def __post_init__(self) -> None:
        if self.max_tokens < 16:
            raise ValueError("max_tokens must be at least 16")
        if not 0 <= self.overlap_tokens < self.max_tokens // 2:
            raise ValueError("overlap_tokens must be in [0, max_tokens / 2)")


class Chunker:
    version = CHUNKER_VERSION

    def __init__(self, count_tokens: CountTokens, config: ChunkerConfig | None = None) -> None:
        self.count_tokens = count_tokens
        self.config = config or ChunkerConfig()

    def chunk(self, doc: ParsedDocument, doc_id: str, source: str) -> list[Chunk]:
        text = doc.text
        chunks: list[Chunk] = []
        for blocks, offsets in _sections(doc):
            first = _provenance(blocks)
            path = " > ".join(first.heading_path)
            path_tokens = self.count_tokens(path) if path else 0
            pieces = [
                p
                for b, (s, e) in zip(blocks, offsets, strict=True)
                for p in self._pieces(b, text, s, e, path_tokens)
            ]
            for run in self._pack(pieces, path_tokens):
                start, end = run[0].start, run[-1].end
                body = text[start:end]
                if not body.strip():
                    continue
                index = len(chunks)
                rendered, row_lines = _render(text, run, path) or (None, ())
                chunks.append(
                    Chunk(
                        id=chunk_id(doc_id, body, index, self.version, rendered),
                        text=body,
                        doc_id=doc_id,
                        source=source,
                        title=doc.title,
                        chunk_index=index,
                        start=start,
                        end=end,
                        page=first.page,
                        heading_path=first.heading_path,
                        rendered=rendered,
                        row_lines=row_lines,
                    )
                )
        return chunks

    # ------------------------------------------------------------------------------ packing
    def _pack(self, pieces: list[_Piece], path_tokens: int) -> Iterator[list[_Piece]]:
        budget, overlap = self.config.max_tokens, self.config.overlap_tokens
        i = 0
        while i < len(pieces):
            used, j = 0, i
            heads: list[_TableHead] = []  # tables with rows in this chunk (their header paid)
            while j < len(pieces):
                piece = pieces[j]
                cost = piece.tokens
                if piece.table is not None and not any(piece.table is h for h in heads):
                    cost += piece.table.tokens + (0 if heads else path_tokens)
                if j > i and used + cost > budget:
                    break
                used += cost
                if piece.table is not None:
                    heads.append(piece.table)
                j += 1
            yield pieces[i:j]
            if j >= len(pieces):
                return
            # Next chunk starts a few sentences back, unless the next piece begins a block.
            back, carried = j, 0
            if not pieces[j].block_start:
                while (
                    back - 1 > i
                    and pieces[back - 1].table is None
                    and carried + pieces[back - 1].tokens <= overlap
                ):
                    back -= 1
                    carried += pieces[back].tokens
            i = back

    def _pieces(
        self, block: Block, text: str, start: int, end: int, path_tokens: int
    ) -> list[_Piece]:
        if block.table is not None:
            found = self._table_pieces(block, text, start, end, path_tokens)
            if found is not None:
                return found
        tokens = self.count_tokens(text[start:end])
        if tokens <= self.config.max_tokens:
            return [_Piece(start, end, tokens, True, heading=block.kind == "heading")]
        return self._prose_pieces(text, start, end)

    def _table_pieces(
        self, block: Block, text: str, start: int, end: int, path_tokens: int
    ) -> list[_Piece] | None:
        """A table's rows, rendered: one piece if the table fits, else a piece per row (a row
        over the budget is cut like prose). None when the table cannot be rendered here."""
        table = block.table
        if table is None or (table.lines and table.lines[-1] > block.text.count("\n")):
            return None  # no cells, or cells that do not match the text (a parser's bug)
        lines = tables.intro(table)
        head = _TableHead(lines, self.count_tokens("\n".join(lines)) if lines else 0)
        room = self.config.max_tokens - head.tokens - path_tokens
        if room <= 0:
            return None  # a header too long to repeat: the table is read as written
        rows = tables.rendered_rows(table)
        counts = [self.count_tokens(row) for row in rows]
        if sum(counts) <= room:
            return [_Piece(start, end, sum(counts), True, table=head, rows=tuple(rows))]
        pieces: list[_Piece] = []
        for (s, e), row, n in zip(tables.row_spans(block.text, table), rows, counts, strict=True):
            if n <= room:
                pieces.append(_Piece(start + s, start + e, n, True, table=head, rows=(row,)))
            else:
                pieces.extend(self._prose_pieces(text, start + s, start + e))
        return pieces

    def _prose_pieces(self, text: str, start: int, end: int) -> list[_Piece]:
        """A block over the budget, cut into sentences, and sentences over it into words."""
        pieces: list[_Piece] = []
        for s, e in _split(text, start, end, _SENTENCE_END):
            n = self.count_tokens(text[s:e])
            if n <= self.config.max_tokens:
                pieces.append(_Piece(s, e, n, not pieces))
            else:
                for ws, we in self._split_words(text, s, e):
                    pieces.append(_Piece(ws, we, self.count_tokens(text[ws:we]), not pieces))
        return pieces

    def _split_words(self, text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
        """Cut an over-long sentence into budget-sized runs of words (or CJK characters)."""
        units = list(_split(text, start, end, _WORD_GAP))
        if len(units) == 1 and _CJK.search(text[start:end]):
            units = [(k, k + 1) for k in range(start, end)]
        run_start, prev_end, used = units[0][0], units[0][1], 0
        for s, e in units:
            n = self.count_tokens(text[s:e])
            if used and used + n > self.config.max_tokens:
                yield run_start, prev_end
                run_start, used = s, 0
            used += n
            prev_end = e
        yield run_start, prev_end


def _split(text: str, start: int, end: int, pattern: re.Pattern[str]) -> Iterator[tuple[int, int]]:
    """Spans of ``text[start:end]`` between matches of ``pattern``, trimmed of whitespace."""
    pos = start
    for match in pattern.finditer(text, start, end):
        if match.start() > pos:
            yield from _trimmed(text, pos, match.start())
        pos = max(pos, match.end())
    if pos < end:
        yield from _trimmed(text, pos, end)


def _trimmed(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start < end:
        yield start, end


def _sections(doc: ParsedDocument) -> Iterator[tuple[list[Block], list[tuple[int, int]]]]:
    """Runs of blocks sharing one heading path and page.

    A heading opens a new run; headings with no text of their own before the next heading (a
    chapter title right above a section title) stay with the run that follows them.
    """
    blocks: list[Block] = []
    offsets: list[tuple[int, int]] = []
    for block, span in zip(doc.blocks, doc.block_offsets(), strict=True):
        has_body = any(b.kind != "heading" for b in blocks)
        if has_body:
            last = blocks[-1]
            if block.kind == "heading" or (block.page, block.heading_path) != (
                last.page,
                last.heading_path,
            ):
                yield blocks, offsets
                blocks, offsets = [], []
        blocks.append(block)
        offsets.append(span)
    if blocks:
        yield blocks, offsets


def _provenance(blocks: list[Block]) -> Block:
    """The block whose page and heading path a section's chunks carry: its first body block."""
    return next((b for b in blocks if b.kind != "heading"), blocks[0])


def _render(
    text: str, run: Sequence[_Piece], path: str
) -> tuple[str, tuple[tuple[int, int], ...]] | None:
    """What the indexes and the prompt read of a chunk holding table rows: the heading path,
    then each table's caption, header row and rendered rows, and the prose between as written
    (headings left out: the path names them), parts apart by a blank line; and the ranges of
    its lines that are rows. None for a chunk without rows."""
    if all(p.table is None for p in run):
        return None
    lines: list[str] = [path] if path else []
    row_lines: list[tuple[int, int]] = []
    heads: list[_TableHead] = []  # each table's caption and header go once (the budget's rule)
    for head, group in itertools.groupby(run, key=lambda p: p.table):
        pieces = list(group)
        rows: list[str] = []
        if head is None:
            prose = [p for p in pieces if not p.heading]
            part = text[prose[0].start : prose[-1].end].split("\n") if prose else []
        else:
            part = [] if any(head is h for h in heads) else list(head.lines)
            heads.append(head)
            rows = [row for p in pieces for row in p.rows]
        if not part and not rows:
            continue
        if len(lines) > (1 if path else 0):
            lines.append("")  # a blank line between parts
        lines.extend(part)
        if rows:
            row_lines.append((len(lines), len(lines) + len(rows)))
            lines.extend(rows)
    return "\n".join(lines), tuple(row_lines)
