"""The citation-marker regex: every bracket and digit form, lists, ranges, and what is not one."""

from __future__ import annotations

import pytest

from text.citation_markers import MARKER, MAX_RANGE, OPENING, marker_numbers, strip_markers


@pytest.mark.parametrize(
    ("marker", "numbers"),
    [
        ("[1]", [1]),
        ("[1, 2]", [1, 2]),
        ("[1; 3]", [1, 3]),
        ("[2 ,3]", [2, 3]),
        ("[1 2]", [1, 2]),
        ("[1-3]", [1, 2, 3]),
        ("[1–3]", [1, 2, 3]),
        ("[1~2]", [1, 2]),
        ("【2】", [2]),
        ("［3］", [3]),
        ("[１，２]", [1, 2]),
        ("[1、2]", [1, 2]),
        ("【１２】", [12]),
    ],
)
def test_every_marker_form_is_found_and_read(marker: str, numbers: list[int]) -> None:
    found = MARKER.findall(f"Keys rotate{marker}.")
    assert len(found) == 1
    assert marker_numbers(found[0]) == numbers


@pytest.mark.parametrize("text", ["[a]", "[]", "[1a]", "(1)", "1.", "[ ]", "list[int]"])
def test_what_is_not_a_marker(text: str) -> None:
    assert MARKER.search(text) is None


def test_a_range_wider_than_max_range_is_a_date() -> None:
    assert marker_numbers("[2024-03]") == []
    assert marker_numbers(f"[1-{1 + MAX_RANGE}]") == list(range(1, 2 + MAX_RANGE))
    assert marker_numbers(f"[1-{2 + MAX_RANGE}]") == []
    assert marker_numbers("[3-1]") == []


def test_adjacent_markers_are_separate_matches() -> None:
    assert [m[1] for m in MARKER.finditer("Yes [1][2] and 【3】【４】.")] == ["1", "2", "3", "４"]


def test_strip_markers_takes_the_space_before_each() -> None:
    assert strip_markers("Keys rotate every 30 days [1][2].") == "Keys rotate every 30 days."
    assert strip_markers("日志保留 90 天【2】。") == "日志保留 90 天。"
    assert strip_markers("No markers [a].") == "No markers [a]."


def test_opening_brackets_are_the_three_forms() -> None:
    assert set(OPENING) == {"[", "【", "［"}
