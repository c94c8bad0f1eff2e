"""The HTTP API's response models; a pipeline result is encoded by ``inference.encoding`` (shared with ``pose-predict``)
and validated into them."""

from __future__ import annotations

from pydantic import BaseModel, Field

from inference.encoding import image_answer
from inference.pipeline import PoseResult


class Person(BaseModel):
    """One detected person."""

    bbox: list[float] = Field(..., min_length=4, max_length=4, description="x1, y1, x2, y2 in original-image pixels")
    bbox_score: float = Field(..., description="detector score (1.0 for caller-given boxes)")
    keypoints: list[list[float]] = Field(
        ..., description="[K][3]: x, y in original-image pixels (pixel index = coordinate), score"
    )
    score: float = Field(..., description="person score: bbox score x mean keypoint score above 0.2")


class ModelsUsed(BaseModel):
    detector: str | None = Field(None, description="detector name (None when the caller gave boxes)")
    pose: str


class PoseResponse(BaseModel):
    """Response of ``POST /pose``."""

    width: int = Field(..., description="image width in pixels, after EXIF orientation")
    height: int = Field(..., description="image height in pixels, after EXIF orientation")
    persons: list[Person]
    keypoint_names: list[str]
    models: ModelsUsed
    timings_ms: dict[str, float] = Field(..., description="per-stage wall time: decode, detect, crop, pose, total")
    dropped_persons: int = Field(
        0,
        description="people found (or boxes given) left out because the pose model returned NaN / Inf keypoints "
        "for them (counted in pose_dropped_persons_total)",
    )

    @classmethod
    def from_result(cls, result: PoseResult, pose_name: str, keypoint_names: list[str]) -> PoseResponse:
        """Encode a pipeline result: people by descending person score, pixels rounded to 0.01, scores to 1e-5
        (``inference.encoding.image_answer``, which ``pose-predict`` writes too)."""
        return cls.model_validate(image_answer(result, pose_name, keypoint_names))


class ErrorResponse(BaseModel):
    """Every error answer: a machine-readable code and a message for a person."""

    error: str
    message: str
