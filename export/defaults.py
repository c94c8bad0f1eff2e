"""Prepare the default models into the cache: download (hash-verified) and export.

* Detector ``yolo11n`` (``Settings.default_detector``, the default): the Ultralytics YOLO11n COCO checkpoint from the
  Ultralytics assets release (:data:`YOLO11N_URL`). Ultralytics publishes no checksum for it; :data:`YOLO11N_SHA256`
  is the SHA-256 that many independent public projects pin for this exact file (5,613,764 bytes), and the
  download is rejected unless it matches. Exported with :func:`export.detector.export_detector` (Ultralytics'
  exporter), with a detector card (contract ``ultralytics``, licence AGPL-3.0: the weights and the exporter are
  AGPL-3.0).
* Detector ``rtmdet-nano`` (``POSE_DEFAULT_DETECTOR=rtmdet-nano``; Apache-2.0): MMPose's RTMDet-nano person detector
  (``rtmdet_nano_8xb32-100e_coco-obj365-person-05d8511e.pth``, MMPose ``projects/rtmpose``) as OpenMMLab published it
  exported by MMDeploy (ONNX end2end, NMS in the graph, input 320 x 320), in the "ONNX SDK" zip of
  :data:`RTMDET_NANO_URL` (what rtmlib downloads). No torch and no export here: the zip's ``end2end.onnx`` is taken as
  it is. What is verified: OpenMMLab publishes no checksum for the zip or the ONNX (the ``05d8511e`` in the name is the
  ``.pth`` checkpoint's SHA-256 prefix, not this file's); :data:`RTMDET_NANO_ONNX_SHA256` is the SHA-256 of
  ``end2end.onnx`` that two independent public projects pin, and the file is rejected unless it matches; the zip's
  MMDeploy SDK ``pipeline.json`` must state the preprocessing the detector card says (Resize keep-ratio, Pad 114,
  Normalize mean / std in BGR), else the preparation fails. Its accuracy was not measured here (no network to fetch
  it in this project's CI); the card is :func:`rtmdet_nano_card`. The same weights can instead be exported from the
  ``.pth`` by ``pose-export rtmdet`` (``export/rtmdet.py``; the torch port matches MMDet 3.3.0's modules on a golden file).
* Pose ``ipr_res50_debias``: MMPose's published checkpoint, downloaded and verified by
  ``models.checkpoints.load_pretrained``, exported with :func:`export.pose.export_pose`.

Where the files go is :class:`core.cache.CacheLayout` (``downloads/``, ``checkpoints/``,
``default_detector``, ``default_pose_card``), the layout the service reads. ``Settings.offline``
forbids downloads: missing files then raise :class:`DefaultsError` naming the URL and where to put the file.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.cache import DEFAULT_DETECTOR, DEFAULT_POSE, CacheLayout
from core.settings import Settings

if TYPE_CHECKING:
    from models.detector_card import DetectorCard

YOLO11N_URL = "https://github.com/ultralytics/assets/releases/download/v8.3.0/yolo11n.pt"
YOLO11N_SHA256 = "0ebbc80d4a7680d14987a577cd21342b65ecfd94632bd9a8da63ae6417644ee1"
RTMDET_NANO_URL = (
    "https://download.openmmlab.com/mmpose/v1/projects/rtmposev1/onnx_sdk/"
    "rtmdet_nano_8xb32-100e_coco-obj365-person-05d8511e.zip"
)
#: SHA-256 of the zip's ``end2end.onnx`` as independent public projects pin it (OpenMMLab publishes none).
RTMDET_NANO_ONNX_SHA256 = "8297e829ccc5590c8e2d32d5a211f322a0585fb7467eec85eb12c9525b0b95d6"
#: Input side of the published RTMDet-nano person export (MMPose ``rtmdet_nano_320-8xb32_coco-person.py``).
RTMDET_NANO_SIZE = 320


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


def rtmdet_nano_card(model_file: str = "rtmdet-nano.onnx", sha256: str = RTMDET_NANO_ONNX_SHA256) -> DetectorCard:
    """The detector card of the published RTMDet-nano person ONNX: contract ``mmdeploy`` (outputs ``dets``,
    ``labels``), input ``input`` 320 x 320 BGR, ``(x - mean) / std`` with RTMDet's mean / std, MMDet's ``Resize``
    (keep ratio, rounding half up) and ``Pad`` (bottom-right, 114), person class 0 (a one-class model), Apache-2.0."""
    from models.detector_card import default_card

    return default_card(
        "mmdeploy",
        RTMDET_NANO_SIZE,
        name="rtmdet-nano",
        model_file=model_file,
        licence="Apache-2.0",
        source={
            "url": RTMDET_NANO_URL,
            "member": "end2end.onnx",
            "sha256": sha256,
            "checkpoint": "rtmdet_nano_8xb32-100e_coco-obj365-person-05d8511e.pth (MMPose projects/rtmpose)",
        },
    )


def _pipeline_transforms(pipeline: dict) -> dict[str, dict]:
    """The MMDeploy SDK ``pipeline.json``'s transforms by type (wherever they sit in its task tree)."""
    found: dict[str, dict] = {}

    def walk(node) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("type"), str) and node["type"] not in found:
                found[node["type"]] = node
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(pipeline)
    return found


def check_sdk_pipeline(pipeline: dict, card: DetectorCard) -> None:
    """Check that an MMDeploy SDK ``pipeline.json`` states the preprocessing the card says: ``Resize`` with
    ``keep_ratio``, ``Pad`` with the card's pad value, ``Normalize`` with its mean / std and ``to_rgb`` false for a BGR
    card.

    Raises:
        DefaultsError: a transform is missing or says otherwise (the message names it).
    """
    t = _pipeline_transforms(pipeline)
    problems = []
    if not t.get("Resize", {}).get("keep_ratio", False):
        problems.append(f"Resize {t.get('Resize')} is not keep_ratio")
    pad = t.get("Pad", {}).get("pad_val")
    pad = pad.get("img", pad) if isinstance(pad, dict) else pad
    if np.ravel(pad).tolist() not in ([card.letterbox.pad_value], [card.letterbox.pad_value] * 3):
        problems.append(f"Pad value {pad} != {card.letterbox.pad_value}")
    norm = t.get("Normalize", {})
    if not (
        np.allclose(norm.get("mean", [np.nan] * 3), card.input.mean)
        and np.allclose(norm.get("std", [np.nan] * 3), card.input.std)
        and bool(norm.get("to_rgb", False)) == (card.input.color == "RGB")
    ):
        problems.append(f"Normalize {norm} != mean {card.input.mean}, std {card.input.std}, colour {card.input.color}")
    if problems:
        raise DefaultsError("the MMDeploy SDK pipeline.json disagrees with the detector card: " + "; ".join(problems))


def fetch_rtmdet_nano(
    cache: CacheLayout,
    offline: bool = False,
    progress: bool = True,
    url: str = RTMDET_NANO_URL,
    sha256: str = RTMDET_NANO_ONNX_SHA256,
) -> tuple[Path, Path]:
    """``cache.detector("rtmdet-nano")`` and its card: the published MMDeploy ONNX of RTMDet-nano person taken out of
    ``<cache>/downloads/<zip>`` (downloaded if absent), its SHA-256 checked, the zip's ``pipeline.json`` checked
    against the card (:func:`check_sdk_pipeline`).

    Args:
        cache: the cache layout.
        offline: never download (a missing zip is then an error naming the URL and where to put it).
        progress: a download progress bar.
        url, sha256: the zip's URL and the SHA-256 its ``end2end.onnx`` must have.

    Returns:
        (ONNX path, detector card JSON path).

    Raises:
        DefaultsError: offline and missing, the download failed, the zip holds no ``end2end.onnx``, the ONNX's SHA-256
            differs, or the SDK pipeline disagrees with the card.
    """
    from models.checkpoints import download

    zip_path = cache.downloads / url.rsplit("/", 1)[-1]
    if not zip_path.is_file():
        if offline:
            raise DefaultsError(f"POSE_OFFLINE is set and {zip_path} is missing; download {url} and put it there")
        try:
            download(url, zip_path, None, progress=progress)
        except OSError as exc:
            raise DefaultsError(
                f"could not download {url} ({exc}); download it elsewhere and put it at {zip_path}"
            ) from exc
    try:
        with zipfile.ZipFile(zip_path) as zf:
            names = zf.namelist()
            onnx_member = next((n for n in names if n.rsplit("/", 1)[-1] == "end2end.onnx"), None)
            pipe_member = next((n for n in names if n.rsplit("/", 1)[-1] == "pipeline.json"), None)
            if onnx_member is None:
                raise DefaultsError(f"{zip_path} holds no end2end.onnx (members: {names})")
            data = zf.read(onnx_member)
            pipeline = json.loads(zf.read(pipe_member)) if pipe_member else None
    except zipfile.BadZipFile as exc:
        raise DefaultsError(f"{zip_path} is not a zip file ({exc}); delete it and prepare again") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise DefaultsError(f"SHA-256 of end2end.onnx in {zip_path} is {digest}, expected {sha256}; delete the zip")
    onnx_path = cache.detector("rtmdet-nano")
    card = rtmdet_nano_card(onnx_path.name, sha256)
    if pipeline is None:
        raise DefaultsError(f"{zip_path} holds no pipeline.json (the MMDeploy SDK preprocessing) to check the card by")
    check_sdk_pipeline(pipeline, card)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = onnx_path.with_suffix(".onnx.tmp")
    tmp.write_bytes(data)
    tmp.replace(onnx_path)
    return onnx_path, card.save(onnx_path.with_suffix(".json"))


def prepare_defaults(settings: Settings, force: bool = False, progress: bool = True):
    """Download and export the default detector (``settings.default_detector``) and pose model into ``settings.cache``.

    Args:
        settings: ``default_detector``, ``cache_dir``, ``offline`` and ``intra_op_threads`` (the export verification).
        force: export again even when the outputs exist.
        progress: tqdm progress bars (downloads and steps).

    Returns:
        (detector ONNX, pose card JSON): ``cache.detector(settings.default_detector)``, ``cache.default_pose_card``.

    Raises:
        DefaultsError: a download, verification or export failed (the message says which and how to fix it).
    """
    from tqdm import tqdm

    cache = settings.cache
    det_name = settings.default_detector
    det_onnx, card_json = cache.detector(det_name), cache.default_pose_card
    steps = tqdm(total=2, desc="default models", unit="model", disable=not progress)
    errors: list[str] = []
    try:
        if force or not (
            det_onnx.is_file() and (det_name == DEFAULT_DETECTOR or det_onnx.with_suffix(".json").is_file())
        ):
            steps.set_postfix_str(det_name)
            try:
                if det_name == "rtmdet-nano":
                    fetch_rtmdet_nano(cache, settings.offline, progress, sha256=RTMDET_NANO_ONNX_SHA256)
                else:
                    _prepare_detector(settings, progress)
            except DefaultsError as exc:
                errors.append(f"{det_name}: {exc}")
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
        export_detector(pt, settings.cache.default_detector, source={"url": YOLO11N_URL, "sha256": YOLO11N_SHA256})
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
