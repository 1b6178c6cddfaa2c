"""Follow-up rewriting: the model's standalone question when usable, else a logged fallback;
never a concatenation of turns."""

from __future__ import annotations

import logging

import pytest

from app.answer.followup import fallback, rewrite_messages, standalone

HISTORY = [
    {"role": "user", "content": "What port does orbit-agent use?"},
    {"role": "assistant", "content": "orbit-agent uses port 7070. [1]"},
]
ZH_HISTORY = [
    {"role": "user", "content": "orbit-agent 用哪个端口？"},
    {"role": "assistant", "content": "orbit-agent 使用 7070 端口。[1]"},
]


def test_a_good_rewrite_is_the_query_exactly() -> None:
    got = standalone("Who owns orbit-agent?", HISTORY, "And who owns it?")
    assert (got.query, got.source) == ("Who owns orbit-agent?", "model")


@pytest.mark.parametrize(
    "raw",
    [
        "Standalone question: Who owns orbit-agent?",
        '"Who owns orbit-agent?"',
        "\n  Who owns orbit-agent?\nWhat port does orbit-agent use?",
    ],
)
def test_labels_quotes_and_extra_lines_are_cut(raw: str) -> None:
    assert standalone(raw, HISTORY, "And who owns it?").query == "Who owns orbit-agent?"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "failed"),
        ("   ", "came back empty"),
        ("What port does orbit-agent use?", "copies an earlier turn"),
        ("orbit-agent 归谁负责？", "another language"),
        ("Who owns orbit-agent? " * 40, "out of proportion"),
        ("Lin Wei owns orbit-agent.", "is not a question"),  # an answer, not a rewrite
    ],
)
def test_an_unusable_rewrite_falls_back_and_says_why(
    raw: str | None, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="app.answer.followup"):
        got = standalone(raw, HISTORY, "And who owns it?")
    assert got.source == "fallback" and reason in got.reason
    assert got.query == "And who owns it? (What port does orbit-agent use?)"
    assert "\n" not in got.query
    assert any(reason in r.getMessage() for r in caplog.records)


def test_chinese_follow_up_keeps_a_chinese_rewrite_and_falls_back_from_english() -> None:
    assert standalone("orbit-agent 归谁负责？", ZH_HISTORY, "它归谁负责？").source == "model"
    english = standalone("Who owns orbit-agent?", ZH_HISTORY, "它归谁负责？")
    assert english.source == "fallback"
    assert english.query == "它归谁负责？ (orbit-agent 用哪个端口？)"


def test_the_fallback_is_one_line_and_skips_an_empty_or_repeated_previous_question() -> None:
    assert fallback("Who rotates them?", "How often\n do keys rotate?") == (
        "Who rotates them? (How often do keys rotate?)"
    )
    assert fallback("Who?", "") == "Who?"
    assert fallback("Who?", "Who?") == "Who?"


def test_the_prompt_carries_the_last_turns_on_one_line_each() -> None:
    long = [{"role": "user", "content": f"question {i}\nsecond line"} for i in range(10)]
    user = rewrite_messages(long, "and then?")[1]["content"]
    assert "question 3" not in user and "question 4 second line" in user  # the last six turns
    assert user.endswith("Last question: and then?\nStandalone question:")


def test_a_chinese_rewrite_that_answers_instead_is_not_used() -> None:
    """The default profile's model once "rewrote" 它归谁负责？ into a statement of the earlier
    answer; a question asked with a question mark gets a rewrite that ends with one."""
    got = standalone("orbit-agent 使用 7070 端口。", ZH_HISTORY, "它归谁负责？")
    assert got.source == "fallback" and got.reason == "is not a question"
    assert standalone("orbit-agent 归谁负责？", ZH_HISTORY, "它归谁负责？").source == "model"
    # A question asked without a mark may be rewritten without one.
    assert standalone("Who owns orbit-agent", HISTORY, "and the owner").source == "model"


def test_an_unchanged_rewrite_that_leaves_a_reference_falls_back() -> None:
    """The default profile's model returned 那 VPN 呢？ as it was asked; a question asked
    standalone in a chat comes back unchanged too, and is used as it is."""
    history = [
        {"role": "user", "content": "谁负责 Grafana 监控的权限？"},
        {"role": "assistant", "content": "王强负责。[1]"},
    ]
    got = standalone("那 VPN 呢？", history, "那 VPN 呢？")
    assert got.source == "fallback" and "unchanged" in got.reason
    assert got.query == "那 VPN 呢？ (谁负责 Grafana 监控的权限？)"
    assert standalone("And who owns it?", HISTORY, "And who owns it?").source == "fallback"
    standalone_question = "Which port does orbit-scheduler use?"
    assert standalone(standalone_question, HISTORY, standalone_question).source == "model"


def test_a_rewrite_that_drops_what_the_follow_up_adds_falls_back() -> None:
    """The default profile's model rewrote "And production access itself?" into the earlier
    question reworded: "access" was gone, and the answer was the session's 8 hours."""
    earlier = "How long does a production session last before the user must sign in again?"
    history = [
        {"role": "user", "content": earlier},
        {"role": "assistant", "content": "A production session expires after 8 hours. [1]"},
    ]
    reworded = "What is the duration of a production session before the user must sign in again?"
    got = standalone(reworded, history, "And production access itself?")
    assert got.source == "fallback" and "rewords the earlier question" in got.reason
    assert "access" in got.reason
    right = "How long does production access last?"
    assert standalone(right, history, "And production access itself?").source == "model"
    # Words the earlier question already had are no test; Chinese characters are none either.
    assert standalone("Who owns orbit-agent?", HISTORY, "And who owns it?").source == "model"
    zh = [
        {"role": "user", "content": "Orbit 的部署日志保留多久？"},
        {"role": "assistant", "content": "90 天。"},
    ]
    assert (
        standalone("在哪里可以查看 Orbit 的部署日志？", zh, "在哪里可以查看它们？").source
        == "model"
    )
