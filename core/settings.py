"""Settings: the one place that reads ``POSE_*`` variables, and the named groups of fields the commands take.

:class:`Settings` (pydantic-settings) is built once per process, by the command line entry point
(``pose-serve``, ``pose-export``, ``pose-zoo``, ``pose-eval``, ``pose-train``), and handed down to every runtime and
command: nothing else reads ``POSE_*`` environment variables or repeats a default. Every field is
``POSE_<FIELD>`` in the environment (or a ``.env`` file) and, where a command takes it, a command-line
option derived from the field by :func:`core.cli_options.add_settings_options` (options override the environment).
Which fields a command takes is a sum of the named groups (:data:`MODEL_FIELDS`, :data:`RUNTIME_FIELDS`, ...:
defined in :mod:`core.field_groups`, imported from here; ``pose-serve`` takes :data:`SERVE_FIELDS`, all of them).
The README's configuration table is :func:`core.cli_options.settings_table` (``python -m core.cli_options`` prints
it; a test keeps the README equal to it).

The cache folders below ``cache_dir`` are :class:`core.cache.CacheLayout` (:attr:`Settings.cache`).

Torch-free (pydantic-settings only).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from core.cache import CacheLayout
from core.field_groups import (
    CACHE_FIELDS,
    DEFAULT_MODEL_FIELDS,
    DETECTOR_FIELDS,
    ENGINE_PROFILE_FIELDS,
    HOST_FIELDS,
    LOG_FIELDS,
    MODEL_FIELDS,
    PIPELINE_FIELDS,
    RUNTIME_FIELDS,
    VIDEO_FIELDS,
)

#: What ``from core.settings import ...`` offers: the settings, their environment prefix and deprecated spellings,
#: and the named field groups (those of ``core.field_groups`` re-exported, and :data:`SERVE_FIELDS`).
__all__ = [
    "CACHE_FIELDS",
    "DEFAULT_MODEL_FIELDS",
    "DEPRECATED_NAMES",
    "DETECTOR_FIELDS",
    "ENGINE_PROFILE_FIELDS",
    "ENV_PREFIX",
    "HOST_FIELDS",
    "LOG_FIELDS",
    "MODEL_FIELDS",
    "PIPELINE_FIELDS",
    "RUNTIME_FIELDS",
    "SERVE_FIELDS",
    "Settings",
    "VIDEO_FIELDS",
    "deprecation_message",
]

#: Every setting is an environment variable ``POSE_<FIELD>``.
ENV_PREFIX = "POSE_"

#: Deprecated spellings of renamed fields, old -> new: the old ``POSE_<OLD>`` variable and ``--<old>`` option still
#: work (the new spelling wins where both are given) and log a deprecation warning naming the new one. The one
#: mapping that the environment (:class:`_DeprecatedEnvSource`), the command-line options
#: (:func:`core.cli_options.add_settings_options`) and the README table (:func:`core.cli_options.settings_table`) read.
DEPRECATED_NAMES: dict[str, str] = {
    "det_score_threshold": "det_score_thr",
    "det_nms_iou": "det_iou_thr",
}

_log = logging.getLogger(__name__)


def deprecation_message(old: str, new: str) -> str:
    """The warning logged when a deprecated spelling (variable or option) ``old`` is used instead of ``new``."""
    return f"{old} is deprecated: use {new}"


class _DeprecatedEnvSource(PydanticBaseSettingsSource):
    """The ``POSE_<OLD>`` variables of :data:`DEPRECATED_NAMES` (environment, then ``.env``), read as their new field
    where the new variable is not set, each with a deprecation warning."""

    def __init__(self, settings_cls: type[BaseSettings], *sources: EnvSettingsSource) -> None:
        super().__init__(settings_cls)
        self._sources = sources

    def _lookup(self, name: str) -> str | None:
        for source in self._sources:
            for key in (name, name.lower()):
                if source.env_vars.get(key) is not None:
                    return source.env_vars[key]
        return None

    def get_field_value(self, field, field_name: str) -> tuple[Any, str, bool]:  # abstract; __call__ does the work
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for old, new in DEPRECATED_NAMES.items():
            old_env, new_env = ENV_PREFIX + old.upper(), ENV_PREFIX + new.upper()
            value = self._lookup(old_env)
            if value is None:
                continue
            if self._lookup(new_env) is None:
                values[new] = value
                _log.warning(deprecation_message(old_env, new_env))
            else:
                _log.warning(deprecation_message(old_env, new_env) + f" (ignored: {new_env} is set)")
        return values


def _cli(flag: str) -> dict:
    return {"cli": flag}


class Settings(BaseSettings):
    """All settings of the pose service and its commands (``POSE_<FIELD>``; see the README table)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", extra="ignore")

    # models
    detector_model: Path | None = Field(
        None,
        description="detector ONNX or TensorRT engine, or its detector card JSON (contract ultralytics, yolox or "
        "mmdeploy; without a card told from the graph's outputs); unset: the default model",
        json_schema_extra=_cli("--detector"),
    )
    default_detector: Literal["yolo11n", "rtmdet-nano"] = Field(
        "yolo11n",
        description="the detector served when none is given, prepared into the cache by `pose-export defaults`: "
        "yolo11n (Ultralytics YOLO11n, AGPL-3.0) or rtmdet-nano (MMPose's RTMDet-nano person detector as MMDeploy's "
        "ONNX, Apache-2.0)",
    )
    pose_model: Path | None = Field(
        None,
        description="pose model card JSON, the model file with `<stem>.json` beside it, a checkpoint `.pth` "
        "(exported on first start, cached by its SHA-256), or a zoo name (`pose-zoo list`; exported into the cache "
        "on first start); unset: the default model",
        json_schema_extra=_cli("--pose"),
    )
    cache_dir: Path = Field(
        Path("~/.cache/poseserve"),
        validate_default=True,
        description="cache root: default models, `checkpoints/`, `downloads/`, `trained/`, TensorRT `engines/`",
    )
    prepare_defaults: bool = Field(
        True,
        description="prepare missing default models, and a zoo model named by --pose, at start-up (needs the "
        "export extra)",
    )
    offline: bool = Field(False, description="never download (missing checkpoints are an error naming the URL)")

    # runtimes
    runtime: Literal["onnxruntime", "tensorrt", "openvino"] = Field(
        "onnxruntime", description="inference backend of both models"
    )
    precision: Literal["fp32", "bf16", "int8"] = Field(
        "fp32",
        description="inference precision of both models (openvino runtime): fp32; bf16 (OpenVINO's inference-precision "
        "hint; needs a CPU with BF16); int8 (the models `pose-export quantize` wrote into the cache)",
    )
    allow_unsupported_precision: bool = Field(
        False,
        description="accept bf16 on a CPU without native BF16, or int8 without VNNI (OpenVINO emulates them, slowly); "
        "else start-up fails",
    )
    ov_device: str = Field("CPU", description="OpenVINO device of both models (openvino runtime)")
    providers: Annotated[list[str] | None, NoDecode] = Field(
        None,
        description="onnxruntime execution providers in priority order (comma-separated or a JSON list); "
        "unset: the best available",
    )
    allow_provider_fallback: bool = Field(
        False,
        description="accept a session where a GPU provider, requested or chosen by default (onnxruntime-gpu installed), "
        "fell back to CPU (else start-up fails with the reason)",
    )
    intra_op_threads: int = Field(0, ge=0, description="threads of each model (onnxruntime intra-op, OpenVINO "
        "`INFERENCE_NUM_THREADS`); 0: the cores available to the process (CPU affinity and cgroup quota); the two "
        "models never compute at once")  # fmt: skip
    intra_op_spinning: bool = Field(False, description="onnxruntime's intra-op threads busy-wait between runs (its "
        "default; off: the spin leaves the cores to decoding and cropping: ResNet-50 served 9 percent faster on 2 cores)")  # fmt: skip
    opencv_threads: int = Field(1, ge=0, description="threads of each OpenCV call (crop warps, letterbox, drawing; "
        "process-wide): 1: requests run in parallel instead of each warp, no hand-offs; 0: OpenCV's default, all cores")  # fmt: skip
    device: int = Field(
        0, ge=0, description="CUDA device index (TensorRT runtime; `device_id` of onnxruntime's CUDA and TensorRT EPs)"
    )

    # detector
    det_score_thr: float = Field(0.25, ge=0.0, le=1.0, description="detector person score threshold")
    det_iou_thr: float = Field(0.45, gt=0.0, le=1.0, description="detector NMS IoU threshold (OpenCV NMS)")
    det_max_detections: int = Field(100, ge=1, description="at most this many people per image")
    det_max_batch_size: int = Field(
        4,
        ge=1,
        description="most images in one detector batch across requests (a detector with a dynamic batch axis; a "
        "fixed-batch one runs its own batch)",
    )

    # pose
    bbox_padding: float = Field(1.25, gt=0.0, description="box padding before the square crop (MMPose 1.25)")
    flip_test: bool = Field(False, description="flip test: average with the mirrored crop (MMPose's flip-back)")
    max_batch_size: int = Field(32, ge=1, description="most crops in one pose-model batch")
    max_batch_wait_ms: float = Field(
        2.0,
        ge=0.0,
        description="how long a batch waits for the crops (pose) or images (detector) of other requests (ms)",
    )

    # input limits
    max_upload_bytes: int = Field(20 * 1024 * 1024, ge=1, description="largest accepted upload (bytes)")
    max_image_pixels: int = Field(50_000_000, ge=1, description="largest accepted image (width x height)")
    max_boxes: int = Field(200, ge=1, description="most caller boxes per request")
    decode_min_side: int = Field(0, ge=0, description="POST /pose decodes a JPEG at 1/2, 1/4 or 1/8 size (libjpeg "
                                 "DCT scaling) while its shorter side stays >= this many pixels; answers stay in "
                                 "original pixels (README: Large images); 0: full size")  # fmt: skip

    # admission control: work in flight is bounded by cost; beyond a budget a request gets 503 at once
    max_inflight_requests: int = Field(16, ge=1, description="requests admitted at once (more get 503 + Retry-After)")
    max_inflight_pixels: int = Field(
        100_000_000,
        ge=1,
        description="decoded pixels of admitted requests (the memory bound: about 7 bytes each while an 8-bit RGB image decodes, up to 15 for 16-bit)",
    )
    max_inflight_crops: int = Field(512, ge=1, description="pose crops of admitted requests (flip test counts 2)")
    request_timeout_s: float = Field(
        15.0, gt=0, description="per-request deadline: 504 after it, and the request's queued work is dropped"
    )
    retry_after_s: int = Field(1, ge=0, description="`Retry-After` of a 503 when overloaded")
    inference_timeout_s: float = Field(
        10.0,
        ge=0,
        description="a model call running longer is cancelled (onnxruntime `RunOptions.terminate`, OpenVINO "
        "`InferRequest.cancel`): its requests are retried alone, the one that still times out gets 500; 0: no limit",
    )
    unready_after_timeouts: int = Field(
        3, ge=1, description="/readyz answers 503 while this many model calls in a row ran past inference_timeout_s"
    )

    # video and live streams (POST /pose/video, the /pose/stream WebSocket, pose-predict)
    video_max_bytes: int = Field(
        512 * 1024 * 1024,
        ge=1,
        description="largest accepted video upload (bytes; spooled to a temporary file, never held in memory)",
    )
    video_max_pixels: int = Field(
        3840 * 2160,
        ge=1,
        description="largest video or stream frame (width x height), checked on the stream header before decoding",
    )
    video_max_frames: int = Field(
        20_000, ge=1, description="most frames of one video (declared in its header, or decoded so far)"
    )
    video_max_duration_s: float = Field(900.0, gt=0, description="longest accepted video (seconds, header or decoded)")
    video_max_decode_s: float = Field(
        300.0, gt=0, description="wall time one video's decoding may take in all (seconds)"
    )
    video_timeout_s: float = Field(
        1800.0, gt=0, description="deadline of one POST /pose/video request or pose-predict video (seconds)"
    )
    video_containers: Annotated[list[str], NoDecode] = Field(
        ["mp4", "mov", "matroska", "webm", "avi", "mpegts"],
        description="accepted video containers (FFmpeg demuxer names; comma-separated or JSON)",
    )
    video_codecs: Annotated[list[str], NoDecode] = Field(
        ["h264", "hevc", "vp8", "vp9", "av1", "mpeg4", "mjpeg"],
        description="accepted video codecs (FFmpeg decoder names; comma-separated or JSON)",
    )
    det_interval: int = Field(
        1,
        ge=1,
        description="video / streams: the detector runs every N-th frame; in between, each track's box comes from "
        "its previous keypoints (at once when a track is lost or a scene cut is seen)",
    )
    pose_nms_thr: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description="video / streams: a person whose keypoints match a higher-scoring person's with OKS above this "
        "is a duplicate (two boxes around one person) and is dropped (MMDeploy PoseTracker's pose_nms_thr; 1: keep all)",
    )
    track_max_missed: int = Field(
        30, ge=0, description="a track ends when it goes unmatched in more than this many frames in a row"
    )
    track_min_similarity: float = Field(
        0.3, gt=0.0, le=1.0, description="least OKS (IoU for track_method iou) that continues a track"
    )
    track_method: Literal["oks", "iou"] = Field(
        "oks",
        description="pose tracking: association by keypoint OKS (boxes' IoU where keypoints are missing) or by IoU",
    )
    smooth_min_cutoff: float = Field(
        1.0, gt=0.0, description="One-Euro filter: minimum cutoff frequency (Hz); lower smooths more when still"
    )
    smooth_beta: float = Field(
        0.05, ge=0.0, description="One-Euro filter: speed coefficient (per pixel/s); higher lags less when moving"
    )
    smooth_d_cutoff: float = Field(1.0, gt=0.0, description="One-Euro filter: cutoff of the speed estimate (Hz)")
    scene_cut_threshold: float = Field(
        27.0,
        gt=0.0,
        description="a frame whose HSV content differs from the previous one's by more than this starts a scene "
        "(new tracks, the detector runs)",
    )
    stream_frames_in_flight: int = Field(
        2, ge=1, description="frames of one video or stream decoded or queued ahead of its processing"
    )
    max_streams: int = Field(8, ge=1, description="videos and WebSocket streams served at once (more get 503)")
    stream_idle_timeout_s: float = Field(
        60.0,
        gt=0,
        description="a WebSocket stream that sends nothing, or reads no reply, for this long is closed; a "
        "POST /pose/video client that reads no line for this long loses its answer",
    )

    # connections (uvicorn)
    max_connections: int = Field(256, ge=1, description="open connections (more are closed / get 503)")
    max_header_bytes: int = Field(16384, ge=1024, description="largest request head (request line + headers)")
    header_timeout_s: float = Field(10.0, gt=0, description="a request's headers must arrive within this")
    read_timeout_s: float = Field(10.0, gt=0, description="longest pause while a request body is read (408)")
    keepalive_timeout_s: int = Field(5, ge=1, description="idle keep-alive connections are closed after this")
    shutdown_timeout_s: int = Field(
        10,
        ge=0,
        description="on SIGTERM, in-flight work gets this long (inference still running 1 s before it is cancelled: "
        "JSON 503), then exit",
    )

    # security
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        [],
        description="API keys (comma-separated or a JSON list; prefer the file); set: POST /pose and "
        "GET /v1/models need `Authorization: Bearer <key>` or `X-API-Key`",
    )
    api_keys_file: Path | None = Field(None, description="file with one API key per line (added to api_keys)")
    cors_allow_origins: Annotated[list[str], NoDecode] = Field(
        [], description="CORS allow-list of origins (comma-separated or JSON); none: no CORS headers"
    )
    docs_enabled: bool = Field(True, description="serve /docs, /redoc and /openapi.json")
    page_enabled: bool = Field(True, description="serve the demo page at /")
    max_render_pixels: int = Field(
        4_000_000, ge=1, description="`render=true` JPEGs larger than this are drawn downscaled"
    )

    # server
    host: str = Field("127.0.0.1", description="bind address (0.0.0.0 in a container)")
    port: int = Field(8000, ge=0, le=65535, description="port")
    root_path: str = Field(
        "",
        pattern=r"^(/[^/\s]+)*$",
        description="the path prefix a proxy / ingress serves the app under (and strips), e.g. /pose-api (no "
        "trailing slash; empty: none): /docs and the OpenAPI schema's server URL name it",
    )
    workers: int = Field(1, ge=1, le=64, description="server processes forked on one port, each with its own "
                         "models, batching, admission and /metrics (README: Using more cores); Linux only")  # fmt: skip
    warmup: bool = Field(
        True, description="warm both models up before /readyz turns 200 (pose batch sizes: `warmup_batch_sizes`)"
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="log level")
    log_format: Literal["text", "json"] = Field(
        "text", description="log lines as text or one JSON object per line; each names its request id (X-Request-ID)"
    )
    otel_tracing: bool = Field(
        False,
        description="OpenTelemetry spans: one per request (FastAPI instrumentation) and per stage (decode, detect, "
        "crop, pose); needs the otel extra; exporter from the OTEL_* variables",
    )
    exit_on_load_failure: bool = Field(
        True,
        description="a missing model file or an invalid card ends pose-serve before the port is bound (exit status 1), "
        "a model that fails to load at start-up (corrupt file) ends it with exit status 3, the reason on stderr; "
        "false: stay up with /readyz 503",
    )

    # GPU execution (issue 11): onnxruntime CUDA / TensorRT EP options, TensorRT engine choice, warm-up.
    # onnxruntime docs: execution-providers/CUDA-ExecutionProvider.html and TensorRT-ExecutionProvider.html
    cudnn_conv_algo_search: Literal["HEURISTIC", "EXHAUSTIVE", "DEFAULT"] = Field(
        "HEURISTIC",
        description="cuDNN convolution algorithm search of onnxruntime's CUDA EP (EXHAUSTIVE benchmarks again "
        "for every new input shape, i.e. every batch size, under live traffic)",
    )
    gpu_tf32: bool = Field(
        False,
        description="let onnxruntime's CUDA EP use TF32 tensor cores for float32 (faster on Ampere and later, "
        "10-bit mantissa; off: float32 as on the CPU)",
    )
    gpu_mem_limit: int = Field(0, ge=0, description="onnxruntime CUDA EP memory arena limit per model, bytes (0: none)")
    gpu_arena_extend_strategy: Literal["kNextPowerOfTwo", "kSameAsRequested"] = Field(
        "kNextPowerOfTwo", description="how onnxruntime's CUDA EP arena grows"
    )
    trt_precision: Literal["auto", "fp16", "fp32"] = Field(
        "auto",
        description="TensorRT precision: the cached engine the tensorrt runtime takes (auto: fp16 if cached, else "
        "fp32) and `trt_fp16_enable` of onnxruntime's TensorRT EP (auto: fp16)",
    )
    trt_opt_batch_size: int = Field(
        8, ge=1, description="batch size TensorRT tunes kernels for (profile opt; at most the max batch size)"
    )
    build_engines: bool = Field(
        True,
        description="tensorrt runtime: build the served .onnx models' missing engines at start-up, before the port is "
        "bound (`pose-export engine --served` in a subprocess, torch-free; minutes on a first start, a cache hit after)",
    )
    warmup_batch_sizes: Literal["auto", "all", "one"] = Field(
        "auto",
        description="pose batch sizes the warm-up runs: all of 1..max (auto on the CUDA EP, which tunes per shape), "
        "the TensorRT profile's min/opt/max (auto on TensorRT), or one (auto on CPU)",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The usual sources, plus the deprecated variables of :data:`DEPRECATED_NAMES` below the current ones."""
        old = [s for s in (env_settings, dotenv_settings) if isinstance(s, EnvSettingsSource)]
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            _DeprecatedEnvSource(settings_cls, *old),
            file_secret_settings,
        )

    @field_validator("cache_dir", mode="after")
    @classmethod
    def _expand_user(cls, v: Path) -> Path:
        return v.expanduser()

    @field_validator("providers", "api_keys", "cors_allow_origins", "video_containers", "video_codecs", mode="before")
    @classmethod
    def _split_list(cls, v, info):
        """A list field given as text: a JSON list, or comma-separated values."""
        if isinstance(v, str):
            text = v.strip()
            if text.startswith("["):
                try:
                    return json.loads(text)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{info.field_name}: not a JSON list: {exc}") from exc
            items = [p.strip() for p in text.split(",") if p.strip()]
            return items or (None if info.field_name == "providers" else [])
        return v

    @model_validator(mode="after")
    def _precision_needs_openvino(self) -> Settings:
        if self.precision != "fp32" and self.runtime != "openvino":
            raise ValueError(
                f"precision {self.precision} needs runtime openvino (POSE_RUNTIME=openvino); the {self.runtime} "
                "runtime runs fp32 (TensorRT engines: trt_precision)"
            )
        return self

    @model_validator(mode="after")
    def _budgets_admit_the_largest_image(self) -> Settings:
        if self.max_inflight_pixels < self.max_image_pixels:
            raise ValueError(
                f"max_inflight_pixels ({self.max_inflight_pixels}) must be >= max_image_pixels "
                f"({self.max_image_pixels}), or the largest accepted image could never be decoded"
            )
        return self

    def api_key_set(self) -> set[str]:
        """The accepted API keys: ``api_keys`` plus the non-empty lines of ``api_keys_file``.

        Raises:
            ValueError: the key file cannot be read (named).
        """
        keys = {k.get_secret_value() for k in self.api_keys}
        if self.api_keys_file is not None:
            try:
                lines = Path(self.api_keys_file).read_text().splitlines()
            except OSError as exc:
                raise ValueError(f"api_keys_file {self.api_keys_file} cannot be read: {exc}") from exc
            keys |= {line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")}
        return keys

    @property
    def cache(self) -> CacheLayout:
        """The cache folders below :attr:`cache_dir`."""
        return CacheLayout(self.cache_dir)


#: Every field: ``pose-serve`` takes them all.
SERVE_FIELDS: tuple[str, ...] = tuple(Settings.model_fields)
