"""The HTTP API's response models; a pipeline result is encoded by ``inference.encoding`` (shared with ``pose-predict``)
in the shape they document (``service.routes.pose_answer`` writes that dict as it is)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


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


_NAMES = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
          "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
          "right_ankle"]  # fmt: skip


class PoseResponse(BaseModel):
    """Response of ``POST /v1/pose``."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "width": 640,
                    "height": 429,
                    "persons": [
                        {
                            "bbox": [151.2, 40.5, 398.7, 421.0],
                            "bbox_score": 0.95,
                            "keypoints": [[270.1, 88.4, 0.98]] * 17,
                            "score": 0.62,
                        }
                    ],
                    "keypoint_names": _NAMES,
                    "models": {"detector": "yolo11n", "pose": "ipr_res50_debias"},
                    "timings_ms": {"decode": 3.1, "detect": 61.0, "crop": 0.4, "pose": 48.2, "total": 113.0},
                    "dropped_persons": 0,
                }
            ]
        }
    )

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


class ErrorResponse(BaseModel):
    """Every error answer: a machine-readable code and a message for a person."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"error": "overloaded", "message": "too many requests in flight; retry later"}]}
    )

    error: str
    message: str


class HealthResponse(BaseModel):
    """``GET /healthz`` (``ok``) and ``GET /readyz`` (``ready``) when they answer 200."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}, {"status": "ready"}]})

    status: str = Field(..., description="`ok` (/healthz) or `ready` (/readyz)")


class ModelsResponse(BaseModel):
    """``GET /v1/models``: the served models' facts (``PosePipeline.describe`` and the pose card's keypoint schema).
    Loosely typed: the runtimes' and cards' own fields pass through as they are."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "detector": {
                        "name": "yolo11n",
                        "input_size": 640,
                        "contract": "ultralytics",
                        "score_threshold": 0.25,
                        "runtime": {},
                    },
                    "pose": {"name": "ipr_res50_debias", "precision": "fp32", "runtime": {}},
                    "batching": {"max_batch_size": 32, "max_wait_ms": 5.0, "detector_max_batch_size": 4},
                    "keypoints": {
                        "name": "coco",
                        "keypoint_names": _NAMES,
                        "flip_pairs": [[1, 2], [3, 4]],
                        "skeleton": [[15, 13], [13, 11]],
                        "sigmas": [0.026, 0.025, 0.025],
                    },
                }
            ]
        },
    )

    detector: dict[str, Any] | None = Field(None, description="the detector's settings and runtime (None: no detector)")
    pose: dict[str, Any] = Field(..., description="the pose model's card facts, precision and runtime")
    batching: dict[str, Any] | None = Field(None, description="the batchers' sizes and wait")
    keypoints: dict[str, Any] = Field(..., description="keypoint names, skeleton, flip pairs, OKS sigmas")
