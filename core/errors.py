"""One exception type per failure class of the runtime, each carrying its HTTP status and error code.

This is the one place the exception -> HTTP status map lives: ``service/app.py`` answers every
:class:`PoseServiceError` with ``status`` and ``{"error": code, "message": str(exc)}``. Every message is
meant for the caller: it names the problem and, where it helps, the limit or the accepted values.
"""

from __future__ import annotations

import re


class PoseServiceError(Exception):
    """Base class of the runtime's errors (HTTP 500 ``internal_error`` unless a subclass says otherwise).

    ``headers``: extra response headers (``Retry-After``, ``WWW-Authenticate``).
    """

    status: int = 500
    code: str = "internal_error"
    headers: dict[str, str] = {}


class ImageDecodeError(PoseServiceError):
    """The bytes are not a decodable image (corrupt, truncated, empty). HTTP 400."""

    status, code = 400, "undecodable_image"


class VideoDecodeError(PoseServiceError):
    """The bytes are not a decodable video: corrupt, truncated, empty, no video stream (audio only). HTTP 400."""

    status, code = 400, "undecodable_video"


class PayloadTooLargeError(PoseServiceError):
    """The upload exceeds the byte limit, or the image exceeds the pixel limit. HTTP 413."""

    status, code = 413, "payload_too_large"


class UnsupportedMediaTypeError(PoseServiceError):
    """The Content-Type or the image format is not one the service accepts. HTTP 415."""

    status, code = 415, "unsupported_media_type"


class InvalidParameterError(PoseServiceError):
    """A request parameter (boxes, thresholds) is malformed or out of range. HTTP 422."""

    status, code = 422, "invalid_parameter"


class ModelLoadError(PoseServiceError):
    """A model file or card is missing or invalid, or its runtime session cannot be created. HTTP 503."""

    status, code = 503, "model_not_loaded"


class ProviderFallbackError(ModelLoadError):
    """A requested GPU execution provider is not active (onnxruntime fell back to CPU)
    and fallback was not allowed."""


class InferenceError(PoseServiceError):
    """The runtime failed while running a model on valid input, or its output broke the model's contract. HTTP 500.

    ``kind`` names the failure for metrics (``pose_inference_failures_total``): ``runtime`` (the runtime raised),
    ``shape`` (batch size, keypoint count or layout not the card's), ``range`` (finite coordinates far outside the
    crop), ``non_finite`` (NaN / Inf), ``timeout`` (the call ran past ``POSE_INFERENCE_TIMEOUT_S`` and was cancelled).
    """

    status, code = 500, "inference_failed"
    #: The failure kinds, as ``kind`` and the metric label spell them.
    KINDS = ("runtime", "shape", "range", "non_finite", "timeout")

    def __init__(self, message: str, kind: str = "runtime"):
        super().__init__(message)
        self.kind = kind


class ShuttingDownError(PoseServiceError):
    """The server is shutting down (SIGTERM) and the request's inference was cancelled or abandoned. HTTP 503 with
    ``Retry-After`` (another replica can take it)."""

    status, code = 503, "shutting_down"
    headers = {"Retry-After": "1"}


class NotReadyError(PoseServiceError):
    """Models are still loading / warming up, or failed to load. HTTP 503 with ``Retry-After``."""

    status, code = 503, "not_ready"

    def __init__(self, message: str, retry_after_s: int = 5):
        super().__init__(message)
        self.headers = {"Retry-After": str(int(retry_after_s))}


class WorkerStoppedError(PoseServiceError):
    """A batcher's worker thread stopped: no request can be served until the process restarts. HTTP 503
    (``/healthz`` and ``/readyz``)."""

    status, code = 503, "worker_stopped"


class OverloadedError(PoseServiceError):
    """Admission control refused the request: too many requests, decoded pixels or crops in flight
    (``reason`` names which). HTTP 503 with ``Retry-After``, answered before any work is done."""

    status, code = 503, "overloaded"

    def __init__(self, message: str, reason: str, retry_after_s: int = 1):
        super().__init__(message)
        self.reason = reason
        self.headers = {"Retry-After": str(int(retry_after_s))}


class DeadlineExceededError(PoseServiceError):
    """The request did not finish within its deadline (``POSE_REQUEST_TIMEOUT_S``); its queued work is dropped. HTTP 504."""

    status, code = 504, "deadline_exceeded"


class ClientDisconnectedError(PoseServiceError):
    """The client went away; its queued work is dropped. Counted, never logged as an error (status 499, nginx's
    "client closed request", which the client never sees)."""

    status, code = 499, "client_disconnected"


class RequestTimeoutError(PoseServiceError):
    """The client sent its body too slowly (no data for ``POSE_READ_TIMEOUT_S``). HTTP 408."""

    status, code = 408, "request_timeout"


class HeadersTooLargeError(PoseServiceError):
    """The request line and headers exceed ``POSE_MAX_HEADER_BYTES``. HTTP 431."""

    status, code = 431, "headers_too_large"


class UnauthorizedError(PoseServiceError):
    """No or a wrong API key (``Authorization: Bearer <key>`` or ``X-API-Key``). HTTP 401 with ``WWW-Authenticate``."""

    status, code = 401, "unauthorized"
    headers = {"WWW-Authenticate": 'Bearer realm="poseserve"'}


def public_message(text: str) -> str:
    """``text`` with absolute file-system paths reduced to their last component (responses never show server
    paths; the log keeps the full message)."""
    return _ABS_PATH.sub(lambda m: m.group(1) + m.group(2).rsplit("/", 1)[-1], text)


def public_facts(obj):
    """``obj`` (JSON-like: dicts, lists, strings, numbers) with :func:`public_message` applied to every string, keys
    included: what ``/v1/models`` returns of cards and runtime facts (a card's ``source.checkpoint``, its
    verification crops, the TensorRT EP's engine cache path) shows file names, never server paths."""
    if isinstance(obj, str):
        return public_message(obj)
    if isinstance(obj, dict):
        return {public_facts(k): public_facts(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [public_facts(v) for v in obj]
    return obj


_ABS_PATH = re.compile(r"(^|[\s'\"(=:])(/[^\s'\",)]+)")


class UsageError(ValueError):
    """A command line that cannot work (a missing or contradictory option), found after argparse accepted it. The
    commands exit with status 2 for it, as argparse does, and 1 for a failure of the work itself (a model or file
    that cannot be found or loaded, an export or evaluation that fails). Never raised by the service."""
