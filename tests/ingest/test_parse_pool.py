"""Parsing in worker processes: deadlines, memory budgets, dying workers, no orphans."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.parse_pool import ParseLimits, ParsePool
from ingest.parsers import parse
from ingest.parsers.errors import ParseError
from tests.ingest.generated import pdf

pytestmark = pytest.mark.slow  # worker processes, killed and timed out on purpose

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MB = 1024 * 1024
LIMITS = ParseLimits(max_bytes=50 * MB, max_inflated=500 * MB, timeout_s=120, memory_bytes=None)


@pytest.fixture
def pool() -> Iterator[ParsePool]:
    workers = ParsePool(1)
    yield workers
    workers.close()


@pytest.fixture(scope="module")
def slow_pdf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("slow") / "slow.pdf"
    path.write_bytes(pdf(1_000_000))  # pypdf takes several seconds over it
    return path


def _workers() -> set[int]:
    """Pids of parse workers that are children of this process."""
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if parent == os.getpid() and b"ingest.parse_pool" in command:
            found.add(int(entry.name))
    return found


def _gone(pid: int, within_s: float = 60) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return True
        if stat.rsplit(")", 1)[1].split()[0] == "Z":  # exited, not yet reaped by its parent
            return True
        time.sleep(0.05)
    return False


def test_a_worker_parses_as_the_parser_does(pool: ParsePool) -> None:
    for path in sorted(EXAMPLES.iterdir()):
        assert pool.parse(path, LIMITS) == parse(path, LIMITS.max_bytes)
    with pytest.raises(ParseError) as caught:
        pool.parse(EXAMPLES / "missing.md", LIMITS)
    assert caught.value.reason == "file not found"


def test_a_file_past_its_deadline_is_skipped_and_the_pool_goes_on(
    pool: ParsePool, slow_pdf: Path
) -> None:
    quick = dataclasses.replace(LIMITS, timeout_s=0.5)
    with pytest.raises(ParseError) as caught:
        pool.parse(slow_pdf, quick)
    assert "longer than 0.5 s" in caught.value.reason
    assert "DOCQA_PARSE_TIMEOUT_S" in caught.value.reason
    assert pool.parse(EXAMPLES / "orbit-runbook.md", quick).title == "Orbit Runbook"


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="the cap needs Linux /proc")
def test_a_parse_over_its_memory_budget_is_skipped(pool: ParsePool, tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    big.write_bytes(b"plain words and more words\n" * 400_000)  # 10.8 MB
    tight = dataclasses.replace(LIMITS, memory_bytes=2 * MB)
    with pytest.raises(ParseError) as caught:
        pool.parse(big, tight)
    assert caught.value.reason == "needs more than 2 MB to parse (DOCQA_PARSE_MEMORY_MB)"
    assert pool.parse(big, LIMITS).blocks  # a new worker, uncapped, reads it


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds workers through /proc")
def test_a_worker_that_dies_is_reported_and_replaced(pool: ParsePool, slow_pdf: Path) -> None:
    failures: list[str] = []

    def parse_slow() -> None:
        try:
            pool.parse(slow_pdf, LIMITS)
        except ParseError as exc:
            failures.append(exc.reason)

    before = _workers()
    thread = threading.Thread(target=parse_slow)
    thread.start()
    deadline = time.monotonic() + 60
    while not (_workers() - before) and time.monotonic() < deadline:
        time.sleep(0.05)
    worker = (_workers() - before or _workers()).pop()
    time.sleep(0.5)  # it is parsing now
    os.kill(worker, signal.SIGKILL)  # what the kernel's OOM killer does
    thread.join(60)
    assert failures == ["the parser process was killed (out of memory?); skipped"]
    assert pool.parse(EXAMPLES / "orbit-runbook.md", LIMITS).blocks


_ABANDON = r"""
import os, sys
from pathlib import Path
from ingest.parse_pool import ParseLimits, ParsePool
pool = ParsePool(1)
pool.parse(Path(sys.argv[1]), ParseLimits(1 << 26, 1 << 28, 60.0, None))
print(pool._idle[0].process.pid, flush=True)
os._exit(0)  # as a SIGKILL would: no clean-up at all
"""


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="watches the worker through /proc")
def test_a_worker_exits_when_its_ingest_is_killed() -> None:
    runbook = str(EXAMPLES / "orbit-runbook.md")
    child = subprocess.run(
        [sys.executable, "-c", _ABANDON, runbook], capture_output=True, text=True, timeout=120
    )
    worker = int(child.stdout)
    assert _gone(worker)
