"""Hand labels of answers, and how well the automatic correctness rules agree with them.

Calibration needs a "right" per answer. The harness's rule (``recall``: the answer holds at
least 75% of the gold answer's tokens) was chosen because generative answers restate the
question and add context, which F1 against a short span punishes. Whether the rule says what a
reader would say is measured here: a person reads answers beside the gold answer (and the
passage when in doubt) and writes one line per answer to a labels file,

    {"id": "<question id>", "right": true, "why": "names the year; the gold is the year"}

and ``docqa eval agreement RUN --labels FILE`` compares each rule with those labels: accuracy,
Cohen's kappa, and the two kinds of disagreement. A label file belongs to one run (its
question ids); labels of questions the run does not hold are an error, not a silent skip.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval.compare import shown, table
from eval.errors import EvalError

Rule = Callable[[Mapping[str, Any]], bool | None]

# The rules compared: the harness's own, and the span metrics it replaced.
RULES: dict[str, Rule] = {
    "correct (recall >= 0.75)": lambda m: m.get("correct"),
    "em = 1": lambda m: None if m.get("em") is None else m["em"] >= 1.0,
    "f1 >= 0.5": lambda m: None if m.get("f1") is None else m["f1"] >= 0.5,
}


@dataclass(frozen=True)
class Agreement:
    rule: str
    n: int  # labelled answers the rule judged
    agree: int
    rule_right_label_wrong: int  # the rule accepts what the reader rejects
    rule_wrong_label_right: int  # the rule rejects what the reader accepts
    kappa: float | None  # Cohen's kappa; None when either side is constant

    @property
    def accuracy(self) -> float | None:
        return self.agree / self.n if self.n else None


def load_labels(path: Path) -> dict[str, bool]:
    """Question id -> right, from a labels file (JSON lines; blank lines allowed)."""
    labels: dict[str, bool] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise EvalError(f"cannot read labels {path}: {exc}") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            qid, right = str(row["id"]), row["right"]
        except (ValueError, KeyError, TypeError) as exc:
            raise EvalError(f"{path}:{number}: not a label line ({exc})") from exc
        if not isinstance(right, bool):
            raise EvalError(f"{path}:{number}: 'right' must be true or false")
        if qid in labels:
            raise EvalError(f"{path}:{number}: question {qid} is labelled twice")
        labels[qid] = right
    return labels


def read_records(path: Path) -> list[dict[str, Any]]:
    """Per-question lines from a file (a run's ``per_question.jsonl`` or bench/prompt_ab.py's)."""
    try:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    except (OSError, ValueError) as exc:
        raise EvalError(f"cannot read answers {path}: {exc}") from exc


def cohen_kappa(pairs: Sequence[tuple[bool, bool]]) -> float | None:
    """Cohen's kappa of two binary raters: (p_o - p_e) / (1 - p_e).

    >>> cohen_kappa([(True, True), (False, False), (True, False), (True, True)])
    0.5
    """
    n = len(pairs)
    if not n:
        return None
    observed = sum(a == b for a, b in pairs) / n
    a_yes = sum(a for a, _ in pairs) / n
    b_yes = sum(b for _, b in pairs) / n
    expected = a_yes * b_yes + (1 - a_yes) * (1 - b_yes)
    if expected >= 1.0:
        return None  # both raters constant: kappa is undefined
    return (observed - expected) / (1 - expected)


def agreement(records: Sequence[Mapping[str, Any]], labels: Mapping[str, bool]) -> list[Agreement]:
    """Each rule in ``RULES`` against the labels, over the labelled questions of a run."""
    by_id = {str(r["id"]): r for r in records}
    unknown = sorted(set(labels) - set(by_id))
    if unknown:
        raise EvalError(f"labels for questions the run does not hold: {', '.join(unknown[:5])}")
    out = []
    for name, rule in RULES.items():
        pairs = []
        for qid, right in labels.items():
            verdict = rule(by_id[qid].get("metrics") or {})
            if verdict is not None:
                pairs.append((bool(verdict), right))
        out.append(
            Agreement(
                rule=name,
                n=len(pairs),
                agree=sum(a == b for a, b in pairs),
                rule_right_label_wrong=sum(a and not b for a, b in pairs),
                rule_wrong_label_right=sum(b and not a for a, b in pairs),
                kappa=None if not pairs else cohen_kappa(pairs),
            )
        )
    return out


def agreement_text(rows: Sequence[Agreement], labelled: int, right: int) -> str:
    body = table(
        ["rule", "n", "agree", "accuracy", "kappa", "rule yes, reader no", "rule no, reader yes"],
        [
            [
                r.rule,
                str(r.n),
                str(r.agree),
                shown(r.accuracy),
                shown(r.kappa),
                str(r.rule_right_label_wrong),
                str(r.rule_wrong_label_right),
            ]
            for r in rows
        ],
    )
    return f"{labelled} labelled answers, {right} right by the reader\n\n{body}"
