"""Child processes for tests and benchmarks: `docqa` commands and servers, started with their
output in a log file, waited for, and always stopped (terminate, then kill)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path


def stop(process: subprocess.Popen[bytes], grace_s: float = 30.0) -> None:
    """SIGTERM, then SIGKILL after ``grace_s``; returns once the process is gone."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def running(
    command: list[str], env: dict[str, str], log: Path, grace_s: float = 30.0
) -> Iterator[subprocess.Popen[bytes]]:
    """``command`` with stdout and stderr in ``log``, stopped when the block ends."""
    with log.open("ab") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        stop(process, grace_s)


def docqa(
    args: list[str], env: dict[str, str], log: Path
) -> AbstractContextManager[subprocess.Popen[bytes]]:
    """``python -m docqa ARGS``, as `running` starts it."""
    return running([sys.executable, "-m", "docqa", *args], env, log)


def tail(log: Path, chars: int = 3000) -> str:
    return log.read_text(encoding="utf-8", errors="replace")[-chars:] if log.exists() else ""


def wait_until(
    ready: Callable[[], bool],
    process: subprocess.Popen[bytes],
    log: Path,
    timeout_s: float,
    what: str,
    interval_s: float = 0.2,
) -> None:
    """Until ``ready()``; an AssertionError with the log's tail when the process exits first or
    the time runs out."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        assert process.poll() is None, f"{what}: exited ({process.returncode})\n{tail(log)}"
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s:.0f} s\n{tail(log)}"
        time.sleep(interval_s)


def http_ready(url: str) -> Callable[[], bool]:
    """A ``ready`` that is true once ``GET url`` answers 200."""
    import httpx

    def ready() -> bool:
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    return ready
