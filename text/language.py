"""The language of a question, and so of its answer: one rule for the service and the eval.

Rule: count each Han character as one word and each run of ASCII letters or digits (after NFKC,
so full-width Ｇｒａｆａｎａ counts as Latin) as one word; the text is Chinese (``zh``) when it
has Han characters and they are at least as many as the Latin words, otherwise English
(``en``).

Why this rule: it is the language a user expects the answer in. A Chinese question that names an
English product ("谁负责 Grafana 监控的权限？") is Chinese; an English question that quotes a
Chinese term ("What does 部署 mean?") is English, and answering it in Chinese would serve the
user badly. Counting a Han character as a word is fair because one or two characters make a
Chinese word. The evaluation scores an answer with the metric of the language the service
answers in (CMRC 2018 for Chinese, SQuAD for English), so it uses the same rule; text that is
purely Chinese or purely English is classified as before under any sensible rule.

>>> detect_language("谁负责 Grafana 监控的权限？"), detect_language("What does 部署 mean?")
('zh', 'en')
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

from text.script import HAN, han_count

Language = Literal["en", "zh"]

_LATIN_WORD = re.compile(r"[A-Za-z0-9]+")
_WORD = re.compile(rf"[A-Za-z0-9]+|[{HAN}]")


def words(text: str) -> list[str]:
    """The words the language rule counts: runs of ASCII letters or digits, and single Han
    characters (lower-cased, after NFKC).

    >>> words("Orbit 的部署")
    ['orbit', '的', '部', '署']
    """
    return [w.lower() for w in _WORD.findall(unicodedata.normalize("NFKC", text))]


def detect_language(text: str) -> Language:
    """``zh`` when Han characters are at least half of the text's words, else ``en``."""
    normalized = unicodedata.normalize("NFKC", text)
    han = han_count(normalized)
    latin = len(_LATIN_WORD.findall(normalized))
    return "zh" if han and han >= latin else "en"
