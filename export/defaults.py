"""Prepare the default models into the cache: download (hash-verified) and export.

* Detector ``yolo11n``: the Ultralytics YOLO11n COCO checkpoint from the Ultralytics assets release
  (:data:`YOLO11N_URL`). Ultralytics publishes no checksum for it; :data:`YOLO11N_SHA256` is the
  SHA-256 that many independent public projects pin for this exact file (5,613,764 bytes), and the
  download is rejected unless it matches. Exported with :func:`export.detector.export_detector`.
* Pose ``ipr_res50_debias``: MMPose's published checkpoint, downloaded and verified by
  ``models.checkpoints.load_pretrained``, exported with :func:`export.pose.export_pose`.

Where the files go is :class:`core.cache.CacheLayout` (``downloads/``, ``checkpoints/``,
``default_detector``, ``default_pose_card``), the layout the service reads. ``Settings.offline``
forbids downloads: missing files then raise :class:`DefaultsError` naming the URL and where to put the file.
"""

from __future__ import annotations

from core.cache import DEFAULT_DETECTOR, DEFAULT_POSE, CacheLayout
from core.settings import Settings

YOLO11N_URL = "https://github.com/ultralytics/assets/releases/download/v8.3.0/yolo11n.pt"
YOLO11N_SHA256 = "0ebbc80d4a7680d14987a577cd21342b65ecfd94632bd9a8da63ae6417644ee1"


class DefaultsError(RuntimeError):
    """A default model could not be downloaded, verified or exported."""


def fetch_yolo11n(cache: CacheLayout, offline: bool = False, progress: bool = True):
    """``<cache>/downloads/yolo11n.pt``, downloaded and SHA-256-verified if absent.

    Raises:
        DefaultsError: offline and missing, download failed, or the hash does not match.
    """
    from models.checkpoints import ChecksumError, download, verified_file

    dest = cache.downloads / "yolo11n.pt"
    try:
        if dest.is_file():
            return verified_file(dest, YOLO11N_SHA256, YOLO11N_URL)
        if offline:
            raise DefaultsError(f"POSE_OFFLINE is set and {dest} is missing; download {YOLO11N_URL} and put it there")
        return download(YOLO11N_URL, dest, YOLO11N_SHA256, progress=progress)
    except ChecksumError as exc:
        raise DefaultsError(str(exc)) from exc
    except OSError as exc:  # URLError is an OSError
        raise DefaultsError(
            f"could not download {YOLO11N_URL} ({exc}); download it elsewhere and put it at {dest} "
            f"(SHA-256 {YOLO11N_SHA256})"
        ) from exc


def prepare_defaults(settings: Settings, force: bool = False, progress: bool = True):
    """Download and export the default detector and pose model into ``settings.cache``.

    Args:
        settings: ``cache_dir``, ``offline`` and ``intra_op_threads`` (the export verification).
        force: export again even when the outputs exist.
        progress: tqdm progress bars (downloads and steps).

    Returns:
        (detector ONNX, pose card JSON): ``cache.default_detector``, ``cache.default_pose_card``.

    Raises:
        DefaultsError: a download, verification or export failed (the message says which and how to fix it).
    """
    from tqdm import tqdm

    cache = settings.cache
    det_onnx, card_json = cache.default_detector, cache.default_pose_card
    steps = tqdm(total=2, desc="default models", unit="model", disable=not progress)
    errors: list[str] = []
    try:
        if force or not det_onnx.is_file():
            steps.set_postfix_str(DEFAULT_DETECTOR)
            try:
                _prepare_detector(settings, progress)
            except DefaultsError as exc:
                errors.append(f"{DEFAULT_DETECTOR}: {exc}")
        steps.update(1)
        if force or not (card_json.is_file() and card_json.with_suffix(".onnx").is_file()):
            steps.set_postfix_str(DEFAULT_POSE)
            try:
                _prepare_pose(settings)
            except DefaultsError as exc:
                errors.append(f"{DEFAULT_POSE}: {exc}")
        steps.update(1)
    finally:
        steps.close()
    if errors:
        raise DefaultsError("; ".join(errors))
    return det_onnx, card_json


def _prepare_detector(settings: Settings, progress: bool) -> None:
    from export.detector import DetectorExportError, export_detector, import_ultralytics

    try:
        import_ultralytics()  # fail before downloading when Ultralytics is missing
        pt = fetch_yolo11n(settings.cache, settings.offline, progress)
        export_detector(pt, settings.cache.default_detector)
    except DetectorExportError as exc:
        raise DefaultsError(str(exc)) from exc


def _prepare_pose(settings: Settings) -> None:
    from export.pose import PoseExportError, export_pose

    try:
        export_pose(
            DEFAULT_POSE,
            settings.cache.default_pose_card.parent,
            cache_dir=settings.cache.checkpoints,
            offline=settings.offline,
            threads=settings.intra_op_threads,
        )
    except PoseExportError as exc:
        raise DefaultsError(str(exc)) from exc
