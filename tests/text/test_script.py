"""Han detection over every range docqa counts, and the named sets that differ on purpose."""

from __future__ import annotations

import re

import pytest

from text.script import (
    CMRC_HAN,
    HAN_CHAR,
    SPACELESS,
    WRAPS_WITHOUT_SPACE,
    han_count,
    has_han,
)

HAN_SAMPLES = {
    "ideographic zero 〇 (U+3007)": "\u3007",
    "Extension A, first (U+3400)": "\u3400",
    "Extension A, last (U+4DBF)": "\u4dbf",
    "unified, first 一 (U+4E00)": "\u4e00",
    "unified, common 部": "部",
    "unified, last (U+9FFF)": "\u9fff",
    "compatibility 豈 (U+F900)": "\uf900",
    "Extension B, first 𠀀 (U+20000)": "\U00020000",
    "Extension B, 𠀋 (U+2000B)": "\U0002000b",
    "Extension G, first (U+30000)": "\U00030000",
    "Extension H, last (U+3134F)": "\U0003134f",
}
NOT_HAN = {
    "Latin": "A",
    "digit": "9",
    "hiragana": "あ",
    "katakana": "カ",
    "Hangul": "한",
    "ideographic full stop": "。",
    "full-width comma": "，",
    "full-width letter": "Ａ",
    "bopomofo": "ㄅ",
    "before Extension A (U+33FF)": "\u33ff",
    "after Extension H (U+31350)": "\U00031350",
}


@pytest.mark.parametrize("char", HAN_SAMPLES.values(), ids=HAN_SAMPLES.keys())
def test_every_han_range_is_han(char: str) -> None:
    assert has_han(char)
    assert has_han(f"Orbit {char} v2")
    assert han_count(f"{char}{char} x") == 2


@pytest.mark.parametrize("char", NOT_HAN.values(), ids=NOT_HAN.keys())
def test_neighbours_are_not_han(char: str) -> None:
    assert not has_han(char)
    assert han_count(char) == 0


def test_han_count_counts_characters_not_runs() -> None:
    assert han_count("部署日志 keeps 90 天") == 5
    assert han_count("") == 0
    assert HAN_CHAR.sub(" ", "日志log").split() == ["log"]


def test_spaceless_adds_kana_to_han() -> None:
    spaceless = re.compile(f"[{SPACELESS}]")
    assert all(spaceless.match(c) for c in [*HAN_SAMPLES.values(), "あ", "カ"])
    assert not any(spaceless.match(c) for c in ["。", "，", "Ａ", "A", "한"])


def test_wraps_without_space_adds_cjk_punctuation_and_full_width_forms() -> None:
    wraps = re.compile(f"[{WRAPS_WITHOUT_SPACE}]")
    wanted = [*HAN_SAMPLES.values(), "あ", "カ", "。", "「", "，", "Ａ", "ㄅ", "\ufe30", "⺀"]
    assert all(wraps.match(c) for c in wanted)
    assert not any(wraps.match(c) for c in ["A", "9", " ", "한", "é"])


def test_cmrc_range_is_the_official_scripts_and_narrower() -> None:
    cmrc = re.compile(f"[{CMRC_HAN}]")
    assert cmrc.match("\u4e00") and cmrc.match("\u9fa5") and cmrc.match("部")
    # Outside the official script's range, though Han for everything else in docqa.
    for char in ["\u9fa6", "\u3400", "\u3007", "\uf900", "\U00020000"]:
        assert not cmrc.match(char) and has_han(char)
