"""Run folders: ``RUNS_DIR/<UTC time>-<name>/`` with ``config.json``, ``per_question.jsonl``,
``metrics.json`` and ``report.html``; listing, resolving and resuming them.

``per_question.jsonl`` is written one line per question, each line in one write followed by
flush and fsync, so a SIGKILL loses at most the line being written. Reading tolerates a last line
cut short (it is dropped and the file truncated to the lines before it, so the next append
starts on a clean line); a damaged line anywhere else is an error, never silently skipped.

``config.json`` is written when the run starts, ``metrics.json`` when it ends: a run folder
without ``metrics.json`` is unfinished, and can be resumed.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval.errors import EvalError, RunNotFoundError

log = logging.getLogger(__name__)

CONFIG = "config.json"
METRICS = "metrics.json"
PER_QUESTION = "per_question.jsonl"
REPORT = "report.html"
BACKFILL = "backfill.json"  # parts measured after the run (eval.backfill)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str) -> str:
    """A run name fit for a folder name.

    >>> safe_name("xquad zh/limit 100")
    'xquad-zh-limit-100'
    """
    return _UNSAFE.sub("-", name).strip("-.")[:80] or "run"


def write_json(path: Path, data: Any) -> None:
    """Write atomically: a temporary file renamed over the target."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Run:
    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def complete(self) -> bool:
        return (self.path / METRICS).is_file()

    def config(self) -> dict[str, Any]:
        data = read_json(self.path / CONFIG)
        assert isinstance(data, dict)
        return data

    def metrics(self) -> dict[str, Any] | None:
        if not self.complete:
            return None
        data = read_json(self.path / METRICS)
        assert isinstance(data, dict)
        return data

    def write_config(self, config: dict[str, Any]) -> None:
        write_json(self.path / CONFIG, config)

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        write_json(self.path / METRICS, metrics)

    # --------------------------------------------------------------------- per question
    def records(self, backfilled: bool = True) -> list[dict[str, Any]]:
        """The complete lines of ``per_question.jsonl`` (a cut-short last line is dropped and
        cut from the file); ``backfilled``: with the confidence parts ``backfill.json`` holds
        filled in where a line has none."""
        path = self.path / PER_QUESTION
        if not path.exists():
            return []
        data = path.read_bytes()
        records: list[dict[str, Any]] = []
        good = 0  # bytes of complete, valid lines
        lines = data.split(b"\n")
        for number, raw in enumerate(lines, start=1):
            last = number == len(lines)
            if last and not raw:
                break  # the file ends with a newline, as it should
            try:
                value = json.loads(raw)
                if not isinstance(value, dict):
                    raise ValueError("not an object")
            except ValueError as exc:
                if last:
                    log.warning(
                        "%s: dropping a cut-short last line (%d bytes) from an interrupted run",
                        path,
                        len(raw),
                    )
                    break
                raise EvalError(f"{path}:{number}: damaged line ({exc})") from exc
            records.append(value)
            good += len(raw) + (0 if last else 1)
        if good < len(data) or (data and not data.endswith(b"\n")):
            with path.open("r+b") as handle:
                handle.truncate(good)
                if records and good and not data[:good].endswith(b"\n"):
                    handle.seek(good)
                    handle.write(b"\n")  # a complete last line whose newline was lost
                handle.flush()
                os.fsync(handle.fileno())
        return self._backfilled(records) if backfilled else records

    def _backfilled(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        path = self.path / BACKFILL
        if not path.is_file():
            return records
        parts: dict[str, dict[str, float]] = read_json(path).get("parts", {})
        for record in records:
            recorded = record.get("confidence_parts")
            if recorded is None:
                continue
            for name, values in parts.items():
                if recorded.get(name) is None and record["id"] in values:
                    recorded[name] = values[record["id"]]
        return records

    def append(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        fd = os.open(self.path / PER_QUESTION, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)


def create_run(runs_dir: Path, name: str, now: dt.datetime | None = None) -> Run:
    """A new, empty run folder ``<UTC time>-<name>`` (``-2``, ``-3``... if taken)."""
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
    runs_dir.mkdir(parents=True, exist_ok=True)
    base = f"{stamp}-{safe_name(name)}"
    for n in range(1, 1000):
        path = runs_dir / (base if n == 1 else f"{base}-{n}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return Run(path)
    raise EvalError(f"cannot create a run folder under {runs_dir}")


def list_runs(runs_dir: Path) -> list[Run]:
    """Every run folder (one with a config.json), oldest first."""
    if not runs_dir.is_dir():
        return []
    return [Run(p) for p in sorted(runs_dir.iterdir()) if (p / CONFIG).is_file()]


def resolve_run(ref: str, runs_dir: Path) -> Run:
    """A run by path, by folder name in ``runs_dir``, or by a unique prefix of one."""
    path = Path(ref)
    if (path / CONFIG).is_file():
        return Run(path)
    if (runs_dir / ref / CONFIG).is_file():
        return Run(runs_dir / ref)
    matches = [r for r in list_runs(runs_dir) if r.name.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        names = ", ".join(r.name for r in matches[:5])
        raise RunNotFoundError(f"{ref!r} matches several runs: {names}")
    raise RunNotFoundError(
        f"no run {ref!r} (looked for a folder with config.json, and in {runs_dir})"
    )


def find_resumable(runs_dir: Path, name: str, fingerprint: str) -> Run | None:
    """The newest unfinished run with this name and the same fingerprint, if any."""
    for run in reversed(list_runs(runs_dir)):
        if run.complete:
            continue
        try:
            config = run.config()
        except (OSError, ValueError):
            continue
        if config.get("name") == name and config.get("fingerprint") == fingerprint:
            return run
    return None
