"""Citation markers: parsing every form, dropping markers that point nowhere, overlap fallback."""

from __future__ import annotations

import pytest

from app.answer.citations import (
    parse_citations,
    repoint_citations,
    strip_invalid_markers,
    support_fallback,
)
from tests.app.conftest import make_hit


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Keys rotate every 30 days [1].", [1]),
        ("Both say so [1, 2].", [1, 2]),
        ("Both say so [2][1].", [2, 1]),
        ("Both [1; 3] and [2 ,3].", [1, 3, 2]),
        ("日志保留 90 天【2】。", [2]),
        ("日志保留 90 天【１】【２】。", [1, 2]),
        ("全角方括号［3］和顿号[1、2]。", [3, 1, 2]),
        ("中文逗号 [1，3]。", [1, 3]),
        ("A range [1-3].", [1, 2, 3]),
        ("Repeated [2] and [2] again [1].", [2, 1]),
        ("No markers here.", []),
        ("A date [2024-03] is no citation [1].", [1]),
    ],
)
def test_parse_citations_variants(answer: str, expected: list[int]) -> None:
    assert parse_citations(answer, n_passages=3) == expected


def test_out_of_range_numbers_are_ignored() -> None:
    assert parse_citations("See [0], [4] and [2, 9].", n_passages=3) == [2]
    assert parse_citations("See [1].", n_passages=0) == []


def test_strip_invalid_markers_keeps_valid_ones_untouched() -> None:
    assert strip_invalid_markers("Yes [1][2].", 2) == "Yes [1][2]."
    assert strip_invalid_markers("Yes 【2】。", 2) == "Yes 【2】。"


def test_strip_invalid_markers_removes_or_rewrites() -> None:
    assert strip_invalid_markers("Yes [1, 7]. No [8].", 3) == "Yes [1]. No."
    assert strip_invalid_markers("是的【5】。", 3) == "是的。"
    assert strip_invalid_markers("Gone [4][1].", 3) == "Gone [1]."


def test_support_fallback_picks_the_best_overlapping_passages() -> None:
    passages = [
        make_hit(1, "The cafeteria opens at 8:00 on weekdays."),
        make_hit(2, "API keys rotate every 30 days; old keys are revoked."),
        make_hit(3, "Keys for the API are rotated automatically every 30 days."),
    ]
    # answer units: api, keys, rotate, 30, days -> passage 2 has 5/5, passage 3 has 4/5.
    assert support_fallback("API keys rotate every 30 days.", passages) == [2, 3]
    assert support_fallback("API keys rotate every 30 days.", passages, max_citations=1) == [2]


def test_support_fallback_needs_the_threshold() -> None:
    passages = ["Deploys need approval.", "Logs are kept for 90 days."]
    assert support_fallback("The cafeteria serves pasta on Fridays.", passages) == []
    assert support_fallback("", passages) == []


def test_support_fallback_uses_chinese_bigrams() -> None:
    passages = ["食堂早上八点开门。", "部署日志保留 90 天。"]
    assert support_fallback("部署日志保留90天。", passages) == [2]


RELEASE_NOTE = make_hit(1, "Fixed a memory leak in orbit-agent on nodes with many pods.")
OWNERS = make_hit(
    2,
    "| Component | Owner | Port |\n| orbit-agent | Lin Wei | 7070 |\n| orbit-ui | Hannah | 3000 |",
)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        # The default profile's answer: the fact is in the owners' table, the marker named the
        # release note that shares only the component's name.
        ("The orbit-agent is owned by Lin Wei. [1]", "The orbit-agent is owned by Lin Wei. [2]"),
        ("The orbit-agent is owned by Lin Wei [1][1].", "The orbit-agent is owned by Lin Wei [2]."),
        ("Lin Wei owns it 【1】。", "Lin Wei owns it 【2】。"),
        # Each sentence is judged by its own words.
        (
            "orbit-agent leaked memory on nodes with many pods [1]. Lin Wei owns it [1].",
            "orbit-agent leaked memory on nodes with many pods [1]. Lin Wei owns it [2].",
        ),
    ],
)
def test_a_marker_moves_to_the_passage_that_holds_its_sentence(answer: str, expected: str) -> None:
    assert repoint_citations(answer, [RELEASE_NOTE, OWNERS]) == expected


@pytest.mark.parametrize(
    "answer",
    [
        "The orbit-agent is owned by Lin Wei. [2]",  # already right
        "Lin Wei owns orbit-agent [1][2].",  # together they hold it
        "orbit-agent leaked memory [1].",  # the cited one holds it
        "Nobody knows who owns the agent fleet in practice [1].",  # no passage holds it: kept
        "The orbit-agent is owned by Lin Wei.",  # no marker: support_fallback's job
    ],
)
def test_a_marker_that_is_right_or_has_no_better_passage_stays(answer: str) -> None:
    assert repoint_citations(answer, [RELEASE_NOTE, OWNERS]) == answer
