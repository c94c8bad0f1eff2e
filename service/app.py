"""FastAPI app: ``POST /pose``, ``GET /healthz``, ``GET /readyz``, ``GET /v1/models``, ``GET /metrics``.

Models load in a background thread at start-up (``/readyz`` answers 503 until they are loaded and
warmed up). Requests run in the thread pool; their pose crops meet in one :class:`CropBatcher`,
so concurrent requests share pose-model batches. Errors are JSON ``{"error", "message"}``; the
exception -> HTTP status map is :data:`ERROR_STATUS`, the only place it lives.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from contextlib import asynccontextmanager
from typing import Annotated

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from models.keypoints import schema_dict
from service.batcher import CropBatcher
from service.detector import PersonDetector
from service.errors import (
    ImageDecodeError,
    InferenceError,
    InvalidParameterError,
    ModelLoadError,
    NotReadyError,
    PayloadTooLargeError,
    PoseServiceError,
    UnsupportedMediaTypeError,
)
from service.imageio import SUPPORTED_CONTENT_TYPES, decode_image
from service.pipeline import PosePipeline, PoseResult
from service.pose import PoseEstimator
from service.render import encode_jpeg, render_poses
from service.runtime import create_runtime
from service.schemas import ErrorResponse, ModelsUsed, Person, PoseResponse
from service.settings import Settings

log = logging.getLogger("service")

#: Exception class -> (HTTP status, error code). Looked up along the exception's MRO.
ERROR_STATUS: dict[type[Exception], tuple[int, str]] = {
    ImageDecodeError: (400, "undecodable_image"),
    PayloadTooLargeError: (413, "payload_too_large"),
    UnsupportedMediaTypeError: (415, "unsupported_media_type"),
    InvalidParameterError: (422, "invalid_parameter"),
    NotReadyError: (503, "not_ready"),
    ModelLoadError: (503, "model_not_loaded"),
    InferenceError: (500, "inference_failed"),
}

#: Extra bytes allowed on top of the image limit for multipart framing and form fields.
MULTIPART_SLACK = 64 * 1024


def error_status(exc: Exception) -> tuple[int, str]:
    """HTTP status and error code for a runtime exception (500 / internal_error if unmapped)."""
    for cls in type(exc).__mro__:
        if cls in ERROR_STATUS:
            return ERROR_STATUS[cls]
    return 500, "internal_error"


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content=ErrorResponse(error=code, message=message).model_dump())


def build_pipeline(settings: Settings) -> PosePipeline:
    """Open both models as the settings say and wrap them in a pipeline with a batcher.

    Raises:
        ModelLoadError: a model path is unset or a model cannot be opened.
    """
    if settings.pose_model is None:
        raise ModelLoadError("no pose model configured (POSE_POSE_MODEL or --pose)")
    pose = PoseEstimator.from_card(
        settings.pose_model,
        backend=settings.runtime,
        providers=settings.providers,
        allow_fallback=settings.allow_provider_fallback,
        padding=settings.bbox_padding,
        max_batch_size=settings.max_batch_size,
        flip_test=settings.flip_test,
    )
    detector = None
    if settings.detector_model is not None:
        runtime = create_runtime(
            settings.detector_model,
            settings.runtime,
            settings.providers,
            settings.allow_provider_fallback,
            settings.intra_op_threads,
        )
        detector = PersonDetector(
            runtime,
            score_threshold=settings.det_score_threshold,
            iou_threshold=settings.det_nms_iou,
            max_detections=settings.det_max_detections,
            name=settings.detector_model.stem,
        )
    batcher = CropBatcher(pose.predict_crops, settings.max_batch_size, settings.max_batch_wait_ms)
    return PosePipeline(detector, pose, batcher, max_boxes=settings.max_boxes)


class ServiceState:
    """What the app holds: settings, the pipeline once loaded, readiness and metrics."""

    def __init__(self, settings: Settings, pipeline: PosePipeline | None = None):
        self.settings = settings
        self.pipeline = pipeline
        self.ready = False
        self.error: str | None = None
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "pose_requests_total", "POST /pose requests by status", ["status"], registry=self.registry
        )
        self.latency = Histogram("pose_request_seconds", "POST /pose latency", registry=self.registry)
        self.people = Counter("pose_persons_total", "people returned", registry=self.registry)

    def load(self) -> None:
        """Load (unless given) and warm up the models; sets ``ready`` or ``error``. Runs in a thread."""
        try:
            t0 = time.perf_counter()
            if self.pipeline is None:
                self.pipeline = build_pipeline(self.settings)
            if self.settings.warmup:
                dummy = np.full((480, 640, 3), 114, np.uint8)
                if self.pipeline.detector is not None:
                    self.pipeline.detector.detect(dummy)
                self.pipeline(dummy, np.array([[100, 100, 300, 400]], np.float32))
            self.ready = True
            log.info(
                "models ready in %.1f s: detector=%s pose=%s providers=%s",
                time.perf_counter() - t0,
                self.pipeline.detector.name if self.pipeline.detector else None,
                self.pipeline.pose.name,
                self.pipeline.pose.runtime.active_providers,
            )
        except Exception as exc:  # reported by /readyz and the log
            self.error = f"{type(exc).__name__}: {exc}"
            log.error("model loading failed: %s", self.error)

    def require_ready(self) -> PosePipeline:
        if self.error is not None:
            raise NotReadyError(f"models failed to load: {self.error}")
        if not self.ready or self.pipeline is None:
            raise NotReadyError("models are loading; retry when GET /readyz answers 200")
        return self.pipeline

    def close(self) -> None:
        if self.pipeline is not None and self.pipeline.batcher is not None:
            self.pipeline.batcher.close()


def parse_boxes(text: str | None) -> np.ndarray | None:
    """Caller boxes from JSON text: ``[[x1, y1, x2, y2], ...]`` or one ``[x1, y1, x2, y2]``.

    Raises:
        InvalidParameterError: not JSON, wrong nesting, or non-numbers.
    """
    if text is None or text == "":
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidParameterError(f"boxes must be JSON like [[x1, y1, x2, y2], ...]: {exc}") from exc
    if isinstance(value, list) and len(value) == 4 and all(isinstance(v, int | float) for v in value):
        value = [value]
    if not isinstance(value, list) or not all(
        isinstance(b, list) and len(b) == 4 and all(isinstance(v, int | float) and not isinstance(v, bool) for v in b)
        for b in value
    ):
        raise InvalidParameterError(
            "boxes must be a JSON list of [x1, y1, x2, y2] number lists (original-image pixels)"
        )
    arr = np.asarray(value, dtype=np.float64).reshape(-1, 4)
    if not np.isfinite(arr).all():
        raise InvalidParameterError("boxes contain a non-finite number")
    bad = (arr[:, 2] <= arr[:, 0]) | (arr[:, 3] <= arr[:, 1])
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InvalidParameterError(f"box {i} {arr[i].tolist()} is empty: need x2 > x1 and y2 > y1")
    return arr.astype(np.float32)


async def _read_limited(request: Request, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_image_bytes(request: Request, max_bytes: int) -> tuple[bytes, str | None]:
    """The image bytes of a request (multipart field ``file`` or a raw image body) and any form ``boxes``.

    Raises:
        UnsupportedMediaTypeError, PayloadTooLargeError, InvalidParameterError, ImageDecodeError.
    """
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes + MULTIPART_SLACK:
        raise PayloadTooLargeError(f"request body of {declared} bytes exceeds the limit of {max_bytes} bytes")
    if ctype == "multipart/form-data":
        try:
            form = await request.form(max_files=1, max_fields=16)
        except StarletteHTTPException as exc:
            raise ImageDecodeError(f"malformed multipart body: {exc.detail}") from exc
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidParameterError("multipart body has no file field named 'file'")
        data = await upload.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise PayloadTooLargeError(f"uploaded file exceeds the limit of {max_bytes} bytes")
        boxes = form.get("boxes")
        return data, boxes if isinstance(boxes, str) else None
    if ctype in SUPPORTED_CONTENT_TYPES:
        return await _read_limited(request, max_bytes), None
    if not ctype:
        raise UnsupportedMediaTypeError(
            "missing Content-Type: send multipart/form-data (field 'file') or an image/* body"
        )
    raise UnsupportedMediaTypeError(
        f"Content-Type {ctype} is not accepted: send multipart/form-data (field 'file') or one of "
        f"{sorted(SUPPORTED_CONTENT_TYPES)}"
    )


def to_response(result: PoseResult, state: ServiceState, used_detector: bool) -> PoseResponse:
    pipe = state.pipeline
    order = np.argsort(-result.scores, kind="stable")
    persons = [
        Person(
            bbox=[round(float(v), 2) for v in result.bboxes[i]],
            bbox_score=round(float(result.bbox_scores[i]), 5),
            keypoints=[[round(float(x), 2), round(float(y), 2), round(float(s), 5)] for x, y, s in result.keypoints[i]],
            score=round(float(result.scores[i]), 5),
        )
        for i in order
    ]
    return PoseResponse(
        width=result.width,
        height=result.height,
        persons=persons,
        keypoint_names=pipe.pose.card.keypoint_names,
        models=ModelsUsed(
            detector=pipe.detector.name if used_detector and pipe.detector else None, pose=pipe.pose.name
        ),
        timings_ms={k: round(v, 2) for k, v in result.timings_ms.items()},
    )


def create_app(settings: Settings | None = None, pipeline: PosePipeline | None = None) -> FastAPI:
    """Build the app. Models load in a background thread when the app starts.

    Args:
        settings: service settings (default: from the environment).
        pipeline: an already-built pipeline (tests, evaluation); else built from ``settings``.
    """
    settings = settings or Settings()
    state = ServiceState(settings, pipeline)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        loader = threading.Thread(target=state.load, name="model-loader", daemon=True)
        loader.start()
        yield
        state.close()

    app = FastAPI(title="poseserve", version="0.1.0", lifespan=lifespan)
    app.state.service = state

    @app.exception_handler(PoseServiceError)
    async def _service_error(request: Request, exc: PoseServiceError):
        status, code = error_status(exc)
        if status >= 500:
            log.error("%s %s: %s", request.method, request.url.path, exc)
        return _error(status, code, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        parts = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()]
        return _error(422, "invalid_parameter", "; ".join(parts) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        return _error(exc.status_code, "http_error", str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(500, "internal_error", f"internal error: {type(exc).__name__}")

    @app.get("/healthz")
    def healthz() -> dict:
        """Process is alive."""
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz():
        """200 once both models are loaded and warmed up; 503 while loading or after a failed load."""
        if state.ready:
            return {"status": "ready"}
        if state.error:
            return _error(503, "model_not_loaded", state.error)
        return _error(503, "not_ready", "models are loading")

    @app.get("/v1/models")
    def models() -> dict:
        """Model cards, keypoint schema and the execution providers actually active."""
        pipe = state.require_ready()
        det = pipe.detector
        return {
            "detector": None
            if det is None
            else {
                "name": det.name,
                "input_size": det.input_size,
                "score_threshold": det.score_threshold,
                "nms_iou": det.iou_threshold,
                "max_detections": det.max_detections,
                "runtime": det.runtime.describe(),
            },
            "pose": {"name": pipe.pose.name, **pipe.pose.describe()},
            "keypoints": schema_dict(),
            "batching": {"max_batch_size": settings.max_batch_size, "max_wait_ms": settings.max_batch_wait_ms},
        }

    @app.get("/metrics")
    def metrics() -> Response:
        """Prometheus metrics."""
        return Response(generate_latest(state.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post(
        "/pose",
        response_model=PoseResponse,
        responses={code: {"model": ErrorResponse} for code in (400, 413, 415, 422, 503)},
    )
    async def pose(
        request: Request,
        boxes: Annotated[
            str | None, Query(description="JSON [[x1, y1, x2, y2], ...] in original pixels; skips the detector")
        ] = None,
        render: Annotated[bool, Query(description="return a JPEG with the poses drawn instead of JSON")] = False,
    ):
        """Image in (multipart field ``file`` or a raw image body), people with keypoints out."""
        t0 = time.perf_counter()
        status = 500
        try:
            pipe = state.require_ready()
            data, form_boxes = await read_image_bytes(request, settings.max_upload_bytes)
            caller_boxes = parse_boxes(boxes if boxes is not None else form_boxes)

            def work():
                td = time.perf_counter()
                image = decode_image(data, settings.max_upload_bytes, settings.max_image_pixels)
                decode_ms = (time.perf_counter() - td) * 1000
                result = pipe(image, caller_boxes)
                result.timings_ms = {"decode": decode_ms, **result.timings_ms}
                result.timings_ms["total"] = (time.perf_counter() - td) * 1000
                jpeg = encode_jpeg(render_poses(image, result.bboxes, result.keypoints)) if render else None
                return result, jpeg

            result, jpeg = await run_in_threadpool(work)
            state.people.inc(len(result.scores))
            status = 200
            if render:
                return Response(jpeg, media_type="image/jpeg")
            return to_response(result, state, caller_boxes is None)
        except PoseServiceError as exc:
            status = error_status(exc)[0]
            raise
        finally:
            state.requests.labels(str(status)).inc()
            state.latency.observe(time.perf_counter() - t0)

    return app
