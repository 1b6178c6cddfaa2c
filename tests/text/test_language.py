"""The one language rule: Han characters at least half of the words make a question Chinese."""

from __future__ import annotations

import pytest

from text.language import detect_language


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        # An English question quoting a Chinese term is answered in English (2 Han, 3 Latin).
        ("What does 部署 mean?", "en"),
        # A Chinese question naming an English product stays Chinese (8 Han, 1 Latin).
        ("谁负责 Grafana 监控的权限？", "zh"),
        ("Orbit 的部署日志保留多久？", "zh"),
        ("公司食堂每餐补贴多少钱？", "zh"),
        ("How often do API keys rotate?", "en"),
        # A tie goes to Chinese: one Han character against one Latin word.
        ("部 API", "zh"),
        ("部 API key", "en"),
        # Full-width Latin letters are Latin words after NFKC.
        ("ＡＰＩ ＫＥＹ 部", "en"),
        ("Ｇｒａｆａｎａ 监控", "zh"),
        # Extension B characters are Han.
        ("\U0002000b\U0002000b", "zh"),
        # Digits count as Latin words; no Han at all is English.
        ("2024 年", "zh"),
        ("2024 10 年", "en"),
        ("12345", "en"),
        ("", "en"),
        ("？！。", "en"),
    ],
)
def test_detect_language(text: str, lang: str) -> None:
    assert detect_language(text) == lang


def test_what_does_bushu_mean_is_english() -> None:
    """The sentence on which the service and the evaluation used to disagree."""
    assert detect_language("What does 部署 mean?") == "en"
