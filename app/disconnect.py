"""Stop work for a client that has gone: generation is the expensive part, and a queue slot.

A streamed answer learns of a disconnect from Starlette, which cancels the stream. A plain JSON
request does not: nothing reads from the connection while the handler runs, so a watcher waits
on the request's ``receive`` beside it (the body is already read, so the next message is the
disconnect) and cancels the work; the answer flow then sets its cancel event and the generator
stops within a token or a prompt chunk.

``request.is_disconnected()`` cannot serve: it only looks for a message available at once, and
behind a ``BaseHTTPMiddleware`` (our metrics middleware) the wrapped ``receive`` always yields
first, so it never sees the disconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

from starlette.requests import Request

from app.errors import ClientClosedError

T = TypeVar("T")


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """``await work``, cancelled with `ClientClosedError` if the client disconnects first."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_wait_for_disconnect(request))
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        watcher.cancel()
    if task in done:
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task  # let the answer flow set its cancel event before we answer
    raise ClientClosedError("the client closed the connection")


async def _wait_for_disconnect(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return
