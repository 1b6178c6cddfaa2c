"""Sentence ends in English and Chinese, with closing quotes and brackets kept."""

from __future__ import annotations

import pytest

from text.sentences import SENTENCE_END, split_sentences


def test_english_sentences_end_at_punctuation_and_a_space() -> None:
    text = "Orbit 3.4.0 added blue-green deploys. Keys rotate every 30 days! Why? Done"
    assert split_sentences(text) == [
        "Orbit 3.4.0 added blue-green deploys.",
        "Keys rotate every 30 days!",
        "Why?",
        "Done",
    ]


def test_chinese_sentences_need_no_space() -> None:
    assert split_sentences("每周二进行维护。部署日志保留 90 天；审计日志保留一年！") == [
        "每周二进行维护。",
        "部署日志保留 90 天；",
        "审计日志保留一年！",
    ]


def test_mixed_text_and_line_breaks() -> None:
    assert split_sentences("版本 3.4.0 发布。支持蓝绿部署！Done. Next\n\n下一段\nlast line") == [
        "版本 3.4.0 发布。",
        "支持蓝绿部署！",
        "Done.",
        "Next",
        "下一段",
        "last line",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('He said "done." Next one.', ['He said "done."', "Next one."]),
        ("(See below.) Then go.", ["(See below.)", "Then go."]),
        ("他说：“好。”然后走了。", ["他说：“好。”", "然后走了。"]),
        ("「完成！」下一步。", ["「完成！」", "下一步。"]),
    ],
)
def test_closing_quotes_and_brackets_stay_with_their_sentence(
    text: str, expected: list[str]
) -> None:
    assert split_sentences(text) == expected


@pytest.mark.parametrize("text", ["v3.4.0", "e.g.x", "3.5 天", "tls1.2"])
def test_a_point_inside_a_word_does_not_end_a_sentence(text: str) -> None:
    assert split_sentences(text) == [text]


@pytest.mark.parametrize("text", ["", "   ", "\n\n"])
def test_blank_text_has_no_sentences(text: str) -> None:
    assert split_sentences(text) == []


@pytest.mark.parametrize(
    "text",
    [
        "Logs are kept. API keys rotate every 30 days.",
        "他说：“好。”然后走了。  Next!\n\n(Done.) 最后",
        'A "quote." 「引用。」 End',
    ],
)
def test_no_text_is_lost(text: str) -> None:
    """Only whitespace lies between sentences: joining them gives the text back, spaces aside."""
    assert "".join(split_sentences(text)).replace(" ", "") == "".join(text.split())


def test_boundaries_are_gaps_for_span_users() -> None:
    """The chunker cuts at the matches; a match spans the closers and the whitespace after."""
    text = "One. Two。三"
    assert [(m.start(), m.end()) for m in SENTENCE_END.finditer(text)] == [(4, 5), (9, 9)]
