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

Token counts of pieces are summed, a slight over-estimate of the joined text's count, so a chunk
never exceeds the budget.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from index.types import CHUNKER_VERSION, Chunk, chunk_id
from ingest.types import Block, ParsedDocument

CountTokens = Callable[[str], int]

# A sentence ends at terminal punctuation (and any closing quotes/brackets) followed by space,
# or right after Chinese terminal punctuation, or at a line end.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+|(?<=[。！？；])[”’」』）)]*\s*|\n+")
_WORD_GAP = re.compile(r"\s+")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


@dataclass(frozen=True)
class _Piece:
    start: int
    end: int
    tokens: int
    block_start: bool  # the piece begins a block (a natural place to start a chunk)


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
            for start, end in self._pack(text, blocks, offsets):
                body = text[start:end]
                if not body.strip():
                    continue
                index = len(chunks)
                chunks.append(
                    Chunk(
                        id=chunk_id(doc_id, body, index, self.version),
                        text=body,
                        doc_id=doc_id,
                        source=source,
                        title=doc.title,
                        chunk_index=index,
                        start=start,
                        end=end,
                        page=first.page,
                        heading_path=first.heading_path,
                    )
                )
        return chunks

    # ------------------------------------------------------------------------------ packing
    def _pack(
        self, text: str, blocks: list[Block], offsets: list[tuple[int, int]]
    ) -> Iterator[tuple[int, int]]:
        pieces = [
            p
            for b, (s, e) in zip(blocks, offsets, strict=True)
            for p in self._pieces(b, text, s, e)
        ]
        budget, overlap = self.config.max_tokens, self.config.overlap_tokens
        i = 0
        while i < len(pieces):
            used, j = 0, i
            while j < len(pieces) and (j == i or used + pieces[j].tokens <= budget):
                used += pieces[j].tokens
                j += 1
            yield pieces[i].start, pieces[j - 1].end
            if j >= len(pieces):
                return
            # Next chunk starts a few sentences back, unless the next piece begins a block.
            back, carried = j, 0
            if not pieces[j].block_start:
                while back - 1 > i and carried + pieces[back - 1].tokens <= overlap:
                    back -= 1
                    carried += pieces[back].tokens
            i = back

    def _pieces(self, block: Block, text: str, start: int, end: int) -> list[_Piece]:
        tokens = self.count_tokens(text[start:end])
        if tokens <= self.config.max_tokens:
            return [_Piece(start, end, tokens, True)]
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
