"""Parsing in worker processes: every file within a deadline and a memory budget.

A thread cannot be stopped, and a parse that allocates without bound takes the whole process
(the CLI's ingest, or the service with its models) down with it. So files are parsed in child
processes, which can be killed at their deadline and capped in memory:

- A worker is a fresh interpreter running this module (``python -m ingest.parse_pool``): never a
  fork of this process, which holds torch and threads, and never one that imports this
  process's ``__main__`` again (as multiprocessing's spawn and forkserver do). It starts in
  about half a second and then parses file after file, so the common case costs one round trip
  over a socket; workers start on demand, up to the pool's size, and live as long as the pool.
- Per file, the worker caps its address space (``RLIMIT_AS``) at what it uses idle plus the
  memory budget, and its CPU time at the deadline (a backstop should this process be killed
  while the worker works); then it parses and answers the document, or the reason it failed.
- This process waits up to the deadline. Past it, the worker is killed (``SIGKILL``) and the
  file reported; a worker out of memory reports that and retires; one that dies (a crash in C,
  the OOM killer) is reported with its signal. Either way a fresh worker takes its place.
- A worker exits when its pipe closes, so a killed ingest leaves no worker behind.

One pool serves the whole process (the CLI's ingest, every upload of the service): see
:func:`shared_pool`. The limits travel with each file, so ingests with different settings share
the workers.
"""

from __future__ import annotations

import atexit
import logging
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ingest.parsers import ParseError, parse
from ingest.types import ParsedDocument

log = logging.getLogger(__name__)

_MB = 1024 * 1024
_READY = "ready"
_START_TIMEOUT_S = 120.0  # a fresh interpreter importing the parsers, on a busy machine


@dataclass(frozen=True)
class ParseLimits:
    """What one file may cost. ``memory_bytes`` None: no cap on the worker's address space."""

    max_bytes: int
    max_inflated: int
    timeout_s: float
    memory_bytes: int | None


class ParsePool:
    """Worker processes that parse files; ``parse`` is safe to call from several threads.

    ``ParsePool(2).parse(Path("a.pdf"), ParseLimits(50 << 20, 500 << 20, 120.0, 1 << 30))``
    """

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self._idle: list[_Worker] = []
        self._busy = 0
        self._ready = threading.Condition()
        self._closed = False

    def grow(self, size: int) -> None:
        with self._ready:
            self.size = max(self.size, size)
            self._ready.notify_all()

    def parse(self, path: Path, limits: ParseLimits) -> ParsedDocument:
        """The parsed file, or ParseError: bad content, past the deadline, out of memory."""
        worker = self._acquire()
        try:
            return worker.parse(path, limits)
        finally:
            self._release(worker)

    def close(self) -> None:
        with self._ready:
            self._closed = True
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.stop()

    def _acquire(self) -> _Worker:
        with self._ready:
            while True:
                if self._closed:
                    raise RuntimeError("the parse pool is closed")
                while self._idle:
                    worker = self._idle.pop()
                    if worker.alive():
                        self._busy += 1
                        return worker
                    worker.stop()
                if self._busy < self.size:
                    self._busy += 1
                    break
                self._ready.wait()
        try:
            return _Worker.start()
        except BaseException:
            with self._ready:
                self._busy -= 1
                self._ready.notify()
            raise

    def _release(self, worker: _Worker) -> None:
        with self._ready:
            self._busy -= 1
            if worker.alive() and not self._closed:
                self._idle.append(worker)
            else:
                worker.stop()
            self._ready.notify()


_shared: ParsePool | None = None
_shared_lock = threading.Lock()


def shared_pool(size: int) -> ParsePool:
    """The process's pool, started on first use, with room for at least ``size`` workers."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = ParsePool(size)
            atexit.register(_shared.close)  # workers would exit anyway (their sockets close)
        else:
            _shared.grow(size)
        return _shared


class _Worker:
    """One worker process and our end of its socket."""

    def __init__(self, process: subprocess.Popen[bytes], conn: Connection) -> None:
        self.process = process
        self.conn = conn

    @classmethod
    def start(cls) -> _Worker:
        # A fresh interpreter running this module (not multiprocessing's spawn or forkserver,
        # which import the parent's __main__ again: the CLI, with torch, or the service).
        ours, theirs = socket.socketpair()
        level = logging.getLogger().getEffectiveLevel()
        command = [sys.executable, "-m", __name__, str(theirs.fileno()), str(level)]
        # Our import path, so the worker runs this very code (a source checkout, not installed).
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        try:
            process = subprocess.Popen(
                command,
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                close_fds=True,
                env=env,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        worker = cls(process, Connection(ours.detach()))
        # Wait for it to be ready (its imports done), so that no deadline counts its start.
        try:
            if not worker.conn.poll(_START_TIMEOUT_S) or worker.conn.recv() != _READY:
                raise OSError("no ready message")
        except (EOFError, OSError) as exc:
            worker.stop()
            raise RuntimeError(f"a parse worker did not start ({exc})") from exc
        log.debug("started parse worker %s", process.pid)
        return worker

    def alive(self) -> bool:
        return self.process.poll() is None and not self.conn.closed

    def parse(self, path: Path, limits: ParseLimits) -> ParsedDocument:
        try:
            self.conn.send((str(path), limits))
            if not self.conn.poll(limits.timeout_s):
                self.stop()
                raise ParseError(
                    path,
                    f"took longer than {limits.timeout_s:g} s to parse; skipped "
                    "(limit: DOCQA_PARSE_TIMEOUT_S)",
                )
            ok, value, retire = self.conn.recv()
        except (EOFError, OSError) as exc:
            try:
                code: int | None = self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                code = None
            self.stop()
            raise ParseError(path, _death(code, limits)) from exc
        if retire:
            self.stop()
        if ok:
            return value  # type: ignore[no-any-return]
        raise ParseError(path, value)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.conn.close()


def _death(code: int | None, limits: ParseLimits) -> str:
    """Why a worker died, for the file's report."""
    if code is not None and code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        if -code == signal.SIGXCPU:
            return f"took longer than {limits.timeout_s:g} s to parse; skipped"
        if -code == signal.SIGKILL:
            return "the parser process was killed (out of memory?); skipped"
        return f"the parser process crashed ({name}); skipped"
    return f"the parser process exited unexpectedly (code {code}); skipped"


# ---------------------------------------------------------------------------- the worker
def main(argv: list[str]) -> None:
    """``python -m ingest.parse_pool FD LOG_LEVEL``: serve parse requests on socket FD."""
    _serve(Connection(int(argv[0])), int(argv[1]))


def _serve(conn: Connection, log_level: int) -> None:
    """A worker's life: parse each file sent, answer (ok, document or reason, retire)."""
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the ingest, which stops us
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # past its CPU cap a worker dumps no core
    conn.send(_READY)
    while True:
        try:
            path, limits = conn.recv()
        except (EOFError, OSError):
            return  # the ingest is gone
        reply = _parse_capped(Path(path), limits)
        try:
            conn.send(reply)
        except MemoryError:
            conn.send((False, "the parsed document is too large to hand over; skipped", True))
        except OSError:
            return
        if reply[2]:
            return


def _parse_capped(path: Path, limits: ParseLimits) -> tuple[bool, Any, bool]:
    memory = _cap_memory(limits.memory_bytes)
    cpu = _cap_cpu(limits.timeout_s)
    try:
        return True, parse(path, limits.max_bytes, limits.max_inflated), False
    except ParseError as exc:
        return False, exc.reason, False
    except MemoryError:
        budget = (limits.memory_bytes or 0) / _MB
        return False, f"needs more than {budget:g} MB to parse (DOCQA_PARSE_MEMORY_MB)", True
    except Exception as exc:  # a parser bug costs this file, and this worker
        log.exception("unexpected error parsing %s", path)
        return False, f"internal error: {type(exc).__name__}: {exc}", True
    finally:
        _uncap(resource.RLIMIT_AS, memory)
        _uncap(resource.RLIMIT_CPU, cpu)


def _cap_memory(budget: int | None) -> tuple[int, int] | None:
    """Cap the address space at its present size plus ``budget``; the old limits, to restore."""
    if budget is None:
        return None
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            used = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return None  # not Linux: no way to know the footprint, so no cap
    return _set_soft(resource.RLIMIT_AS, used + budget)


def _cap_cpu(timeout_s: float) -> tuple[int, int] | None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return _set_soft(resource.RLIMIT_CPU, int(usage.ru_utime + usage.ru_stime + timeout_s) + 2)


def _set_soft(which: int, soft: int) -> tuple[int, int] | None:
    old = resource.getrlimit(which)
    hard = old[1]
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    try:
        resource.setrlimit(which, (soft, hard))
    except (ValueError, OSError):
        return None
    return old


def _uncap(which: int, old: tuple[int, int] | None) -> None:
    if old is not None:
        resource.setrlimit(which, old)


if __name__ == "__main__":
    main(sys.argv[1:])
