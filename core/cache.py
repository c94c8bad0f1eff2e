"""The cache layout: every path below the cache root (``Settings.cache_dir``), in one place::

    <cache_dir>/checkpoints/<MMPose checkpoint>.pth
    <cache_dir>/downloads/yolo11n.pt
    <cache_dir>/detector/yolo11n.onnx (+ yolo11n.json, its detector card, when exported by this version)
    <cache_dir>/detector/rtmdet-nano.onnx + rtmdet-nano.json (``POSE_DEFAULT_DETECTOR=rtmdet-nano``)
    <cache_dir>/pose/ipr_res50_debias.onnx + ipr_res50_debias.json (the model card; any zoo name served by
        ``pose-serve --pose NAME`` lies here too)
    <cache_dir>/trained/<checkpoint sha256[:16]>/<config name>.onnx + .json (``pose-serve --pose best.pth``)
    <cache_dir>/engines/<gpu>/trt-<version>/<onnx stem>-<sha256[:16]>-<precision>-b<min>-<opt>-<max>.engine
        (+ ``.engine.json``: the build's sidecar)
    <cache_dir>/engines/onnxruntime-trt/ort-<version>-trt-<version>/  (onnxruntime's TensorRT EP engine + timing caches)
    <cache_dir>/openvino/<device>/  (OpenVINO's compiled-model cache, ``CACHE_DIR``)
    <cache_dir>/int8/<model sha256[:16]>/<stem>.xml + .bin (+ <stem>.json: the int8 card or the detector's record)
        (``pose-export quantize``: NNCF post-training quantisation of the model whose file has that hash)

TensorRT engines are not portable between GPUs or TensorRT versions, so their folder is keyed by the GPU's name and
the TensorRT version, and the file name by the ONNX file's SHA-256, precision and batch profile
(:meth:`CacheLayout.engine_path`); the service finds a cached engine (``inference.runtime_trt.find_cached_engine``)
and the export package builds one (``export.tensorrt.EngineCache``) by the same names.

Torch-free, stdlib only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from core.precision import ENGINE_PRECISIONS

#: The default served models (``pose-serve`` with no model paths); ``Settings.default_detector`` picks one of
#: :data:`DEFAULT_DETECTORS`.
DEFAULT_DETECTOR = "yolo11n"
DEFAULT_DETECTORS = ("yolo11n", "rtmdet-nano")
DEFAULT_POSE = "ipr_res50_debias"
#: File suffix of an OpenVINO IR model (``<stem>.xml`` + ``<stem>.bin``).
IR_SUFFIX = ".xml"


def slug(text: str) -> str:
    """A file-name-safe form of a GPU name or version: ``NVIDIA H100 80GB HBM3`` -> ``nvidia-h100-80gb-hbm3``."""
    s = re.sub(r"[^a-z0-9.]+", "-", text.strip().lower()).strip("-")
    return s or "unknown"


def check_profile(profile: tuple[int, int, int]) -> tuple[int, int, int]:
    """Validate a (min, opt, max) batch profile.

    Raises:
        ValueError: not three integers with 1 <= min <= opt <= max.
    """
    try:
        lo, opt, hi = (int(v) for v in profile)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"batch profile must be three integers (min, opt, max), got {profile!r}") from exc
    if not 1 <= lo <= opt <= hi:
        raise ValueError(f"batch profile must satisfy 1 <= min <= opt <= max, got min={lo} opt={opt} max={hi}")
    return lo, opt, hi


def sidecar_path(engine_path: str | Path) -> Path:
    """The JSON sidecar beside an engine: ``model.engine`` -> ``model.engine.json`` (never a model card's ``model.json``)."""
    p = Path(engine_path)
    return p.with_name(p.name + ".json")


def _check_sha256(sha256: str) -> str:
    if len(sha256) < 16 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError(f"expected a lower-case hex SHA-256, got {sha256!r}")
    return sha256


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
        """TensorRT engines, keyed by GPU, TensorRT version and ONNX hash (``inference.runtime_trt``)."""
        return self.root / "engines"

    def ort_tensorrt(self, ort_version: str, trt_version: str) -> Path:
        """Engine and timing caches of onnxruntime's TensorRT EP (``trt_engine_cache_path``), one folder per
        onnxruntime and TensorRT version: the EP's cached engines must not be reused across them."""
        return self.engines / "onnxruntime-trt" / f"ort-{ort_version}-trt-{trt_version}"

    def engine_folder(self, gpu_name: str, trt_version: str) -> Path:
        """The folder of the engines built on this GPU with this TensorRT version (engines are not portable)."""
        return self.engines / slug(gpu_name) / f"trt-{slug(trt_version)}"

    def engine_path(
        self,
        onnx_path: str | Path,
        onnx_sha256: str,
        precision: str,
        profile: tuple[int, int, int],
        gpu_name: str,
        trt_version: str,
    ) -> Path:
        """Where the engine for this (GPU, TensorRT version, ONNX file, precision, batch profile) lives.

        Raises:
            ValueError: unknown precision or invalid profile.
        """
        if precision not in ENGINE_PRECISIONS:
            raise ValueError(
                f"precision {precision!r} must be one of {list(ENGINE_PRECISIONS)} (int8 is not supported yet)"
            )
        lo, opt, hi = check_profile(profile)
        name = f"{Path(onnx_path).stem}-{onnx_sha256[:16]}-{precision}-b{lo}-{opt}-{hi}.engine"
        return self.engine_folder(gpu_name, trt_version) / name

    def engine_glob(self, onnx_path: str | Path, onnx_sha256: str) -> str:
        """The glob pattern (inside :meth:`engine_folder`) of every engine built from this ONNX file."""
        return f"{Path(onnx_path).stem}-{onnx_sha256[:16]}-*.engine"

    def openvino(self, device: str) -> Path:
        """OpenVINO's compiled-model cache for one device (``CACHE_DIR``; OpenVINO keys the blobs inside by model,
        configuration and OpenVINO version)."""
        return self.root / "openvino" / "".join(c if c.isalnum() else "-" for c in device.lower())

    def int8(self, model_sha256: str) -> Path:
        """The folder holding the int8 quantisation (``pose-export quantize``) of the model file whose SHA-256 is
        ``model_sha256``: ``<stem>.xml`` / ``.bin`` and its ``<stem>.json`` (card or record)."""
        return self.root / "int8" / _check_sha256(model_sha256)[:16]

    def int8_model(self, model_path: str | Path, model_sha256: str) -> Path:
        """The int8 OpenVINO IR of the fp32 model file ``model_path`` (SHA-256 ``model_sha256``):
        ``int8/<sha256[:16]>/<stem>.xml`` (its card or record is the same path with ``.json``)."""
        return self.int8(model_sha256) / f"{Path(model_path).stem}{IR_SUFFIX}"

    @property
    def trained(self) -> Path:
        """Pose checkpoints served directly (``pose-serve --pose run/best.pth``), exported to ONNX + card."""
        return self.root / "trained"

    def trained_pose(self, sha256: str) -> Path:
        """The folder holding the ONNX + card exported from the checkpoint whose SHA-256 is ``sha256``."""
        return self.trained / _check_sha256(sha256)[:16]

    @property
    def default_detector(self) -> Path:
        """The default detector ONNX (:data:`DEFAULT_DETECTOR`)."""
        return self.detector(DEFAULT_DETECTOR)

    def detector(self, name: str) -> Path:
        """The ONNX of the default detector ``name`` (one of :data:`DEFAULT_DETECTORS`; its detector card, where
        written, is ``<name>.json`` beside it).

        Raises:
            ValueError: an unknown name.
        """
        if name not in DEFAULT_DETECTORS:
            raise ValueError(f"unknown default detector {name!r}; known: {list(DEFAULT_DETECTORS)}")
        return self.root / "detector" / f"{name}.onnx"

    @property
    def default_pose_card(self) -> Path:
        """The default pose model's card JSON (:data:`DEFAULT_POSE`; its ONNX lies beside it)."""
        return self.zoo_pose_card(DEFAULT_POSE)

    def zoo_pose_card(self, name: str) -> Path:
        """The card JSON of the zoo model ``name`` exported for serving (``pose-serve --pose NAME``; its ONNX beside it).

        Raises:
            ValueError: ``name`` is not a plain file-name stem.
        """
        if not name or name != Path(name).name or name.startswith("."):
            raise ValueError(f"zoo model name {name!r} must be a plain name (no folders)")
        return self.root / "pose" / f"{name}.json"
