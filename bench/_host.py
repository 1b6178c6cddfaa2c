"""What the numbers were measured on: the machine, its load, the code and the command.

The benchmarks record this with every result (``machine()`` at the start, ``load_average()``
again at the end) and print it above every section; the code's commit comes from
``eval.provenance``, as an evaluation run's does.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shlex
import sys
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

from eval.provenance import REPO_ROOT, git_commit, library_versions


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def code_version() -> str:
    """The commit the benchmark ran from, and whether the working tree had changes outside
    ``bench/`` and ``docs/`` (which a benchmark writes), from ``eval.provenance.git_commit``."""
    git = git_commit(REPO_ROOT, exclude=("bench", "docs"))
    if git["commit"] is None:
        return "unknown (no git)"
    dirty = " + uncommitted changes outside bench/ and docs/" if git["dirty"] else ""
    return f"git {git['commit'][:10]}{dirty}"


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    versions = library_versions()
    return {
        "cpu": f"{cores} cores (nproc), {_cpu_model()}",
        "cpu flags": cpu_flag_summary(),
        "gpu": gpu,
        "torch": f"{torch.__version__} ({torch.get_num_threads()} threads)",
        "python": str(versions["python"]),
        "libraries": ", ".join(
            f"{name} {versions[name] or 'not installed'}"
            for name in ("sentence-transformers", "chromadb")
        ),
        "code": code_version(),
        "load at start": load_average(),
    }


# The instruction sets that decide how fast the engines run here (bf16, int8 dot products).
_SPEED_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx")


def cpu_flag_summary() -> str:
    """Which of the speed-relevant /proc/cpuinfo flags this CPU has (``amx`` stands for all
    ``amx_*``)."""
    from index.hardware import read_cpu_flags

    flags = read_cpu_flags()
    have = sorted(f for f in flags if f.startswith(_SPEED_FLAGS))
    missing = [f for f in _SPEED_FLAGS if not any(h.startswith(f) for h in have)]
    return f"{' '.join(have) or 'none'}; not: {' '.join(missing) or '-'}"


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: other work on the machine skews every timing."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min)"


def contention_note(host: dict[str, str]) -> list[str]:
    """A warning when other work loaded the machine beyond its cores during the run."""
    try:
        cores = int(host["cpu"].split()[0])
        loads = [float(host[k].split()[0]) for k in ("load at start", "load at end") if k in host]
    except (KeyError, ValueError, IndexError):
        return []
    if not loads or max(loads) <= cores:
        return []
    return [
        f"The machine was shared: its 1-minute load average reached {max(loads):.1f} on "
        f"{cores} cores (other people's jobs). Every timing here includes that contention, "
        "which also varies between the passes compared; treat ratios as approximate."
    ]


def machine_lines(info: dict[str, str]) -> list[str]:
    return [f"- {key}: {value}" for key, value in info.items()]


def command_line() -> str:
    """The command as run, with ``nice -n N`` when the process runs niced."""
    script = Path(sys.argv[0])
    with suppress(ValueError):
        script = script.resolve().relative_to(Path.cwd())
    niceness = os.nice(0)
    prefix = f"nice -n {niceness} " if niceness else ""
    return f"{prefix}.venv/bin/python {shlex.join([str(script), *sys.argv[1:]])}"


def now() -> str:
    return dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")


def run_header(host: dict[str, str], started: float) -> dict[str, Any]:
    """The opening fields of a results payload: when, how long since ``started`` (a
    ``time.monotonic()``), on what (``host`` from `machine`, with the load again at the end) and
    with which command."""
    return {
        "date": now(),
        "minutes": round((time.monotonic() - started) / 60, 1),
        "machine": {**host, "load at end": load_average()},
        "command": command_line(),
    }


def emit_report(report: dict[str, Any], markdown: str, out: Path | None) -> None:
    """The report as JSON in ``out`` (stdout without one), then its Markdown table on stdout."""
    text = json.dumps(report, indent=1, ensure_ascii=False)
    if out:
        out.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text + "\n")
    sys.stdout.write(markdown + "\n")
