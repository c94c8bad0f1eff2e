"""One exception type per failure class of the runtime, each carrying its HTTP status and error code.

This is the one place the exception -> HTTP status map lives: ``service/app.py`` answers every
:class:`PoseServiceError` with ``status`` and ``{"error": code, "message": str(exc)}``. Every message is
meant for the caller: it names the problem and, where it helps, the limit or the accepted values.
"""

from __future__ import annotations


class PoseServiceError(Exception):
    """Base class of the runtime's errors (HTTP 500 ``internal_error`` unless a subclass says otherwise)."""

    status: int = 500
    code: str = "internal_error"


class ImageDecodeError(PoseServiceError):
    """The bytes are not a decodable image (corrupt, truncated, empty). HTTP 400."""

    status, code = 400, "undecodable_image"


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
    """The runtime failed while running a model on valid input. HTTP 500."""

    status, code = 500, "inference_failed"


class NotReadyError(PoseServiceError):
    """Models are still loading / warming up, or failed to load. HTTP 503."""

    status, code = 503, "not_ready"
