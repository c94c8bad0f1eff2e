"""The FastAPI app: :func:`create_app` wires the routes (``service/routes.py``), the error handlers and
the model loading at start-up.

Models load in a background thread when the app starts (``/readyz`` answers 503 until they are loaded
and warmed up). Every error is JSON ``{"error", "message"}``: the service's exceptions carry their
status (``service/errors.py``), FastAPI's validation errors are 422, anything unexpected is a logged 500.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.errors import InvalidParameterError, PoseServiceError
from service.pipeline import PosePipeline
from service.routes import error_response, router
from service.settings import Settings
from service.state import ServiceState

log = logging.getLogger("service")


def create_app(settings: Settings | None = None, pipeline: PosePipeline | None = None) -> FastAPI:
    """Build the app.

    Args:
        settings: service settings (default: from the environment).
        pipeline: an already-built pipeline (tests, evaluation); else built from ``settings`` when the app starts.
    """
    state = ServiceState(settings or Settings(), pipeline)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        threading.Thread(target=state.load, name="model-loader", daemon=True).start()
        yield
        state.close()

    app = FastAPI(title="poseserve", version="0.1.0", lifespan=lifespan)
    app.state.service = state
    app.include_router(router)

    @app.exception_handler(PoseServiceError)
    async def _service_error(request: Request, exc: PoseServiceError):
        if exc.status >= 500:
            log.error("%s %s: %s", request.method, request.url.path, exc)
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        parts = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()]
        return error_response(InvalidParameterError("; ".join(parts) or "invalid request"))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        err = PoseServiceError(str(exc.detail))
        err.status, err.code = exc.status_code, "http_error"
        return error_response(err)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(PoseServiceError(f"internal error: {type(exc).__name__}"))

    @app.middleware("http")
    async def _pose_metrics(request: Request, call_next):
        if request.url.path != "/pose":
            return await call_next(request)
        t0, status = time.perf_counter(), 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            state.requests.labels(str(status)).inc()
            state.latency.observe(time.perf_counter() - t0)

    return app
