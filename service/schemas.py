"""Pydantic request/response models of the HTTP API."""

from __future__ import annotations

from pydantic import BaseModel, Field


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


class ErrorResponse(BaseModel):
    """Every error answer: a machine-readable code and a message for a person."""

    error: str
    message: str
