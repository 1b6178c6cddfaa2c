"""Helpers for the evaluation tests: finished run folders written by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eval.aggregate import METRIC_NAMES
from eval.store import Run, write_json


def make_run(
    runs_dir: Path,
    name: str,
    metrics: dict[str, float | None] | None,
    dataset: str = "tiny",
    questions: int = 4,
) -> Run:
    """A run folder with a config.json and, unless ``metrics`` is None, a metrics.json."""
    path = runs_dir / name
    path.mkdir(parents=True)
    config: dict[str, Any] = {
        "name": name.split("-", 1)[-1],
        "created": "2026-01-02T03:04:05+00:00",
        "dataset": {"name": dataset, "sha256": "ab" * 32, "format": "jsonl"},
        "selection": {"questions": questions},
        "fingerprint": "f" * 64,
    }
    write_json(path / "config.json", config)
    if metrics is not None:
        full = dict.fromkeys(METRIC_NAMES) | metrics
        write_json(path / "metrics.json", {"metrics": full, "counts": {}, "calibration": {}})
    return Run(path)
