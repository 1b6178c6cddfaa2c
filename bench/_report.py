"""The report side of a benchmark: logging, ``docs/BENCHMARKS.md`` sections, Markdown tables,
and ``run_bench``, the measure / save / render / write flow every script's ``main`` runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tqdm.contrib.logging import logging_redirect_tqdm

from bench._host import machine_lines

log = logging.getLogger("bench")


@contextmanager
def bench_logging(verbose: bool = False) -> Iterator[None]:
    """INFO logs for the benchmark, WARNING for libraries, routed around tqdm bars."""
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("bench").setLevel(logging.DEBUG if verbose else logging.INFO)
    with logging_redirect_tqdm():
        yield


# ------------------------------------------------------------------------------- BENCHMARKS.md
DEFAULT_OUT = Path("docs/BENCHMARKS.md")


def add_report_args(parser: argparse.ArgumentParser) -> None:
    """``--out`` and ``--from-json``, which ``run_bench`` reads."""
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="'-' writes no file.")
    parser.add_argument("--from-json", type=Path, help="Re-render from a saved results file.")


def run_lines(payload: dict[str, Any]) -> list[str]:
    """When (and, with ``minutes``, how long), on what machine and with which command a run
    was measured: the opening lines of a section."""
    took = f", whole run {payload['minutes']} min" if "minutes" in payload else ""
    return [
        f"Measured {payload['date']}{took}. Machine:",
        "",
        *machine_lines(payload["machine"]),
        "",
        "Command:",
        "",
        f"```sh\n{payload['command']}\n```",
    ]


_DOC_HEADER = """# Benchmarks

Measured numbers, each section written by the script that measured it (re-running a script
replaces its own section, between its markers). The data sets are described in
`../shared/data/README.md`; they are evaluation data, never part of the product.
"""


def replace_section(doc: Path, key: str, body: str) -> None:
    """Write ``body`` between ``<!-- BEGIN key -->`` and ``<!-- END key -->``, appending if new."""
    begin, end = f"<!-- BEGIN {key} -->", f"<!-- END {key} -->"
    block = f"{begin}\n{body.strip()}\n{end}"
    text = doc.read_text(encoding="utf-8") if doc.exists() else _DOC_HEADER
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text, encoding="utf-8")
    log.info("wrote the %s section of %s", key, doc)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    aligns = ["---" if i == 0 or not _numeric(rows, i) else "---:" for i in range(len(header))]
    lines = [header, aligns, *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def _numeric(rows: list[list[str]], column: int) -> bool:
    cells = [r[column] for r in rows if r[column] not in ("", "–")]
    return bool(cells) and all(re.fullmatch(r"[-+]?[\d.,×%]+", c) for c in cells)


# ------------------------------------------------------------------------------------ main
def run_bench(
    args: Any,
    measure: Callable[[Any], dict[str, Any]],
    render: Callable[[dict[str, Any]], str],
    section: str,
    saved_as: Callable[[dict[str, Any]], str] = lambda payload: "results.json",
) -> int:
    """Measure (or re-render ``--from-json``), save the raw results (in ``args.work_dir``, named
    by ``saved_as``), print and write the section.

    ``args`` carries ``from_json``, ``work_dir`` and ``out`` (``-``: print only).
    """
    with bench_logging():
        if args.from_json:
            payload = json.loads(args.from_json.read_text(encoding="utf-8"))
        else:
            payload = measure(args)
            args.work_dir.mkdir(parents=True, exist_ok=True)
            saved = args.work_dir / saved_as(payload)
            saved.write_text(json.dumps(payload, indent=1, ensure_ascii=False), encoding="utf-8")
            log.info("results saved to %s", saved)
        text = render(payload)
        sys.stdout.write(text + "\n")
        if str(args.out) != "-":
            replace_section(args.out, section, text)
    return 0
