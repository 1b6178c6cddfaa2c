"""Which script a character is written in: the Unicode ranges docqa means by "Han" and "CJK".

The ranges are character-class bodies (for ``rf"[{HAN}]"``), so a caller can combine them with
other characters in one class (``[^\\W{HAN}]``: a word character that is not Han).

Each named set serves one purpose and they differ on purpose:

- `HAN`: Han ideographs, all of them: 〇 (U+3007, the ideographic zero, a Han numeral),
  Extension A, the unified block, the compatibility ideographs and Extensions B to H on the
  supplementary planes (rare names and place names in real documents). Tokenizing, content
  units, language detection and encoding detection use this set.
- `SPACELESS`: `HAN` plus Japanese kana, the scripts whose *words* are written without spaces,
  so a run of them with no space in it may be cut between any two characters (the chunker
  cuts an over-long sentence that way).
- `WRAPS_WITHOUT_SPACE`: `SPACELESS` plus everything else set between CJK text without a
  space: CJK radicals, CJK punctuation (、。「」), bopomofo, kanbun and stroke marks, vertical
  forms and the full-width forms (，（Ａ１). A line break between two of them is a wrap in the
  source, not a word gap, so the parsers remove it instead of turning it into a space.
- `CMRC_HAN`: ``[\\u4e00-\\u9fa5]``, the definition of "Chinese character" in the official
  CMRC 2018 evaluation script (``cmrc2018_evaluate.py``). It is narrower than `HAN` on purpose:
  the CMRC metric is only comparable with published scores if it segments text exactly as the
  official script does, so nothing but that metric should use it.

>>> has_han("Orbit 部署"), has_han("Orbit"), han_count("𠀋日志 v2")
(True, False, 3)
"""

from __future__ import annotations

import re
from typing import Final

HAN: Final = "\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
KANA: Final = "\u3040-\u30ff"  # hiragana and katakana
SPACELESS: Final = HAN + KANA
WRAPS_WITHOUT_SPACE: Final = (
    SPACELESS
    + "\u2e80-\u2fdf"  # CJK and Kangxi radicals, ideographic description characters
    + "\u3000-\u303f"  # CJK symbols and punctuation
    + "\u3100-\u312f\u3190-\u31ff"  # bopomofo, kanbun, bopomofo extended, strokes, kana ext.
    + "\ufe30-\ufe4f"  # CJK compatibility (vertical) forms
    + "\uff00-\uffef"  # half-width and full-width forms
)
CMRC_HAN: Final = "\u4e00-\u9fa5"  # official CMRC 2018 script only; see the module docstring

HAN_CHAR: Final = re.compile(f"[{HAN}]")


def has_han(text: str) -> bool:
    """Whether ``text`` holds at least one Han character."""
    return HAN_CHAR.search(text) is not None


def han_count(text: str) -> int:
    """The number of Han characters in ``text``."""
    return len(HAN_CHAR.findall(text))
