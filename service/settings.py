"""Settings and the cache layout: the one place that reads ``POSE_*`` variables and names cache paths.

:class:`Settings` (pydantic-settings) is built once per process, by the command line entry point
(``pose-serve``, ``pose-export``, ``pose-zoo``, ``pose-eval``), and handed down to every runtime and
command: nothing else reads ``POSE_*`` environment variables or repeats a default. Every field is
``POSE_<FIELD>`` in the environment (or a ``.env`` file) and, where a command takes it, a command-line
option derived from the field by :func:`add_settings_options` (options override the environment).
The README's configuration table is :func:`settings_table` (``python -m service.settings`` prints it;
a test keeps the README equal to it).

:class:`CacheLayout` owns the folders below the cache root (checkpoints, downloads, the default
detector and pose model, TensorRT engines)::

    <cache_dir>/checkpoints/<MMPose checkpoint>.pth
    <cache_dir>/downloads/yolo11n.pt
    <cache_dir>/detector/yolo11n.onnx
    <cache_dir>/pose/ipr_res50_debias.onnx + ipr_res50_debias.json (the model card)
    <cache_dir>/trained/<checkpoint sha256[:16]>/<config name>.onnx + .json (``pose-serve --pose best.pth``)
    <cache_dir>/engines/<gpu>/trt-<version>/<onnx stem>-<sha256[:16]>-<precision>-b<min>-<opt>-<max>.engine

Torch-free (pydantic-settings only).
"""

from __future__ import annotations

import argparse
import json
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

#: The default served models (``pose-serve`` with no model paths).
DEFAULT_DETECTOR = "yolo11n"
DEFAULT_POSE = "ipr_res50_debias"
ENV_PREFIX = "POSE_"


@dataclass(frozen=True)
class CacheLayout:
    """The folders below the cache root (see the module docstring)."""

    root: Path

    @property
    def checkpoints(self) -> Path:
        """Downloaded pose checkpoints (MMPose's published ``.pth`` files)."""
        return self.root / "checkpoints"

    @property
    def downloads(self) -> Path:
        """Other downloads (the Ultralytics ``yolo11n.pt``)."""
        return self.root / "downloads"

    @property
    def engines(self) -> Path:
        """TensorRT engines, keyed by GPU, TensorRT version and ONNX hash (``service.runtime_trt``)."""
        return self.root / "engines"

    @property
    def trained(self) -> Path:
        """Pose checkpoints served directly (``pose-serve --pose run/best.pth``), exported to ONNX + card."""
        return self.root / "trained"

    def trained_pose(self, sha256: str) -> Path:
        """The folder holding the ONNX + card exported from the checkpoint whose SHA-256 is ``sha256``."""
        if len(sha256) < 16 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"expected a lower-case hex SHA-256, got {sha256!r}")
        return self.trained / sha256[:16]

    @property
    def default_detector(self) -> Path:
        """The default detector ONNX (:data:`DEFAULT_DETECTOR`)."""
        return self.root / "detector" / f"{DEFAULT_DETECTOR}.onnx"

    @property
    def default_pose_card(self) -> Path:
        """The default pose model's card JSON (:data:`DEFAULT_POSE`; its ONNX lies beside it)."""
        return self.root / "pose" / f"{DEFAULT_POSE}.json"


def _cli(flag: str) -> dict:
    return {"cli": flag}


class Settings(BaseSettings):
    """All settings of the pose service and its commands (``POSE_<FIELD>``; see the README table)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", extra="ignore")

    # models
    detector_model: Path | None = Field(
        None,
        description="detector ONNX or TensorRT engine (Ultralytics contract); unset: the default model",
        json_schema_extra=_cli("--detector"),
    )
    pose_model: Path | None = Field(
        None,
        description="pose model card JSON, the model file with `<stem>.json` beside it, or a checkpoint `.pth` "
        "(exported on first start, cached by its SHA-256); unset: the default model",
        json_schema_extra=_cli("--pose"),
    )
    cache_dir: Path = Field(
        Path("~/.cache/poseserve"),
        validate_default=True,
        description="cache root: default models, `checkpoints/`, `downloads/`, `trained/`, TensorRT `engines/`",
    )
    prepare_defaults: bool = Field(
        True, description="prepare missing default models at start-up (needs the export extra)"
    )
    offline: bool = Field(False, description="never download (missing checkpoints are an error naming the URL)")

    # runtimes
    runtime: Literal["onnxruntime", "tensorrt"] = Field("onnxruntime", description="inference backend of both models")
    providers: Annotated[list[str] | None, NoDecode] = Field(
        None,
        description="onnxruntime execution providers in priority order (comma-separated or a JSON list); "
        "unset: the best available",
    )
    allow_provider_fallback: bool = Field(
        False, description="accept a session where a requested GPU provider fell back to CPU (else start-up fails)"
    )
    intra_op_threads: int = Field(
        0, ge=0, description="onnxruntime intra-op threads of each model (0: library default)"
    )
    device: int = Field(0, ge=0, description="CUDA device index (TensorRT runtime)")

    # detector
    det_score_threshold: float = Field(0.25, ge=0.0, le=1.0, description="detector person score threshold")
    det_nms_iou: float = Field(0.45, gt=0.0, le=1.0, description="detector NMS IoU threshold (OpenCV NMS)")
    det_max_detections: int = Field(100, ge=1, description="at most this many people per image")

    # pose
    bbox_padding: float = Field(1.25, gt=0.0, description="box padding before the square crop (MMPose 1.25)")
    flip_test: bool = Field(False, description="flip test: average with the mirrored crop (MMPose's flip-back)")
    max_batch_size: int = Field(32, ge=1, description="most crops in one pose-model batch")
    max_batch_wait_ms: float = Field(2.0, ge=0.0, description="how long a batch waits for crops of other requests (ms)")

    # input limits
    max_upload_bytes: int = Field(20 * 1024 * 1024, ge=1, description="largest accepted upload (bytes)")
    max_image_pixels: int = Field(50_000_000, ge=1, description="largest accepted image (width x height)")
    max_boxes: int = Field(200, ge=1, description="most caller boxes per request")

    # server
    host: str = Field("127.0.0.1", description="bind address (0.0.0.0 in a container)")
    port: int = Field(8000, ge=0, le=65535, description="port")
    warmup: bool = Field(True, description="run both models once before /readyz turns 200")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="log level")

    @field_validator("cache_dir", mode="after")
    @classmethod
    def _expand_user(cls, v: Path) -> Path:
        return v.expanduser()

    @field_validator("providers", mode="before")
    @classmethod
    def _split_providers(cls, v):
        if isinstance(v, str):
            text = v.strip()
            if text.startswith("["):
                try:
                    return json.loads(text)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"providers: not a JSON list: {exc}") from exc
            return [p.strip() for p in text.split(",") if p.strip()] or None
        return v

    @property
    def cache(self) -> CacheLayout:
        """The cache folders below :attr:`cache_dir`."""
        return CacheLayout(self.cache_dir)


# --------------------------------------------------------------------------------------------------
# Command-line options derived from the fields


def _flag(name: str) -> str:
    extra = Settings.model_fields[name].json_schema_extra or {}
    return extra.get("cli") or "--" + name.replace("_", "-")


def _default_text(name: str) -> str:
    field = Settings.model_fields[name]
    v = field.default
    if v is None:
        return "unset"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int) and v >= 1 << 20 and v % (1 << 20) == 0:
        return f"{v // (1 << 20)} MiB"
    return str(v)


def _value_type(name: str):
    """(python type, choices) of a field for argparse."""
    ann = Settings.model_fields[name].annotation
    args = [a for a in typing.get_args(ann) if a is not type(None)] if typing.get_origin(ann) else []
    base = args[0] if len(args) == 1 else ann
    if typing.get_origin(base) is Literal:
        return str, list(typing.get_args(base))
    return base, None


def add_settings_options(parser: argparse.ArgumentParser, names: Iterable[str]) -> None:
    """Add one option per named :class:`Settings` field: its flag, type, choices and help come from the
    field (booleans get ``--x`` / ``--no-x``); every default is None, so an option given overrides the
    environment and one left out does not. :func:`settings_from_args` reads them back.

    Raises:
        KeyError: a name that is not a field.
    """
    names = tuple(names)
    for name in names:
        field = Settings.model_fields[name]
        typ, choices = _value_type(name)
        help_text = f"{field.description} (env {ENV_PREFIX}{name.upper()}, default {_default_text(name)})"
        kw: dict = {"dest": name, "default": None, "help": help_text}
        if typ is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif typ in (int, float):
            kw["type"] = typ
        elif choices:
            kw["choices"] = choices
        parser.add_argument(_flag(name), **kw)
    parser.set_defaults(_settings_fields=names)


def settings_from_args(args: argparse.Namespace, **overrides) -> Settings:
    """:class:`Settings` from the environment, overridden by the options :func:`add_settings_options`
    added (those given) and then by ``overrides``.

    Raises:
        pydantic.ValidationError: an invalid value (a ``ValueError``).
    """
    given = {n: getattr(args, n) for n in getattr(args, "_settings_fields", ()) if getattr(args, n) is not None}
    return Settings(**{**given, **overrides})


def settings_table() -> str:
    """The README's configuration table (Markdown), generated from the fields."""
    lines = ["| variable | pose-serve option | default | meaning |", "|---|---|---|---|"]
    for name, field in Settings.model_fields.items():
        lines.append(
            f"| `{ENV_PREFIX}{name.upper()}` | `{_flag(name)}` | {_default_text(name)} | {field.description} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(settings_table(), end="")
