"""Quality gates: ``--fail-under hit@5=0.8,f1=0.5 --fail-over p95_ms=5000``.

A gate is breached when the metric is under (``--fail-under``) or over (``--fail-over``) its
limit, or when the run did not measure it (``f1`` in a retrieval-only run): a gate that cannot be
checked must not pass silently. Specs are parsed before anything runs, so a misspelt metric fails
at once (exit 2) instead of after a long evaluation.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from eval.aggregate import METRIC_NAMES
from eval.errors import UsageError

Direction = Literal["under", "over"]
_ITEM = re.compile(r"^\s*([A-Za-z0-9@_]+)\s*=\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")


@dataclass(frozen=True)
class Gate:
    metric: str
    limit: float
    direction: Direction  # "under": fail when metric < limit; "over": fail when metric > limit

    def breach(self, metrics: Mapping[str, float | None]) -> str | None:
        """A message when the gate is breached, else None."""
        value = metrics.get(self.metric)
        if value is None:
            return f"{self.metric} was not measured in this run (gate {self.describe()})"
        if self.direction == "under" and value < self.limit:
            return f"{self.metric} = {value:g} is under {self.limit:g}"
        if self.direction == "over" and value > self.limit:
            return f"{self.metric} = {value:g} is over {self.limit:g}"
        return None

    def describe(self) -> str:
        return f"--fail-{self.direction} {self.metric}={self.limit:g}"


def parse_gates(spec: str | None, direction: Direction) -> list[Gate]:
    """``"hit@5=0.8, f1=0.5"`` -> gates; an unknown metric or a malformed item is a UsageError.

    >>> parse_gates("hit@5=0.8,p95_ms=5e3", "under")[1].limit
    5000.0
    """
    if not spec or not spec.strip():
        return []
    gates = []
    for item in spec.split(","):
        match = _ITEM.match(item)
        if match is None:
            raise UsageError(
                f"--fail-{direction}: {item.strip()!r} is not METRIC=NUMBER (e.g. hit@5=0.8,f1=0.5)"
            )
        name, limit = match[1].lower(), float(match[2])
        if name not in METRIC_NAMES:
            raise UsageError(
                f"--fail-{direction}: unknown metric {name!r}; known metrics: "
                f"{', '.join(METRIC_NAMES)}"
            )
        gates.append(Gate(name, limit, direction))
    return gates


def check(gates: Iterable[Gate], metrics: Mapping[str, float | None]) -> list[str]:
    """The breach messages, one per breached gate, in the order given."""
    return [msg for gate in gates if (msg := gate.breach(metrics)) is not None]
