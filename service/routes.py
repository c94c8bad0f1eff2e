"""The HTTP routes: ``POST /pose``, ``GET /healthz``, ``GET /readyz``, ``GET /v1/models``, ``GET /metrics``.

Each handler is parse -> pipeline -> encode: request parsing is ``service/parsing.py``, the work is
``PosePipeline.run`` (in the thread pool; pose crops of concurrent requests meet in its batcher), the
answer is ``PoseResponse.from_result`` (or a rendered JPEG). Errors are raised as the exceptions of
``service/errors.py`` and answered by the handlers in ``service/app.py``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from models.keypoints import schema_dict
from service.deps import PipelineDep, SettingsDep, StateDep
from service.errors import ModelLoadError, NotReadyError
from service.parsing import parse_boxes, read_upload
from service.render import encode_jpeg, render_poses
from service.schemas import ErrorResponse, PoseResponse

router = APIRouter()


def error_response(exc: Exception) -> JSONResponse:
    """``{"error": code, "message": text}`` with the exception's HTTP status (``service/errors.py``)."""
    status, code = getattr(exc, "status", 500), getattr(exc, "code", "internal_error")
    return JSONResponse(status_code=status, content=ErrorResponse(error=code, message=str(exc)).model_dump())


@router.get("/healthz")
def healthz() -> dict:
    """200 while the process is alive."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"model": ErrorResponse}})
def readyz(state: StateDep):
    """200 once both models are loaded and warmed up; 503 while loading or after a failed load."""
    if state.ready:
        return {"status": "ready"}
    if state.error:
        return error_response(ModelLoadError(state.error))
    return error_response(NotReadyError("models are loading"))


@router.get("/v1/models", responses={503: {"model": ErrorResponse}})
def models(pipeline: PipelineDep) -> dict:
    """Model cards, runtimes (execution providers actually active), keypoint schema and batching."""
    return {**pipeline.describe(), "keypoints": schema_dict()}


@router.get("/metrics")
def metrics(state: StateDep) -> Response:
    """Prometheus metrics."""
    return Response(generate_latest(state.registry), media_type=CONTENT_TYPE_LATEST)


@router.post(
    "/pose",
    response_model=PoseResponse,
    responses={code: {"model": ErrorResponse} for code in (400, 413, 415, 422, 503)},
)
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
    upload = await read_upload(request, settings.max_upload_bytes)
    caller_boxes = parse_boxes(boxes if boxes is not None else upload.form_boxes, settings.max_boxes)
    result = await run_in_threadpool(pipeline.run, upload.data, caller_boxes)
    state.persons.inc(len(result.scores))
    if render:
        jpeg = await run_in_threadpool(lambda: encode_jpeg(render_poses(result.image, result.bboxes, result.keypoints)))
        return Response(jpeg, media_type="image/jpeg")
    return PoseResponse.from_result(result, pipeline.pose.name, pipeline.pose.card.keypoint_names)
