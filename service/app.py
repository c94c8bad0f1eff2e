"""The FastAPI app: :func:`create_app` wires the routes (``service/routes.py``), the request guard
(``service/middleware.py``), CORS, the error handlers and the model loading at start-up.

Models load in a background thread when the app starts (``/readyz`` answers 503 until they are loaded
and warmed up). Every error is JSON ``{"error", "message"}``: the service's exceptions carry their
status and headers (``core/errors.py``), FastAPI's validation errors are 422, anything unexpected is a
500 logged with its traceback. Expected faults are counted, not logged as errors: client errors (4xx),
overload (503), deadlines (504) and disconnects.
"""

from __future__ import annotations

import logging
import threading
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import (
    ClientDisconnectedError,
    DeadlineExceededError,
    InvalidParameterError,
    NotReadyError,
    OverloadedError,
    PoseServiceError,
    ShuttingDownError,
)
from core.settings import Settings
from core.version import __version__
from inference.pipeline import PosePipeline
from service.docs import mount_docs
from service.middleware import RequestGuard
from service.observability import setup_tracing
from service.page import mount_page
from service.parsing import MULTIPART_SLACK
from service.routes import error_response, router
from service.state import ServiceState
from service.stream import router as stream_router
from service.video import router as video_router

log = logging.getLogger("service")


def _add_routes_and_middleware(app: FastAPI, state: ServiceState) -> None:
    """The routes (images, video, the WebSocket stream, the demo page), the request guard (body limits by path) and CORS."""
    settings = state.settings
    for r in (router, video_router, stream_router):
        app.include_router(r)
    if settings.page_enabled:
        mount_page(app)
    app.add_middleware(
        RequestGuard,
        state=state,
        max_body_bytes=settings.max_upload_bytes + MULTIPART_SLACK,
        body_limits={path: settings.video_max_bytes + MULTIPART_SLACK for path in ("/pose/video", "/v1/pose/video")},
    )
    if settings.cors_allow_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_allow_origins,
            allow_methods=["GET", "POST"],
            expose_headers=["Content-Disposition", "X-Request-ID"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-ID"],
        )


def create_app(settings: Settings | None = None, pipeline: PosePipeline | None = None) -> FastAPI:
    """Build the app.

    Args:
        settings: service settings (default: from the environment).
        pipeline: an already-built pipeline (tests, evaluation); else built from ``settings`` when the app starts.

    Raises:
        ValueError: the API key file cannot be read.
    """
    settings = settings or Settings()
    state = ServiceState(settings, pipeline)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        threading.Thread(target=state.load, name="model-loader", daemon=True).start()
        yield
        state.close()

    docs = settings.docs_enabled
    app = FastAPI(
        title="poseserve",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,  # served from local files by service/docs.py
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.state.service = state
    if docs:
        mount_docs(app, "/openapi.json")
    _add_routes_and_middleware(app, state)

    @app.exception_handler(PoseServiceError)
    async def _service_error(request: Request, exc: PoseServiceError):
        if isinstance(exc, OverloadedError):
            state.rejections.labels(exc.reason).inc()
        elif isinstance(exc, NotReadyError):
            state.rejections.labels("not_ready").inc()
        elif isinstance(exc, DeadlineExceededError):
            state.deadline_expiries.inc()
        elif isinstance(exc, ClientDisconnectedError):
            state.disconnects.inc()
        elif isinstance(exc, ShuttingDownError):
            log.warning("%s %s: %s", request.method, request.url.path, exc)
        elif exc.status >= 500:
            log.error("%s %s: %s", request.method, request.url.path, exc)  # a fault of ours, without traceback
        if exc.status in (499, 504):
            log.info("%s %s: %s", request.method, request.url.path, exc)
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

    state.tracing = setup_tracing(app, settings)
    return app
