"""One exception type per failure class of the runtime; ``service/app.py`` maps them to HTTP status.

Every message is meant for the caller: it names the problem and, where it helps, the limit or the
accepted values.
"""

from __future__ import annotations


class PoseServiceError(Exception):
    """Base class of the runtime's errors."""


class ImageDecodeError(PoseServiceError):
    """The bytes are not a decodable image (corrupt, truncated, empty). HTTP 400."""


class PayloadTooLargeError(PoseServiceError):
    """The upload exceeds the byte limit, or the image exceeds the pixel limit. HTTP 413."""


class UnsupportedMediaTypeError(PoseServiceError):
    """The Content-Type or the image format is not one the service accepts. HTTP 415."""


class InvalidParameterError(PoseServiceError):
    """A request parameter (boxes, thresholds) is malformed or out of range. HTTP 422."""


class ModelLoadError(PoseServiceError):
    """A model file or card is missing or invalid, or its runtime session cannot be created."""


class ProviderFallbackError(ModelLoadError):
    """A requested GPU execution provider is not active (onnxruntime fell back to CPU)
    and fallback was not allowed."""


class InferenceError(PoseServiceError):
    """The runtime failed while running a model on valid input. HTTP 500."""


class NotReadyError(PoseServiceError):
    """Models are still loading / warming up, or failed to load. HTTP 503."""
