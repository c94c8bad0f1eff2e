"""The named groups of :class:`core.settings.Settings` fields: what each command takes is a sum of these
(``core.cli_options.add_settings_options``). Each is a tuple of field names; ``core.settings`` re-exports them all,
with :data:`core.settings.SERVE_FIELDS` (every field: ``pose-serve`` takes them all), so commands import them from
there.

Plain data: nothing here reads the environment (``core.settings`` is the one reader of ``POSE_*`` variables).
"""

from __future__ import annotations

#: The served models (``--pose``, ``--detector``).
MODEL_FIELDS: tuple[str, ...] = ("pose_model", "detector_model")
#: Which default models are prepared and served when no model path is given.
DEFAULT_MODEL_FIELDS: tuple[str, ...] = ("default_detector", "prepare_defaults")
#: The cache root and whether downloads are allowed.
CACHE_FIELDS: tuple[str, ...] = ("cache_dir", "offline")
#: The host resources the models get: their threads (and whether they spin), OpenCV's threads, the CUDA device.
HOST_FIELDS: tuple[str, ...] = ("intra_op_threads", "intra_op_spinning", "opencv_threads", "device")
#: How both models run: backend, precision, OpenVINO device, onnxruntime providers, and the host resources.
RUNTIME_FIELDS: tuple[str, ...] = (
    "runtime",
    "precision",
    "allow_unsupported_precision",
    "ov_device",
    "providers",
    "allow_provider_fallback",
    *HOST_FIELDS,
)
#: How the pipeline crops and batches people for the pose model.
PIPELINE_FIELDS: tuple[str, ...] = ("max_batch_size", "flip_test", "bbox_padding", "decode_min_side")
#: The person detector's thresholds.
DETECTOR_FIELDS: tuple[str, ...] = ("det_score_thr", "det_iou_thr", "det_max_detections")
#: The TensorRT batch profile an engine is built for (``pose-export engine``: min 1, opt, max; a pose model's max is
#: ``max_batch_size`` crops, a detector's ``det_max_batch_size`` images).
ENGINE_PROFILE_FIELDS: tuple[str, ...] = ("max_batch_size", "det_max_batch_size", "trt_opt_batch_size")
#: Video and streams: decode limits, the detection interval, tracking and smoothing (``pose-predict``).
VIDEO_FIELDS: tuple[str, ...] = (
    "video_max_bytes",
    "video_max_pixels",
    "video_max_frames",
    "video_max_duration_s",
    "video_max_decode_s",
    "video_timeout_s",
    "video_containers",
    "video_codecs",
    "det_interval",
    "pose_nms_thr",
    "track_max_missed",
    "track_min_similarity",
    "track_method",
    "smooth_min_cutoff",
    "smooth_beta",
    "smooth_d_cutoff",
    "scene_cut_threshold",
    "stream_frames_in_flight",
)
#: Logging.
LOG_FIELDS: tuple[str, ...] = ("log_level",)
