"""Person boxes for top-down evaluation and training: COCO ground truth as MMPose's top-down dataset takes it, and
detection-results files (``COCO_val2017_detections_AP_H_56_person.json``).

Light on purpose (numpy and :mod:`models.geometry` only): ``pose-eval`` (:mod:`evaluation.runner`) and the training
datasets (:mod:`training.data`) share these rules, and a ``train``-only install must import them without the serving
stack (onnxruntime, Pillow) that :mod:`evaluation.runner` pulls in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evaluation.files import read_json_list
from models.geometry import bbox_xywh2xyxy


def coco_person_instance(ann: dict, img_w: int, img_h: int) -> tuple[np.ndarray, np.ndarray] | None:
    """One COCO person annotation as MMPose's top-down COCO dataset takes it, or None if MMPose skips it.

    Follows ``BaseCocoStyleDataset.parse_data_info`` / ``_is_valid_instance``
    (``mmpose/datasets/datasets/base/base_coco_style_dataset.py``): skip ``iscrowd``, annotations without
    ``bbox`` or ``keypoints``, ``num_keypoints == 0`` (or all-zero keypoints); clip the xywh box to
    ``[0, W-1] x [0, H-1]`` and skip it if it is empty after clipping. The training dataset and
    :func:`gt_bboxes` both use this rule.

    Args:
        ann: a COCO annotation dict (``bbox`` xywh, ``keypoints`` 3K numbers, ...).
        img_w, img_h: the image size in pixels.

    Returns:
        (bbox float32 [4] xyxy in image pixels, keypoints float32 [K, 3] = x, y, COCO visibility 0/1/2), or None.

    Raises:
        ValueError: ``bbox`` is not 4 numbers or ``keypoints`` not a multiple of 3 (the annotation id is named).
    """
    if ann.get("iscrowd", 0) or "bbox" not in ann or "keypoints" not in ann:
        return None
    try:
        x, y, w, h = (float(v) for v in ann["bbox"])
        kpts = np.asarray(ann["keypoints"], dtype=np.float32).reshape(-1, 3)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"annotation {ann.get('id')}: malformed bbox or keypoints ({exc})") from None
    if ann.get("num_keypoints", 1) == 0 or kpts.size == 0 or kpts.max() <= 0:
        return None
    x1, y1 = np.clip(x, 0, img_w - 1), np.clip(y, 0, img_h - 1)
    x2, y2 = np.clip(x + w, 0, img_w - 1), np.clip(y + h, 0, img_h - 1)
    if x2 <= x1 or y2 <= y1:
        return None
    return np.array([x1, y1, x2, y2], dtype=np.float32), kpts


def gt_bboxes(coco, image_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth person boxes of one image, as MMPose's top-down COCO dataset takes them
    (:func:`coco_person_instance`).

    Args:
        coco: a COCO object (pycocotools / xtcocotools).
        image_id: COCO image id.

    Returns:
        (bboxes float32 [N, 4] xyxy in original-image pixels, bbox scores float32 [N] = 1).
    """
    info = coco.imgs[image_id]
    bboxes = []
    for ann in coco.loadAnns(coco.getAnnIds(imgIds=[image_id])):
        inst = coco_person_instance(ann, info["width"], info["height"])
        if inst is not None:
            bboxes.append(inst[0])
    b = np.asarray(bboxes, dtype=np.float32).reshape(-1, 4)
    return b, np.ones(len(b), dtype=np.float32)


@dataclass
class DetectionFile:
    """Person boxes from a detection-results file, grouped by image.

    Attributes:
        bboxes: image id -> (bboxes float32 [N, 4] xyxy original-image pixels, scores float32 [N]), in file order.
        num_kept: boxes kept (category 1, score >= threshold, image in the annotation file).
        num_below_thr: person boxes dropped by the score threshold.
        num_unknown_image: person boxes of images absent from the annotation file.
    """

    bboxes: dict[int, tuple[np.ndarray, np.ndarray]]
    num_kept: int
    num_below_thr: int
    num_unknown_image: int


def load_detection_file(path: str | Path, image_ids: set[int], score_thr: float = 0.0) -> DetectionFile:
    """Read a ``COCO_val2017_detections_AP_H_56_person.json``-style file.

    Follows ``BaseCocoStyleDataset._load_detection_results`` (category 1, xywh -> xyxy, no clipping) and
    ``filter_data`` (``bbox_score_thr``, keep ``score >= thr``).

    Args:
        path: JSON list of ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}``.
        image_ids: ids of the images to evaluate (others are skipped and counted).
        score_thr: minimum detection score.

    Returns:
        :class:`DetectionFile`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not JSON, not a list, or a record missing a field / with a malformed box.
    """
    path = Path(path)
    dets = read_json_list(path, "detection file")
    grouped: dict[int, tuple[list, list]] = {}
    below = unknown = 0
    for i, det in enumerate(dets):
        try:
            cat, img_id, bbox, score = det["category_id"], int(det["image_id"]), det["bbox"], float(det["score"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"detection {i} in {path} lacks image_id / category_id / bbox / score: {det!r}") from exc
        if cat != 1:
            continue
        if not isinstance(bbox, (list, tuple)) or len(bbox) < 4:
            raise ValueError(f"detection {i} in {path} has a malformed bbox {bbox!r} (expected [x, y, w, h])")
        if img_id not in image_ids:
            unknown += 1
            continue
        if score < score_thr:
            below += 1
            continue
        b, s = grouped.setdefault(img_id, ([], []))
        b.append(bbox[:4])
        s.append(score)
    bboxes = {
        k: (bbox_xywh2xyxy(np.asarray(b, dtype=np.float32).reshape(-1, 4)), np.asarray(s, dtype=np.float32))
        for k, (b, s) in grouped.items()
    }
    kept = sum(len(s) for _, s in bboxes.values())
    return DetectionFile(bboxes, kept, below, unknown)
