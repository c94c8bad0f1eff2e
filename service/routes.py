"""The HTTP routes: ``POST /v1/pose`` (alias ``/pose``), ``GET /healthz``, ``GET /readyz``, ``GET /v1/models``, ``GET /metrics``.

``POST /v1/pose`` is admit -> parse -> pipeline -> encode: admission control (``service/admission.py``) takes a
slot when the body starts arriving, before the rest of it is read; request parsing is ``service/parsing.py``; the work is ``PosePipeline.run``
in the thread pool (pose crops of concurrent requests meet in its batcher), watched for the deadline and for
the client going away; the answer is :func:`pose_answer` (``PoseResponse``'s fields; or a rendered JPEG). Health, readiness and
metrics are ``async`` and touch no model, so they never wait behind inference. Errors are raised as the
exceptions of ``core/errors.py`` and answered by the handlers in ``service/app.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import TypeAdapter
from starlette.concurrency import run_in_threadpool

from core.errors import (
    ModelLoadError,
    NotReadyError,
    RequestTimeoutError,
    WorkerStoppedError,
    public_facts,
    public_message,
)
from inference.context import RequestContext
from inference.encoding import image_answer
from inference.render import render_jpeg
from service.deps import APIKeyDep, PipelineDep, SettingsDep, StateDep
from service.observability import stage_spans
from service.parsing import check_declared_size, parse_bboxes, read_upload
from service.schemas import ErrorResponse, HealthResponse, ModelsResponse, PoseResponse

router = APIRouter()

#: How often a running request checks for its deadline and a disconnected client (seconds).
WATCH_INTERVAL_S = 0.05


def error_response(exc: Exception) -> JSONResponse:
    """``{"error": code, "message": text}`` with the exception's HTTP status and headers (``core/errors.py``);
    absolute server paths are cut from the message (``public_message``)."""
    status, code = getattr(exc, "status", 500), getattr(exc, "code", "internal_error")
    body = ErrorResponse(error=code, message=public_message(str(exc))).model_dump()
    return JSONResponse(status_code=status, content=body, headers=getattr(exc, "headers", None) or None)


#: pydantic's JSON encoder for plain dicts (no model: nothing is validated)
_ANSWER_JSON = TypeAdapter(dict[str, Any])


def pose_answer(result, pose_name: str, keypoint_names: list[str]) -> Response:
    """``POST /pose``'s JSON answer: ``inference.encoding.image_answer``'s dict written by pydantic's JSON encoder.

    The dict already has ``PoseResponse``'s fields and types (validated into the model and dumped, it is unchanged:
    ``tests/inference/test_encoding.py``), so validating it into the model and FastAPI validating the model again
    before encoding would only cost time: 0.20 -> 0.14 ms of CPU for 32 people, FastAPI's second validation not
    counted (``bench/RESULTS.md``, third pass).
    ``PoseResponse`` stays the route's documented ``response_model``.
    """
    return Response(
        _ANSWER_JSON.dump_json(image_answer(result, pose_name, keypoint_names)), media_type="application/json"
    )


async def run_watched(request: Request, ctx: RequestContext, fn: Callable[..., Any], *args) -> Any:
    """``fn(*args)`` in the thread pool, given up on when the deadline passes or the client disconnects.

    The worker thread cannot be interrupted: ``ctx`` is cancelled, and the pipeline stops at its next check
    (the batcher drops the request's queued crops). The request's budget returns when the worker is done.

    Raises:
        DeadlineExceededError / ClientDisconnectedError: as ``ctx.check``; what ``fn`` raises.
    """
    ctx.start_work()

    def work():
        try:
            return fn(*args)
        finally:
            ctx.release()

    task = asyncio.ensure_future(run_in_threadpool(work))
    task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved here when abandoned
    while True:
        done, _ = await asyncio.wait({task}, timeout=min(WATCH_INTERVAL_S, max(ctx.remaining_s, 0.001)))
        if done:
            return task.result()
        if await request.is_disconnected():
            ctx.cancel("disconnected")
        ctx.check()


async def body_started(request: Request) -> Request:
    """Wait for the first message of the request body (uvicorn answers ``Expect: 100-continue`` here), then return a
    request that replays it: admission takes its slot only once the body starts arriving, so connections that send
    headers and no body (bounded by the read timeout, 408) cannot hold the slots of clients that do.

    Raises:
        RequestTimeoutError: no body data within ``POSE_READ_TIMEOUT_S`` (the request guard's read timeout).
    """
    first = await request.receive()
    replayed = False

    async def receive():
        nonlocal replayed
        if not replayed:
            replayed = True
            return first
        return await request.receive()

    return Request(request.scope, receive)


@router.get("/healthz", response_model=HealthResponse, responses={503: {"model": ErrorResponse}})
async def healthz(state: StateDep):
    """200 while the process can serve (never waits for the models); 503 ``worker_stopped`` when a batcher's worker
    thread stopped (every request would wait on it: a liveness probe should restart the process)."""
    stopped = state.stopped_workers()
    if stopped:
        return error_response(WorkerStoppedError("batcher worker stopped: " + "; ".join(stopped)))
    return {"status": "ok"}


@router.get("/readyz", response_model=HealthResponse, responses={503: {"model": ErrorResponse}})
async def readyz(state: StateDep):
    """200 once both models are loaded and warmed up; 503 while loading (with ``Retry-After``), after a failed load
    (no ``Retry-After``: retrying will not help; the message says what failed), when a batcher's worker stopped or
    the pose model keeps timing out (``ServiceState.unready_reason``)."""
    if state.ready:
        reason = state.unready_reason()
        if reason is not None:
            return error_response(NotReadyError(reason))
        return {"status": "ready"}
    if state.error:
        return error_response(ModelLoadError(state.error))
    return error_response(NotReadyError("models are loading"))


@router.get(
    "/v1/models",
    response_model=ModelsResponse,
    response_model_exclude_unset=True,
    responses={401: {"model": ErrorResponse}, 503: {"model": ErrorResponse}},
    dependencies=[APIKeyDep],
)
def models(pipeline: PipelineDep):
    """Model cards, runtimes (execution providers actually active), the pose model's keypoint schema and batching
    (file names only: no server paths)."""
    return public_facts({**pipeline.describe(), "keypoints": pipeline.pose.card.schema_dict()})


_METRICS_EXAMPLE = """# HELP pose_requests_total POST /v1/pose answers by status
# TYPE pose_requests_total counter
pose_requests_total{status="200"} 42.0
"""


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition format",
            "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}, "example": _METRICS_EXAMPLE}},
        }
    },
)
async def metrics(state: StateDep) -> Response:
    """Prometheus metrics."""
    state.sync_restarts()
    return Response(generate_latest(state.registry), media_type=CONTENT_TYPE_LATEST)


_IMAGE_BODY = {"schema": {"type": "string", "format": "binary"}}
#: The request body, read by ``service/parsing.py`` rather than declared as parameters (so the limits apply while
#: it streams), described for the OpenAPI schema: a multipart upload or a raw image.
POSE_REQUEST_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {"type": "string", "format": "binary", "description": "JPEG (or MPO), PNG, WebP or BMP"},
                    "boxes": {"type": "string", "description": "JSON [[x1, y1, x2, y2], ...]; skips the detector"},
                },
            }
        },
        **{
            ct: _IMAGE_BODY for ct in ("image/jpeg", "image/png", "image/webp", "image/bmp", "application/octet-stream")
        },
    },
}


#: ``render=true``'s answer, beside the JSON.
_JPEG_ANSWER = {
    "image/jpeg": {
        "schema": {"type": "string", "format": "binary"},
        "example": "(JPEG bytes: the image with the skeletons drawn)",
    }
}
_POSE_ROUTE = {
    "response_model": PoseResponse,
    "responses": {
        200: {"description": "people with keypoints (JSON), or with `render=true` a JPEG", "content": _JPEG_ANSWER},
        **{code: {"model": ErrorResponse} for code in (400, 401, 408, 413, 415, 422, 431, 503, 504)},
    },
    "dependencies": [APIKeyDep],
    "openapi_extra": {"requestBody": POSE_REQUEST_BODY},
}


@router.post("/v1/pose", **_POSE_ROUTE)
@router.post("/pose", include_in_schema=False, **_POSE_ROUTE)  # the unversioned alias
async def pose(
    request: Request,
    pipeline: PipelineDep,
    settings: SettingsDep,
    state: StateDep,
    boxes: Annotated[
        str | None, Query(description="JSON [[x1, y1, x2, y2], ...] in original pixels; skips the detector")
    ] = None,
    render: Annotated[bool, Query(description="return a JPEG with the poses drawn instead of JSON")] = False,
):
    """Image in (multipart field ``file`` or a raw image body), people with keypoints out."""
    check_declared_size(request, settings.max_upload_bytes)
    request = await body_started(request)  # no slot for a connection that sends headers and never a body
    ctx = state.admission.admit(settings.request_timeout_s)
    try:
        try:
            upload = await asyncio.wait_for(read_upload(request, settings.max_upload_bytes), ctx.remaining_s)
        except TimeoutError:
            raise RequestTimeoutError("the request body did not arrive within the request deadline") from None
        caller_bboxes = parse_bboxes(boxes if boxes is not None else upload.form_bboxes, settings.max_boxes)
        result = await run_watched(request, ctx, pipeline.run, upload.data, caller_bboxes, ctx)
        state.persons.inc(len(result.scores))
        if state.tracing:
            stage_spans(result.timings_ms)
        if render:
            schema = pipeline.pose.card.schema
            args = (*result.drawable(), settings.max_render_pixels)
            args += (schema.skeleton if schema is not None else (), pipeline.pose.card.keypoint_names)
            return Response(await run_watched(request, ctx, render_jpeg, *args), media_type="image/jpeg")
        return pose_answer(result, pipeline.pose.name, pipeline.pose.card.keypoint_names)
    finally:
        ctx.release()
