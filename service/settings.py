"""Service settings (pydantic-settings): environment variables with the ``POSE_`` prefix.

Every field can be set as ``POSE_<FIELD>`` (e.g. ``POSE_DETECTOR_MODEL=/models/yolo11n.onnx``,
``POSE_PROVIDERS='["CUDAExecutionProvider"]'``) or from a ``.env`` file; ``pose-serve`` options
override them. The README's "Configuration" table lists them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.zoo import cache_root


class Settings(BaseSettings):
    """All runtime settings of the pose service."""

    model_config = SettingsConfigDict(env_prefix="POSE_", env_file=".env", extra="ignore")

    # models
    detector_model: Path | None = Field(None, description="Detector ONNX (or TensorRT engine) path.")
    pose_model: Path | None = Field(
        None, description="Pose model card JSON, or the model file with its card beside it."
    )
    cache_dir: Path = Field(default_factory=cache_root, description="Where default models live.")
    runtime: Literal["onnxruntime", "tensorrt"] = Field("onnxruntime", description="Inference backend.")
    providers: list[str] | None = Field(
        None, description="onnxruntime execution providers in priority order; None = best available."
    )
    allow_provider_fallback: bool = Field(
        False, description="Accept a session where a requested GPU provider silently fell back to CPU."
    )
    intra_op_threads: int = Field(0, ge=0, description="onnxruntime intra-op threads (0 = library default).")

    # detector
    det_score_threshold: float = Field(0.25, ge=0.0, le=1.0, description="Person score threshold.")
    det_nms_iou: float = Field(0.45, gt=0.0, le=1.0, description="NMS IoU threshold.")
    det_max_detections: int = Field(100, ge=1, description="At most this many people per image.")

    # pose
    bbox_padding: float = Field(1.25, gt=0.0, description="Box padding before the square crop (MMPose 1.25).")
    flip_test: bool = Field(False, description="Service-side flip test (for models without it in the graph).")
    max_batch_size: int = Field(32, ge=1, description="Most crops in one pose-model batch.")
    max_batch_wait_ms: float = Field(2.0, ge=0.0, description="How long a batch waits for crops of other requests.")

    # input limits
    max_upload_bytes: int = Field(20 * 1024 * 1024, ge=1, description="Largest accepted upload (bytes).")
    max_image_pixels: int = Field(50_000_000, ge=1, description="Largest accepted image (width x height).")
    max_boxes: int = Field(200, ge=1, description="Most caller boxes per request.")

    # server
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    warmup: bool = Field(True, description="Run each model once before /readyz turns 200.")
