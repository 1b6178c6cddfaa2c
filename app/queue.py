"""Generation runs off the event loop, ``workers`` at a time, behind a bounded queue.

One model in one process serves one generation at a time (a second would only slow both on a
CPU, and fight for memory on a GPU). A remote generator (an OpenAI-compatible server) runs
``DOCQA_GENERATOR_CONCURRENCY`` at once, so the server's batching is fed. Requests wait in a
bounded queue; when it is full the service answers 503 with ``Retry-After`` at once instead of
letting latency grow without bound.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from app.errors import OverloadedError

T = TypeVar("T")


class GenerationQueue:
    def __init__(
        self,
        max_pending: int,
        on_depth: Callable[[int], None] | None = None,
        workers: int = 1,
    ) -> None:
        # ``on_depth`` may be set later (the HTTP layer hangs its gauge on a built service).
        self.max_pending = max(max_pending, workers)  # waiting plus running
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="generate")
        self._pending = 0
        self._lock = threading.Lock()
        self.on_depth = on_depth

    @property
    def depth(self) -> int:
        return self._pending

    def submit(self, fn: Callable[[], T], retry_after_s: int = 5) -> Future[T]:
        with self._lock:
            if self._pending >= self.max_pending:
                raise OverloadedError(
                    f"the server is busy ({self._pending} generations queued); retry later",
                    headers={"Retry-After": str(retry_after_s)},
                )
            self._pending += 1
            self._report()
        future = self._pool.submit(fn)
        future.add_done_callback(self._done)
        return future

    def run(self, fn: Callable[[], T]) -> T:
        """Submit and wait, for a caller on a worker thread (the reranker inside retrieval): it
        takes its turn with the generations, and a full queue refuses it the same way."""
        return self.submit(fn).result()

    def _done(self, _: Future[T]) -> None:
        with self._lock:
            self._pending -= 1
            self._report()

    def _report(self) -> None:
        if self.on_depth is not None:
            self.on_depth(self._pending)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
