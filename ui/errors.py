"""Every failure of a call to the docqa API, as one error with a message a person can act on.

The API answers errors as ``{"error": {"code", "message"}}`` with a status code; an unreachable
server, a timeout or a body that is not the API's shape become the same ``UiError``. The UI shows
``str(error)``, never a stack trace.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any


class UiError(Exception):
    """A readable failure of one API call; ``status`` is the HTTP status when there was one."""

    def __init__(self, message: str, status: int | None = None, code: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code

    def __str__(self) -> str:
        return self.message


def _api_error(body: str) -> tuple[str, str] | None:
    """(code, message) from the API's error shape, or None when the body is something else."""
    try:
        data: Any = json.loads(body)
    except ValueError:
        return None
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error.get("code") or ""), error["message"]
    return None


def _retry_hint(headers: Mapping[str, str]) -> str:
    after = headers.get("retry-after", "").strip()
    return f" Retry in {after} s." if after.isdigit() else " Retry in a moment."


def error_from_response(status: int, headers: Mapping[str, str], body: str) -> UiError:
    """The readable error for an HTTP error answer of the API.

    >>> str(error_from_response(404, {}, '{"error": {"code": "not_found", "message": "no x"}}'))
    'Not found: no x'
    """
    parsed = _api_error(body)
    code, detail = parsed if parsed else ("", "")
    if status == 401:
        message = (
            "The docqa server refused the UI's API key (401). Give the UI a valid key "
            "(DOCQA_UI_API_KEY, or `docqa ui --api-key`)."
        )
    elif status == 429:
        message = "Too many requests: the rate limit of this API key is reached." + _retry_hint(
            headers
        )
    elif status == 503 and code == "not_ready":
        message = "The docqa server is still loading its models." + _retry_hint(headers)
    elif status == 503:
        busy = detail or "the server is busy"
        message = f"The docqa server is busy ({busy})." + _retry_hint(headers)
    elif parsed:
        titles = {
            400: "Bad request",
            404: "Not found",
            413: "File too large",
            415: "File type not accepted",
            422: "Invalid request",
        }
        message = f"{titles.get(status, f'Error {status}')}: {detail}"
    else:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "unexpected status"
        message = f"The server answered HTTP {status} ({phrase}), not a docqa API response."
    return UiError(message, status=status, code=code)
