"""The chat UI's HTTP client for the docqa API: asks (streamed), collections, uploads and the
ingest jobs they start.

This is the UI's only way to the service. Each call opens a short-lived ``httpx.AsyncClient``
(the UI runs inside Gradio's event loop, which may be the API server's own), sends the API key as
``Authorization: Bearer``, and turns every failure into a ``UiError`` with a readable message:
HTTP errors in the API's ``{"error": {"code", "message"}}`` shape, an unreachable server, a
timeout, or a body that is not the API's. Loopback calls ignore proxy environment variables, so an
``HTTP_PROXY`` meant for the internet cannot capture the UI's calls to its own server.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import httpx

from ui.errors import UiError, error_from_response
from ui.sse import SseEvent, SseParser
from ui.types import Answer, Collection, Job

log = logging.getLogger(__name__)

T = TypeVar("T")
Turn = dict[str, str]  # {"role": "user" | "assistant", "content": ...}
HISTORY_TURNS = 10  # the API accepts 50; the follow-up rewrite reads the last 6


def is_loopback(url: str) -> bool:
    """True when ``url`` points at this machine.

    >>> is_loopback("http://127.0.0.1:8000"), is_loopback("http://docs.example.com")
    (True, False)
    """
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class DocqaClient:
    """Calls one docqa server. ``transport`` lets tests answer without a network."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout_s: float = 300.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key or None
        self.timeout_s = timeout_s
        self._transport = transport

    # ------------------------------------------------------------------ API calls
    async def collections(self) -> list[Collection]:
        """``GET /v1/collections``, sorted by name."""
        async with self._session() as http:
            response = await self._send(http, http.build_request("GET", "/v1/collections"))
            data = self._json(response)
        items = self._parse(lambda: [Collection.from_json(c) for c in data["collections"]])
        return sorted(items, key=lambda c: c.name)

    async def upload(
        self, collection: str, path: Path, filename: str | None = None, *, replace: bool = True
    ) -> Job:
        """``POST /v1/collections/{collection}/documents`` with the file: its ingest job (202),
        which ``follow`` watches until the report is there.

        The document's source is its file name. ``replace`` is on for the UI: a person who picks
        a file for a collection means to put that file in it, so a different document of the same
        name is replaced, and the report says so ("updated"). Off, that upload is a 409.
        """
        name = filename or path.name
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise UiError(f"Cannot read the uploaded file {name!r}: {exc.strerror}") from exc
        async with self._session() as http:
            request = http.build_request(
                "POST",
                f"/v1/collections/{_segment(collection)}/documents",
                files={"file": (name, content)},
                data={"replace": "true" if replace else "false"},
            )
            data = self._json(await self._send(http, request))
        return self._parse(lambda: Job.from_json(data))

    async def job(self, job_id: str) -> Job:
        """``GET /v1/jobs/{job_id}``: the job's state, progress, and report once it has run."""
        async with self._session() as http:
            return await self._job(http, job_id)

    async def follow(
        self, job: Job, *, poll_s: float = 0.5, limit_s: float | None = None
    ) -> AsyncIterator[Job]:
        """The job each time its state or progress changes, polled every ``poll_s`` seconds,
        until it has finished or ``limit_s`` (default: the client's timeout) has passed; then the
        last job yielded (or ``job``) is still unfinished, and it continues on the server."""
        deadline = time.monotonic() + (self.timeout_s if limit_s is None else limit_s)
        async with self._session() as http:
            while not job.finished and (left := deadline - time.monotonic()) > 0:
                await asyncio.sleep(min(poll_s, left))
                current = await self._job(http, job.id)
                if current != job:
                    yield current
                job = current

    async def ask_stream(
        self,
        question: str,
        *,
        collection: str | None = None,
        top_k: int = 5,
        history: Sequence[Turn] = (),
    ) -> AsyncIterator[str | Answer]:
        """``POST /v1/ask`` with ``stream: true``: yields each token's text, then the ``Answer``.

        Raises ``UiError`` for an HTTP error, an ``error`` event, or a stream that ends without
        its ``final`` event.
        """
        body: dict[str, Any] = {"question": question, "top_k": int(top_k), "stream": True}
        if collection:
            body["collection"] = collection
        if history:
            body["history"] = list(history)[-HISTORY_TURNS:]
        async with self._session() as http:
            request = http.build_request("POST", "/v1/ask", json=body)
            response = await self._send(http, request, stream=True)
            try:
                if "text/event-stream" not in response.headers.get("content-type", ""):
                    # A server or proxy that ignored `stream`: the whole answer at once.
                    await response.aread()
                    data = self._json(response)
                    yield self._parse(lambda: Answer.from_json(data))
                    return
                async for item in self._events(response):
                    yield item
            finally:
                await response.aclose()

    # ------------------------------------------------------------------ plumbing
    @asynccontextmanager
    async def _session(self) -> AsyncIterator[httpx.AsyncClient]:
        headers = {"Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        try:
            client = httpx.AsyncClient(
                base_url=self.base_url,
                headers=headers,
                timeout=httpx.Timeout(self.timeout_s, connect=10.0),
                transport=self._transport,
                trust_env=not is_loopback(self.base_url),
            )
        except (httpx.InvalidURL, httpx.UnsupportedProtocol, ValueError) as exc:
            raise UiError(f"The API address {self.base_url!r} is not a valid http(s) URL.") from exc
        async with client:
            try:
                yield client
            except httpx.TimeoutException as exc:
                raise self._timeout() from exc
            except httpx.TransportError as exc:
                raise self._broken(exc) from exc

    async def _job(self, http: httpx.AsyncClient, job_id: str) -> Job:
        request = http.build_request("GET", f"/v1/jobs/{_segment(job_id)}")
        data = self._json(await self._send(http, request))
        return self._parse(lambda: Job.from_json(data))

    async def _send(
        self, http: httpx.AsyncClient, request: httpx.Request, stream: bool = False
    ) -> httpx.Response:
        """The response, or a ``UiError`` for a failure or an HTTP error."""
        try:
            response = await http.send(request, stream=stream)
        except httpx.ConnectError as exc:
            log.warning("cannot reach %s: %s", self.base_url, exc)
            raise UiError(
                f"Cannot reach the docqa server at {self.base_url} ({_reason(exc)}). "
                "Is it running, and is the address right?"
            ) from exc
        except httpx.UnsupportedProtocol as exc:
            raise UiError(f"The API address {self.base_url!r} is not a valid http(s) URL.") from exc
        except httpx.TimeoutException as exc:
            raise self._timeout() from exc
        except httpx.TransportError as exc:
            raise self._broken(exc) from exc
        if response.status_code >= 400:
            body = (await response.aread()).decode("utf-8", "replace")
            await response.aclose()
            error = error_from_response(response.status_code, response.headers, body)
            log.warning(
                "%s %s -> %s: %s", request.method, request.url.path, error.status, error.message
            )
            raise error
        return response

    async def _events(self, response: httpx.Response) -> AsyncIterator[str | Answer]:
        parser = SseParser()
        async for line in response.aiter_lines():
            event = parser.feed(line)
            if event is not None and (item := self._event(event)) is not None:
                yield item
                if isinstance(item, Answer):
                    return
        last = parser.close()
        if last is not None and isinstance(item := self._event(last), Answer):
            yield item
            return
        raise UiError(
            "The answer stream ended before the final answer (the server may have restarted). "
            "Ask again."
        )

    def _event(self, event: SseEvent) -> str | Answer | None:
        if event.event not in {"token", "final", "error"}:
            return None  # comments, keep-alives and future event types
        data = self._parse(lambda: json.loads(event.data))
        if event.event == "token":
            return str(data.get("text", "")) if isinstance(data, dict) else ""
        if event.event == "final":
            return self._parse(lambda: Answer.from_json(data))
        error = data.get("error") if isinstance(data, dict) else None
        detail = error.get("message") if isinstance(error, dict) else None
        code = str(error.get("code", "")) if isinstance(error, dict) else ""
        raise UiError(f"The answer failed: {detail or 'the server reported an error'}", code=code)

    def _json(self, response: httpx.Response) -> Any:
        return self._parse(response.json)

    def _parse(self, build: Callable[[], T]) -> T:
        try:
            return build()
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("unexpected response from %s: %s", self.base_url, exc)
            raise UiError(
                f"The server at {self.base_url} sent a response that is not docqa's ({exc}). "
                "Is this the address of a docqa server?"
            ) from exc

    def _timeout(self) -> UiError:
        return UiError(
            f"The docqa server at {self.base_url} did not answer within {self.timeout_s:g} s."
        )

    def _broken(self, exc: httpx.TransportError) -> UiError:
        log.warning("connection to %s failed: %s", self.base_url, exc)
        return UiError(
            f"The connection to the docqa server at {self.base_url} failed ({_reason(exc)})."
        )


def _reason(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[-1] if text else type(exc).__name__


def _segment(name: str) -> str:
    """A collection name as one path segment (the API validates the name itself)."""
    return quote(name.strip(), safe="")
