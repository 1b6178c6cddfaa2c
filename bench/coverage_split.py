"""How well the confidence part ``coverage`` separates, per recorded evaluation run.

For each run (its coverage recorded, or backfilled by ``docqa eval backfill``), over its answers
(not its declines): the median coverage of answerable and of unanswerable questions, the AUROC
of coverage for "the question is answerable", and the AUROC of coverage for "the answer is
right" among answerable questions. No model runs: it reads the run folders.

    .venv/bin/python bench/coverage_split.py .docqa/runs-cf2/*-u20
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

import _path  # noqa: F401

from eval.calibration import auroc
from eval.compare import shown, table
from eval.replay import recorded_parts
from eval.store import Run


def split(run: Run) -> list[Any]:
    """One row: set, answers, median coverage (answerable, unanswerable), the two AUROCs."""
    rows = []
    for record in run.records():
        parts = recorded_parts(record)
        correct = (record.get("metrics") or {}).get("correct")
        if record["declined"] or parts is None or parts.coverage is None or correct is None:
            continue
        rows.append((parts.coverage, bool(record["answerable"]), bool(correct)))
    answerable = [c for c, a, _ in rows if a]
    unanswerable = [c for c, a, _ in rows if not a]
    return [
        str(run.config().get("name", run.name)),
        len(rows),
        shown(statistics.median(answerable) if answerable else None),
        shown(statistics.median(unanswerable) if unanswerable else None),
        shown(auroc([c for c, _, _ in rows], [a for _, a, _ in rows]) if unanswerable else None),
        shown(auroc(answerable, [ok for _, a, ok in rows if a]) if answerable else None),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="Run folders.")
    args = parser.parse_args()
    headers = [
        "set",
        "answers",
        "coverage: answerable",
        "unanswerable",
        "AUROC answerable",
        "AUROC right (answerable)",
    ]
    sys.stdout.write(table(headers, [split(Run(path)) for path in args.runs]) + "\n")


if __name__ == "__main__":
    main()
