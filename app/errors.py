"""The service's errors. Each knows its HTTP status and code; one handler maps them all.

Core code raises these (or the index/ingest errors, which carry ``status_code`` too); routes
never raise ``HTTPException``. Every error reaches the client as
``{"error": {"code": ..., "message": ...}}``.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """``extra``: more top-level fields of the error body beside ``error`` (e.g. a report)."""

    status_code = 500
    code = "internal_error"

    def __init__(
        self,
        message: str,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}
        self.extra = extra or {}


class UnauthorizedError(ApiError):
    status_code = 401
    code = "unauthorized"


class NotFoundError(ApiError):
    status_code = 404
    code = "not_found"


class ConflictError(ApiError):
    status_code = 409
    code = "conflict"


class PayloadTooLargeError(ApiError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaError(ApiError):
    status_code = 415
    code = "unsupported_media_type"


class ValidationFailedError(ApiError):
    status_code = 422
    code = "invalid_request"


class DocumentRejectedError(ApiError):
    """A well-formed upload whose file could not be ingested (corrupt, encrypted, no text)."""

    status_code = 422
    code = "ingest_failed"


class RateLimitedError(ApiError):
    status_code = 429
    code = "rate_limited"


class OverloadedError(ApiError):
    status_code = 503
    code = "overloaded"


class NotReadyError(ApiError):
    status_code = 503
    code = "not_ready"


class ClientClosedError(ApiError):
    """The client went away before its answer was ready (nginx's 499); nobody reads the body."""

    status_code = 499
    code = "client_closed_request"
