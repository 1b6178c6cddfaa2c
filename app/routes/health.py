"""Liveness, readiness and metrics: open to probes, never behind API keys (except /metrics,
when ``DOCQA_PROTECT_METRICS`` is set)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.deps import StateDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Models loading or index unreachable."}})
def readyz(state: StateDep) -> JSONResponse:
    """Ready when the models are loaded and the index answers."""
    if state.backend is None:
        reason = state.load_error or "loading models"
        return JSONResponse({"status": "not ready", "reason": reason}, status_code=503)
    try:
        collections = state.backend.collections()
    except Exception as exc:  # any store failure means not ready, with its reason
        return JSONResponse({"status": "not ready", "reason": str(exc)}, status_code=503)
    return JSONResponse({"status": "ready", "collections": len(collections)})


@router.get("/metrics")
def metrics(state: StateDep) -> Response:
    """Prometheus exposition format."""
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
