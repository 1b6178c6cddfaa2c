"""Errors of the ingest layer. Each knows its HTTP status, for the service's one error handler."""

from __future__ import annotations


class IngestError(Exception):
    status_code = 500


class DocumentNotFoundError(IngestError):
    status_code = 404
