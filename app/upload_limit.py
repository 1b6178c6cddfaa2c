"""Refuse an upload over the size limit while its body arrives (413), not once it is on disk.

FastAPI parses a multipart body whole, into temporary files, before the route runs, so a size
check in the route comes after the disk has taken the whole body. This ASGI middleware stands in
front of the upload route: a ``Content-Length`` over the limit is answered at once, before any of
the body is read; a body without one (``Transfer-Encoding: chunked``) is counted as it arrives
and refused the moment it passes the limit, and nothing more of it is read. The limit is the file
limit plus a margin for the multipart framing and the small form fields; the route still checks
the file's own size exactly.

The 413 says ``Connection: close``, so the server drops the connection instead of reading (and
throwing away) the rest of a large body.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.error_handlers import api_error_response
from app.errors import PayloadTooLargeError
from config.settings import Settings

UPLOAD_PATH = re.compile(r"^/v1/collections/[^/]+/documents/?$")
FORM_MARGIN = 64 * 1024  # multipart boundaries, part headers, the file name, small form fields


def file_limit_bytes(settings: Settings) -> int:
    return int(settings.max_file_mb * 1024 * 1024)


def upload_limit_bytes(settings: Settings) -> int:
    """The most bytes an upload's whole request body may have."""
    return file_limit_bytes(settings) + FORM_MARGIN


class _BodyTooLarge(Exception):
    """Raised from ``receive`` past the limit, so the app stops reading the body."""


class UploadLimit:
    """ASGI middleware; ``limit`` is read per request, so the settings in force apply."""

    def __init__(self, app: ASGIApp, limit: Callable[[], int]) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _is_upload(scope):
            await self.app(scope, receive, send)
            return
        limit = self.limit()
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(scope, receive, send, f"the upload is {declared} bytes", limit)
            return
        received = 0
        refused = started = False

        async def counted() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    raise _BodyTooLarge
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the app's own answer to the aborted read (FastAPI says 400); ours is 413
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not refused:
                raise
        if refused and not started:
            await _refuse(scope, receive, send, f"the upload passed {received} bytes", limit)


def _is_upload(scope: Scope) -> bool:
    return (
        scope["type"] == "http"
        and scope.get("method") == "POST"
        and UPLOAD_PATH.match(scope.get("path", "")) is not None
    )


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length itself
    return None


async def _refuse(scope: Scope, receive: Receive, send: Send, what: str, limit: int) -> None:
    file_limit = limit - FORM_MARGIN
    error = PayloadTooLargeError(
        f"{what}, over the limit of {limit} (DOCQA_MAX_FILE_MB: {file_limit} bytes per file, "
        f"plus {FORM_MARGIN} for the form)",
        headers={"Connection": "close"},
    )
    await api_error_response(error)(scope, receive, send)
