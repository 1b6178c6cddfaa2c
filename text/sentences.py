"""Where a sentence ends, in English and Chinese: one rule for chunking and extractive answers.

A sentence ends after ``. ! ?`` and any closing quotes or brackets, when whitespace follows (so
"3.4.0" stays whole); right after Chinese ``。！？；`` and any closing quotes or brackets, which
need no space after them; and at a line break. The chunker cuts an over-long block at these
ends and the extractive fallback answers with one of these sentences, so a sentence is the same
thing in both.

>>> split_sentences('版本 3.4.0 发布。他说：“支持蓝绿部署！”He said "done." Next')
['版本 3.4.0 发布。', '他说：“支持蓝绿部署！”', 'He said "done."', 'Next']
"""

from __future__ import annotations

import re
from typing import Final

# A match is the boundary between two sentences. The closing quotes or brackets after the
# terminal punctuation (groups "en" and "zh") belong to the sentence before; the rest of the
# match (whitespace, line breaks) belongs to neither.
SENTENCE_END: Final = re.compile(
    r"(?<=[.!?])(?P<en>[\"')\]]*)\s+|(?<=[。！？；])(?P<zh>[”’」』）)]*)\s*|\n+"
)


def split_sentences(text: str) -> list[str]:
    """Non-empty, stripped sentences of ``text``, closing quotes and brackets kept."""
    pieces, start = [], 0
    for end in SENTENCE_END.finditer(text):
        pieces.append(text[start : max(end.start(), end.end("en"), end.end("zh"))])
        start = end.end()
    pieces.append(text[start:])
    return [s.strip() for s in pieces if s.strip()]
