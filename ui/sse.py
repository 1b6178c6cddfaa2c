"""A server-sent events parser, fed one line at a time (as ``httpx``'s ``aiter_lines`` gives them).

It follows the parts of the WHATWG event-stream format the docqa API uses and tolerates the rest:
``event:`` names the event (default ``message``), ``data:`` lines are joined with newlines, a blank
line dispatches, lines starting with ``:`` are comments, other fields (``id``, ``retry``) are
ignored. One space after the colon is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SseEvent:
    event: str
    data: str


@dataclass
class SseParser:
    """Incremental parser: ``feed`` each line; it returns an event when a blank line ends one.

    >>> p = SseParser()
    >>> [p.feed(x) for x in ["event: token", 'data: {"text": "Hi"}', ""]][-1]
    SseEvent(event='token', data='{"text": "Hi"}')
    """

    _event: str = ""
    _data: list[str] = field(default_factory=list)

    def feed(self, line: str) -> SseEvent | None:
        line = line.rstrip("\r\n")
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None

    def close(self) -> SseEvent | None:
        """The last event when the stream ended without its blank line."""
        return self._dispatch()

    def _dispatch(self) -> SseEvent | None:
        if not self._data and not self._event:
            return None
        event = SseEvent(self._event or "message", "\n".join(self._data))
        self._event, self._data = "", []
        return event
