"""The one place where exceptions become HTTP responses, in one JSON shape."""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.errors import ApiError
from index.errors import DocqaIndexError
from ingest.errors import IngestError
from ingest.parsers.errors import ParseError

log = logging.getLogger(__name__)


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


def _code_of(exc: Exception) -> str:
    """snake_case class name without "Error": DocumentNotFoundError → document_not_found."""
    name = type(exc).__name__.removesuffix("Error").removesuffix("_")
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def api_error_response(exc: ApiError) -> JSONResponse:
    """The response of an ``ApiError``; middleware (outside the handlers) uses it too."""
    body: dict[str, object] = {**exc.extra, **error_body(exc.code, exc.message)}
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return api_error_response(exc)

    @app.exception_handler(ValidationError)
    async def _model_validation(_: Request, exc: ValidationError) -> JSONResponse:
        # A body rebuilt inside a route (chat messages into an ask request) failed validation.
        return await _validation(_, RequestValidationError(exc.errors()))

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else err.get("msg", ""))
        return JSONResponse(error_body("invalid_request", "; ".join(parts)), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = "not_found" if exc.status_code == 404 else f"http_{exc.status_code}"
        return JSONResponse(
            error_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers
        )

    async def _layer_error(_: Request, exc: Exception) -> JSONResponse:
        status = int(getattr(exc, "status_code", 500))
        if status >= 500:
            log.error("%s: %s", type(exc).__name__, exc)
        return JSONResponse(error_body(_code_of(exc), str(exc)), status_code=status)

    for layer_error in (DocqaIndexError, IngestError, ParseError):
        app.add_exception_handler(layer_error, _layer_error)
