"""Prepare the default models into the cache: download (hash-verified) and export.

* Detector ``yolo11n``: the Ultralytics YOLO11n COCO checkpoint from the Ultralytics assets release
  (:data:`YOLO11N_URL`). Ultralytics publishes no checksum for it; :data:`YOLO11N_SHA256` is the
  SHA-256 that many independent public projects pin for this exact file (5,613,764 bytes), and the
  download is rejected unless it matches. Exported with :func:`export.detector.export_detector`.
* Pose ``ipr_res50_debias``: MMPose's published checkpoint, downloaded and verified by
  ``models.zoo.load_pretrained``, exported with :func:`export.pose.export_pose`.

Layout inside the cache (see ``service/defaults.py``, which the service reads)::

    <cache>/downloads/yolo11n.pt
    <cache>/checkpoints/ipr_res50_debias_...pth
    <cache>/detector/yolo11n.onnx
    <cache>/pose/ipr_res50_debias.onnx, ipr_res50_debias.json

``POSE_OFFLINE=1`` forbids downloads: missing files then raise :class:`DefaultsError` naming the URL and
where to put the file.
"""

from __future__ import annotations

import os
from pathlib import Path

from service.defaults import DEFAULT_DETECTOR, DEFAULT_POSE, default_cache_dir, default_model_paths

YOLO11N_URL = "https://github.com/ultralytics/assets/releases/download/v8.3.0/yolo11n.pt"
YOLO11N_SHA256 = "0ebbc80d4a7680d14987a577cd21342b65ecfd94632bd9a8da63ae6417644ee1"


class DefaultsError(RuntimeError):
    """A default model could not be downloaded, verified or exported."""


def _offline() -> bool:
    return os.environ.get("POSE_OFFLINE", "0") not in ("0", "", "false", "False")


def fetch_yolo11n(cache_dir: Path, progress: bool = True) -> Path:
    """``<cache>/downloads/yolo11n.pt``, downloaded and SHA-256-verified if absent.

    Raises:
        DefaultsError: offline, download failed, or the hash does not match.
    """
    from models.zoo import ChecksumError, download_checkpoint, sha256_file

    dest = cache_dir / "downloads" / "yolo11n.pt"
    if dest.is_file():
        digest = sha256_file(dest)
        if digest != YOLO11N_SHA256:
            raise DefaultsError(f"{dest} has SHA-256 {digest}, expected {YOLO11N_SHA256}; delete it and retry")
        return dest
    if _offline():
        raise DefaultsError(f"POSE_OFFLINE is set and {dest} is missing; download {YOLO11N_URL} and put it there")
    try:
        return download_checkpoint(YOLO11N_URL, dest, YOLO11N_SHA256, progress=progress)
    except ChecksumError as exc:
        raise DefaultsError(str(exc)) from exc
    except OSError as exc:  # URLError is an OSError
        raise DefaultsError(
            f"could not download {YOLO11N_URL} ({exc}); download it elsewhere and put it at {dest} "
            f"(SHA-256 {YOLO11N_SHA256})"
        ) from exc


def prepare_defaults(
    cache_dir: str | Path | None = None, force: bool = False, progress: bool = True, allow_fp32_noise: bool = False
) -> tuple[Path, Path]:
    """Download and export the default detector and pose model into ``cache_dir``.

    Args:
        cache_dir: cache directory (default ``$POSE_CACHE_DIR`` or ``~/.cache/poseserve``).
        force: export again even when the outputs exist.
        progress: tqdm progress bars (downloads and steps).
        allow_fp32_noise: accept a pose export above 1e-3 px when it is within torch's own fp32 noise
            (``export.pose.export_pose_model(strict=False)``); the card records the rule that passed.

    Returns:
        (detector ONNX, pose card JSON), the paths ``service.defaults.resolve_default_models`` returns.

    Raises:
        DefaultsError: a download, verification or export failed (the message says which and how to fix it).
    """
    from tqdm import tqdm

    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    det_onnx, card_json = default_model_paths(cache)
    steps = tqdm(total=2, desc="default models", unit="model", disable=not progress)
    errors: list[str] = []
    try:
        if force or not det_onnx.is_file():
            steps.set_postfix_str(DEFAULT_DETECTOR)
            try:
                _prepare_detector(cache, det_onnx, progress)
            except DefaultsError as exc:
                errors.append(f"{DEFAULT_DETECTOR}: {exc}")
        steps.update(1)
        if force or not (card_json.is_file() and card_json.with_suffix(".onnx").is_file()):
            steps.set_postfix_str(DEFAULT_POSE)
            try:
                _prepare_pose(cache, card_json, progress, allow_fp32_noise)
            except DefaultsError as exc:
                errors.append(f"{DEFAULT_POSE}: {exc}")
        steps.update(1)
    finally:
        steps.close()
    if errors:
        raise DefaultsError("; ".join(errors))
    return det_onnx, card_json


def _prepare_detector(cache: Path, det_onnx: Path, progress: bool) -> None:
    from export.detector import DetectorExportError, export_detector, import_ultralytics

    try:
        import_ultralytics()  # fail before downloading when Ultralytics is missing
        pt = fetch_yolo11n(cache, progress)
        export_detector(pt, det_onnx)
    except DetectorExportError as exc:
        raise DefaultsError(str(exc)) from exc


def _prepare_pose(cache: Path, card_json: Path, progress: bool, allow_fp32_noise: bool = False) -> None:
    from export.pose import PoseExportError, export_pose
    from models.zoo import get_config, load_pretrained

    ckpt_dir = cache / "checkpoints"
    cfg = get_config(DEFAULT_POSE)
    if _offline() and not (ckpt_dir / cfg.checkpoint_filename).is_file():
        raise DefaultsError(
            f"POSE_OFFLINE is set and {ckpt_dir / cfg.checkpoint_filename} is missing; "
            f"download {cfg.checkpoint_url} and put it there"
        )
    try:
        ckpt = load_pretrained(DEFAULT_POSE, cache_dir=ckpt_dir, progress=progress)
    except (FileNotFoundError, RuntimeError) as exc:
        raise DefaultsError(str(exc)) from exc
    try:
        export_pose(DEFAULT_POSE, card_json.parent, checkpoint=ckpt, strict=not allow_fp32_noise)
    except PoseExportError as exc:
        raise DefaultsError(str(exc)) from exc
