"""The FastAPI application: ``create_app(settings, build_backend)``.

Models and stores load in the lifespan, in a worker thread, so /healthz answers at once and
/readyz says 503 until they are ready. The backend factory comes from the composition root
(``wiring.compose``), so this module never decides which models to build. Unless
``DOCQA_WORKER=false``, an ingest worker runs in a thread once the backend is ready (uploads
are jobs: ``ingest/worker.py``); shutdown lets its job in hand finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request, Response

from app import error_handlers
from app.answer_observer import AnswerObserver
from app.backend import Backend
from app.errors import ApiError
from app.routes import ask, chat, documents, health, jobs, retrieve
from app.security import check_api_key, require_api_key
from app.state import ServiceState
from app.upload_limit import UploadLimit, upload_limit_bytes
from config.settings import Settings
from ingest.worker import JobWorker

log = logging.getLogger(__name__)

BackendFactory = Callable[[Settings], Backend]
# How long shutdown waits for the in-process worker's job in hand; past it the job's lease
# expires and a worker (this one, restarted) runs it again, duplicating nothing.
WORKER_STOP_TIMEOUT_S = 30.0


def create_app(settings: Settings, build_backend: BackendFactory) -> FastAPI:
    state = ServiceState(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_load(state, build_backend))
        yield
        task.cancel()
        if state.worker is not None:
            await asyncio.to_thread(state.worker.stop, WORKER_STOP_TIMEOUT_S)
        if state.backend is not None:
            state.backend.close()

    app = FastAPI(
        title="docqa",
        version="0.1.0",
        description="Answers from your own documents, with citations.",
        lifespan=lifespan,
    )
    app.state.docqa = state
    error_handlers.install(app)
    app.include_router(health.router)
    protected = [Depends(require_api_key)]
    app.include_router(retrieve.router, dependencies=protected)
    app.include_router(documents.router, dependencies=protected)
    app.include_router(jobs.router, dependencies=protected)
    app.include_router(ask.router, dependencies=protected)
    app.include_router(chat.router, dependencies=protected)

    # Inside `measure`, so a refused upload is counted too.
    app.add_middleware(UploadLimit, limit=lambda: upload_limit_bytes(state.settings))

    @app.middleware("http")
    async def measure(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        denied = _metrics_denied(state, request)
        response = denied if denied is not None else await call_next(request)
        # The route template, not the raw path, keeps label values bounded.
        route = request.scope.get("route")
        endpoint = "/metrics" if denied is not None else str(getattr(route, "path", "unmatched"))
        state.metrics.requests.labels(endpoint, str(response.status_code)).inc()
        state.metrics.request_latency.labels(endpoint).observe(time.perf_counter() - started)
        return response

    return app


def _metrics_denied(state: ServiceState, request: Request) -> Response | None:
    """The 401 or 429 of a /metrics request without a valid key, when DOCQA_PROTECT_METRICS.

    /metrics belongs to the health router, which has no key dependency; the check runs in
    middleware, outside the exception handlers, so it answers here, in their shape.
    """
    if request.url.path != "/metrics" or not state.settings.protect_metrics:
        return None
    try:
        check_api_key(state, request)
    except ApiError as exc:
        return error_handlers.api_error_response(exc)
    return None


async def _load(state: ServiceState, build_backend: BackendFactory) -> None:
    try:
        backend = await asyncio.to_thread(build_backend, state.settings)
    except Exception as exc:  # reported by /readyz; the process stays up to say why
        log.exception("loading the backend failed")
        state.load_error = f"{type(exc).__name__}: {exc}"
        return
    embedder = backend.embedder
    state.metrics.watch_cache(lambda: (embedder.hits, embedder.misses))
    with contextlib.suppress(RuntimeError):  # retrieval-only backends have no generator
        asks = backend.asks
        asks.queue.on_depth = state.metrics.queue_depth.set
        asks.observers.append(AnswerObserver(state.metrics, state.monitor, state.review))
        generator = backend.answers.generator
        state.metrics.model.info(
            {
                "generator": generator.model_id,
                "engine": generator.engine,
                "quantization": generator.quantization,
                "embedder": embedder.model_id,
                "profile": state.settings.profile,
            }
        )
    state.metrics.watch_jobs(backend.jobs.counts)
    state.backend = backend
    if state.settings.worker:
        worker = JobWorker(
            backend.jobs, backend.ingestor, backend.manifest, lease_s=state.settings.job_lease_s
        )
        worker.start()
        state.worker = worker
    log.info("docqa ready")
