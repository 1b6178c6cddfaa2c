"""The service's errors. Each knows its HTTP status and code; one handler maps them all.

Core code raises these (or the index/ingest errors, which carry ``status_code`` too); routes
never raise ``HTTPException``. Every error reaches the client as
``{"error": {"code": ..., "message": ...}}``.
"""

from __future__ import annotations


class ApiError(Exception):
    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadRequestError(ApiError):
    status_code = 400
    code = "bad_request"


class UnauthorizedError(ApiError):
    status_code = 401
    code = "unauthorized"


class NotFoundError(ApiError):
    status_code = 404
    code = "not_found"


class PayloadTooLargeError(ApiError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaError(ApiError):
    status_code = 415
    code = "unsupported_media_type"


class ValidationFailedError(ApiError):
    status_code = 422
    code = "invalid_request"


class RateLimitedError(ApiError):
    status_code = 429
    code = "rate_limited"


class OverloadedError(ApiError):
    status_code = 503
    code = "overloaded"


class NotReadyError(ApiError):
    status_code = 503
    code = "not_ready"
