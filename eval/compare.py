"""``docqa eval compare A B`` and ``docqa eval runs``: metrics side by side, and a run listing.

The delta is B - A. A mark says whether the change is for the better (``+``) or the worse
(``-``) for metrics with a direction (higher hit rates, lower ECE and latency); a change under
0.0005 (or 0.5 ms) is shown as ``=``. When the runs share questions (a run and its noise variant,
or one data set before and after a change), the judged ones are also paired: how many stayed
right, and how many turned right or wrong.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from eval.aggregate import HIGHER_IS_BETTER, LOWER_IS_BETTER, METRIC_NAMES
from eval.errors import EvalError
from eval.store import Run

KEY_METRICS = ("hit@5", "mrr@10", "ndcg@10", "f1", "correct", "decline_rate", "p95_ms")


def shown(value: float | None, name: str = "") -> str:
    """A metric as the eval tables print it: milliseconds to 0.1, the rest to 0.001 ("-0.000"
    shown as 0.000), "–" when not measured."""
    if value is None:
        return "–"
    return f"{value:,.1f}" if name.endswith("_ms") else f"{round(value, 3) + 0.0:.3f}"


def _mark(name: str, delta: float) -> str:
    tiny = 0.5 if name.endswith("_ms") else 0.0005
    if abs(delta) < tiny:
        return "="
    if name in HIGHER_IS_BETTER:
        return "+" if delta > 0 else "-"
    if name in LOWER_IS_BETTER:
        return "+" if delta < 0 else "-"
    return ""


def compare_rows(a: Mapping[str, float | None], b: Mapping[str, float | None]) -> list[list[str]]:
    """Rows of [metric, A, B, delta, mark] for every metric measured in A or B."""
    rows = []
    for name in METRIC_NAMES:
        x, y = a.get(name), b.get(name)
        if x is None and y is None:
            continue
        if x is None or y is None:
            rows.append([name, shown(x, name), shown(y, name), "", ""])
            continue
        delta = y - x
        sign = "+" if delta >= 0 else "-"
        change = f"{sign}{shown(abs(delta), name)}"
        rows.append([name, shown(x, name), shown(y, name), change, _mark(name, delta)])
    return rows


def shown_share(value: float | None) -> str:
    """A share as the eval tables print it: a percentage to 0.1, "–" when not measured."""
    return "–" if value is None else f"{100 * value:.1f}%"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table: the first column left-aligned, the others right-aligned."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def compare_text(a: Run, b: Run) -> str:
    ma, mb = a.metrics(), b.metrics()
    if ma is None or mb is None:
        unfinished = a if ma is None else b
        raise EvalError(f"run {unfinished.name} has no metrics.json (it did not finish)")
    lines = []
    for label, run in (("A", a), ("B", b)):
        config = run.config()
        dataset = config["dataset"]
        lines.append(
            f"{label}: {run.name} (data set {dataset['name']}, sha256 {dataset['sha256'][:12]}, "
            f"{config['selection']['questions']} questions)"
        )
    rows = compare_rows(ma["metrics"], mb["metrics"])
    text = "\n".join(lines) + "\n\n" + table(["metric", "A", "B", "B - A", ""], rows)
    pairs = paired(a.records(), b.records())
    if pairs["judged"]:
        stayed = pairs["stayed_right"] / pairs["right_in_a"] if pairs["right_in_a"] else None
        # A right answer B declined is another outcome than one B answered wrong (a noise
        # run's shuffle can move the evidence the decline reads): both counts, and the share
        # that stayed right among those B answered.
        answered = pairs["right_in_a"] - pairs["turned_declined"]
        kept = pairs["stayed_right"] / answered if answered else None
        text += (
            f"\n\npaired questions judged in both: {pairs['judged']}; right in A: "
            f"{pairs['right_in_a']}, still right in B: {pairs['stayed_right']}"
            f" ({shown(stayed, 'share')}); turned wrong: {pairs['turned_wrong']}"
            f" (declined by B: {pairs['turned_declined']}; still right among those B answered: "
            f"{pairs['stayed_right']} of {answered}, {shown(kept, 'share')}); "
            f"turned right: {pairs['turned_right']}"
        )
    return text


def paired(a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Per-question agreement of two runs on the questions both judged (``correct`` not None).

    ``turned_declined`` counts the questions right in A that B declined (among ``turned_wrong``).

    >>> right = lambda i, c, d=False: {"id": i, "metrics": {"correct": c}, "declined": d}
    >>> paired([right("q1", True), right("q2", True), right("q3", False)],
    ...        [right("q1", True), right("q2", False, True), right("q3", True), right("q4", True)])
    {'judged': 3, 'right_in_a': 2, 'stayed_right': 1, 'turned_wrong': 1, 'turned_declined': 1, \
'turned_right': 1}
    """

    def judged(records: Sequence[Mapping[str, Any]]) -> dict[str, bool]:
        out = {}
        for r in records:
            correct = (r.get("metrics") or {}).get("correct")
            if correct is not None:
                out[str(r["id"])] = bool(correct)
        return out

    ja, jb = judged(a), judged(b)
    declined_b = {str(r["id"]) for r in b if r.get("declined")}
    both = ja.keys() & jb.keys()
    return {
        "judged": len(both),
        "right_in_a": sum(ja[q] for q in both),
        "stayed_right": sum(ja[q] and jb[q] for q in both),
        "turned_wrong": sum(ja[q] and not jb[q] for q in both),
        "turned_declined": sum(ja[q] and not jb[q] and q in declined_b for q in both),
        "turned_right": sum(jb[q] and not ja[q] for q in both),
    }


def runs_rows(runs: Sequence[Run]) -> list[list[str]]:
    rows = []
    for run in runs:
        try:
            config = run.config()
        except (OSError, ValueError):
            continue
        result = run.metrics()
        metrics: dict[str, Any] = result["metrics"] if result else {}
        rows.append(
            [
                run.name,
                str(config.get("created", ""))[:19].replace("T", " "),
                str(config.get("dataset", {}).get("name", "?")),
                str(config.get("selection", {}).get("questions", "?")),
                "done" if result else "unfinished",
                *(shown(metrics.get(k), k) if result else "" for k in KEY_METRICS),
            ]
        )
    return rows


def runs_text(runs: Sequence[Run]) -> str:
    header = ["run", "created (UTC)", "data set", "questions", "status", *KEY_METRICS]
    return table(header, runs_rows(runs))
