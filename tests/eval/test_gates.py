"""Gate parsing, unknown names, and the breach messages."""

from __future__ import annotations

import pytest

from eval.errors import UsageError
from eval.gates import Gate, check, parse_gates


def test_parse_under_and_over() -> None:
    assert parse_gates("hit@5=0.8, f1=0.5", "under") == [
        Gate("hit@5", 0.8, "under"),
        Gate("f1", 0.5, "under"),
    ]
    assert parse_gates("p95_ms=5000,p95_generate_ms=4e3", "over") == [
        Gate("p95_ms", 5000.0, "over"),
        Gate("p95_generate_ms", 4000.0, "over"),
    ]
    assert parse_gates("HIT@1=.5", "under") == [Gate("hit@1", 0.5, "under")]
    assert parse_gates(None, "under") == [] and parse_gates(" ", "over") == []


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("hit@3=0.5", "unknown metric 'hit@3'; known metrics: hit@1, hit@5"),
        ("p99_ms=10", "unknown metric 'p99_ms'"),
        ("hit@5>0.8", "'hit@5>0.8' is not METRIC=NUMBER"),
        ("hit@5=high", "is not METRIC=NUMBER"),
        ("hit@5=0.8,,f1=0.2", "'' is not METRIC=NUMBER"),
    ],
)
def test_bad_specs_are_usage_errors(spec: str, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(")) as info:
        parse_gates(spec, "under")
    assert info.value.exit_code == 2


def test_breach_messages_name_each_breach() -> None:
    gates = parse_gates("hit@5=0.8,f1=0.5,mrr@10=0.5", "under") + parse_gates(
        "p95_ms=5000,ece=0.3", "over"
    )
    metrics = {"hit@5": 0.75, "f1": None, "mrr@10": 0.5, "p95_ms": 6000.5, "ece": 0.1}
    assert check(gates, metrics) == [
        "hit@5 = 0.75 is under 0.8",
        "f1 was not measured in this run (gate --fail-under f1=0.5)",
        "p95_ms = 6000.5 is over 5000",
    ]
    # a value equal to the limit holds
    assert check(parse_gates("mrr@10=0.5", "under"), metrics) == []
