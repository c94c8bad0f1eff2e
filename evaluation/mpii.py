"""MPII top-down data and the PCKh metric, as MMPose 1.3.2 reads and scores them (torch-free: numpy, scipy for .mat).

Annotations (:func:`read_mpii`) follow ``MpiiDataset`` (``mmpose/datasets/datasets/body/mpii_dataset.py``), which
reads the json files MMPose distributes (``mpii_train.json`` / ``mpii_val.json``: a list of
``{"image", "center", "scale", "joints", "joints_vis"}``, Matlab 1-based pixels):

* scale: ``ann["scale"]`` is in MPII's 200-pixel units: ``bbox_scale = scale * 200`` (w = h);
* center: when ``center[0] != -1`` its y moves down by ``15 / 200 * bbox_scale`` (15 pixels per unit of scale,
  "to avoid cropping limbs"); then ``center - 1`` (1-based -> 0-based);
* box: ``bbox_cs2xyxy(center, bbox_scale)``; the top-down pipeline pads the scale by 1.25 (``GetBBoxCenterScale``
  keeps the existing center) and ``TopdownAffine`` fixes the aspect ratio;
* keypoints: ``joints`` as in the file (1-based; MMPose 1.x does not convert them), visibility ``joints_vis``;
* image id: the file name's stem as an integer;
* head size (for PCKh, from ``mpii_gt_val.mat``, :func:`read_headboxes`): ``headboxes_src`` [2, 2, N] (corner, x / y,
  instance), ``head_size = 0.6 * |corner 2 - corner 1|`` (``SC_BIAS``).

PCKh (:func:`mpii_pckh`) follows ``MpiiPCKAccuracy.compute_metrics``
(``mmpose/evaluation/metrics/keypoint_2d_metrics.py``) on ``keypoint_pck_accuracy``
(``mmpose/evaluation/functional/keypoint_eval.py``): predictions (0-based) + 1 against the file's joints; a joint
counts where ``joints_vis`` is set; the distance is ``|pred - gt| / head_size`` (float32), correct when ``< thr``;
an instance with a zero head size counts for nothing at 0.5 (but, as in MMPose, as correct at 0.1); per-joint PCKh at
0.5, and at 0.1 from MMPose's threshold grid ``arange(0, 0.51, 0.01)`` (float32 table); the means leave out pelvis and
thorax and weight joints by their visible counts. Values are percentages, as MMPose reports them (the model-zoo tables print ``Mean`` = PCKh@0.5 / 100
and ``Mean@0.1`` = PCKh@0.1 / 100: :func:`zoo_columns`).

The metric needs only MPII's 16 joints in MMPose's order (``models.keypoints.MPII16``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evaluation.files import read_json_list
from models.geometry import bbox_cs2xyxy
from models.keypoints import MPII16

#: MPII scales are in units of 200 pixels.
PIXEL_STD = 200.0
#: Head size = this x the head box diagonal (MMPose ``SC_BIAS``).
SC_BIAS = 0.6
#: PCKh thresholds of the model-zoo tables.
PCKH_THR = 0.5
PCKH_THR_LOW = 0.1
#: Joints left out of the PCKh means (pelvis, thorax: MMPose masks indices 6 and 7).
EXCLUDED_JOINTS = (MPII16.names.index("pelvis"), MPII16.names.index("thorax"))
#: MMPose's per-part figures: name -> the joints averaged (``MpiiPCKAccuracy.compute_metrics``).
PARTS: dict[str, tuple[int, ...]] = {
    name: tuple(MPII16.names.index(j) for j in joints)
    for name, joints in (
        ("Head PCK", ("head_top",)),
        ("Shoulder PCK", ("left_shoulder", "right_shoulder")),
        ("Elbow PCK", ("left_elbow", "right_elbow")),
        ("Wrist PCK", ("left_wrist", "right_wrist")),
        ("Hip PCK", ("left_hip", "right_hip")),
        ("Knee PCK", ("left_knee", "right_knee")),
        ("Ankle PCK", ("left_ankle", "right_ankle")),
    )
}


class MpiiDataError(ValueError):
    """An MPII annotation or head-box file is missing or malformed (the message names the file and entry)."""


@dataclass(frozen=True)
class MpiiInstance:
    """One annotated person of an MPII-format file, as MMPose's ``MpiiDataset`` takes it.

    Attributes:
        index: position in the annotation file (also the column of the head-box file).
        image_id: the image file's stem as an integer. file_name: the ``image`` field.
        center: float32 [2], 0-based image pixels (shifted as described in the module docstring).
        scale: float32 [2], (w, h) = ``scale * 200`` pixels, before the 1.25 padding.
        bbox: float32 [4] xyxy = ``bbox_cs2xyxy(center, scale)``.
        keypoints: float32 [16, 2], the file's joints (Matlab 1-based pixels).
        visible: float32 [16], ``joints_vis``.
        head_size: ``0.6 *`` the head-box diagonal in pixels, or None without a head-box file.
    """

    index: int
    image_id: int
    file_name: str
    center: np.ndarray
    scale: np.ndarray
    bbox: np.ndarray
    keypoints: np.ndarray
    visible: np.ndarray
    head_size: float | None = None


def read_headboxes(path: str | os.PathLike) -> np.ndarray:
    """Head boxes of ``mpii_gt_val.mat`` (its ``headboxes_src`` [2, 2, N]) as float64 [N, 2, 2] (instance, corner, xy).

    MATLAB files are read with scipy (``scipy.io.loadmat``, as MMPose), which the train extra installs; the eval extra
    does not, so without scipy this raises an error saying so.

    Raises:
        FileNotFoundError: no such file.
        MpiiDataError: not a ``.mat`` file, unreadable, no ``headboxes_src`` of shape [2, 2, N], or scipy missing.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MPII head-box file not found: {path}")
    if path.suffix != ".mat":  # MpiiDataset accepts .mat only
        raise MpiiDataError(f"the MPII head-box file must be a .mat file (mpii_gt_val.mat), got {path.name}")
    try:
        from scipy.io import loadmat
    except ImportError as exc:
        raise MpiiDataError(f"reading {path.name} needs scipy ({exc}): pip install scipy") from None

    try:
        boxes = np.asarray(loadmat(str(path))["headboxes_src"], dtype=np.float64)
    except (KeyError, ValueError, TypeError, OSError) as exc:
        raise MpiiDataError(f"cannot read headboxes_src from {path}: {exc}") from None
    if boxes.ndim != 3 or boxes.shape[:2] != (2, 2):
        raise MpiiDataError(f"{path}: headboxes_src must have shape [2, 2, N], got {list(boxes.shape)}")
    return np.transpose(boxes, (2, 0, 1))


def read_mpii(ann_file: str | os.PathLike, headbox_file: str | os.PathLike | None = None) -> list[MpiiInstance]:
    """The instances of an MPII-format annotation file (MMPose ``MpiiDataset``, top-down; see the module docstring).

    Args:
        ann_file: ``mpii_val.json``-style file.
        headbox_file: ``mpii_gt_val.mat``-style file with one head box per annotation, in file order (PCKh), or None.

    Returns:
        One :class:`MpiiInstance` per annotation, in file order.

    Raises:
        FileNotFoundError: a file is missing.
        MpiiDataError: not JSON, not a list, an entry without the fields (or with 0 / more than 16 joints, or an
            image name without an integer stem), or a head-box count that differs from the annotation count.
    """
    path = Path(ann_file)
    anns = read_json_list(path, "MPII annotation file", MpiiDataError)
    heads = read_headboxes(headbox_file) if headbox_file is not None else None
    if heads is not None and len(heads) != len(anns):
        raise MpiiDataError(f"{headbox_file} has {len(heads)} head boxes for the {len(anns)} annotations of {path}")
    k = MPII16.num_keypoints
    out = []
    for i, ann in enumerate(anns):
        try:
            center = np.array(ann["center"], dtype=np.float32).reshape(2)
            s = np.float32(ann["scale"]) * np.float32(PIXEL_STD)
            keypoints = np.array(ann["joints"], dtype=np.float32).reshape(k, 2)
            visible = np.array(ann["joints_vis"], dtype=np.float32).reshape(k)
            image_id = int(str(ann["image"]).split(".")[0])
        except (KeyError, TypeError, ValueError) as exc:
            raise MpiiDataError(f"{path}: annotation {i} is not an MPII entry with {k} joints ({exc})") from None
        scale = np.array([s, s], dtype=np.float32)
        if center[0] != -1:
            center[1] = center[1] + np.float32(15.0 / PIXEL_STD) * scale[1]
        center = center - np.float32(1.0)
        head = None
        if heads is not None:
            head = float(np.linalg.norm(heads[i][1] - heads[i][0]) * SC_BIAS)
        bbox = bbox_cs2xyxy(center[None], scale[None])[0]
        out.append(MpiiInstance(i, image_id, str(ann["image"]), center, scale, bbox, keypoints, visible, head))
    return out


def pck_accuracy(
    pred: np.ndarray, gt: np.ndarray, mask: np.ndarray, thr: float, norm_factor: np.ndarray
) -> tuple[np.ndarray, float, int]:
    """PCK per keypoint (MMPose ``keypoint_pck_accuracy``): the share of visible keypoints whose normalised distance
    ``|(pred - gt) / norm_factor|`` (float32) is below ``thr``.

    Args:
        pred, gt: float [N, K, 2].
        mask: bool [N, K], the keypoints that count.
        thr: threshold on the normalised distance.
        norm_factor: float [N, 2]; an instance with a 0 leaves all its keypoints out; values <= 0 become 1e6.

    Returns:
        (acc float [K] in [0, 1], -1 for a keypoint that never counts; mean of the valid acc; number of valid keypoints).

    Raises:
        ValueError: shapes that do not match.
    """
    pred, gt = np.asarray(pred), np.asarray(gt)
    mask = np.asarray(mask, dtype=bool)
    norm = np.array(norm_factor, dtype=np.float64, copy=True)
    if pred.shape != gt.shape or pred.ndim != 3 or mask.shape != pred.shape[:2] or norm.shape != (len(pred), 2):
        raise ValueError(
            f"pck_accuracy: pred {list(pred.shape)}, gt {list(gt.shape)}, mask {list(mask.shape)} and norm_factor "
            f"{list(norm.shape)} must be [N, K, 2], [N, K, 2], [N, K], [N, 2]"
        )
    mask = mask.copy()
    mask[np.where((norm == 0).sum(1))[0], :] = False
    distances = np.full(mask.shape, -1, dtype=np.float32)
    norm[np.where(norm <= 0)] = 1e6
    distances[mask] = np.linalg.norm(((pred - gt) / norm[:, None, :])[mask], axis=-1)
    acc = np.array([_distance_acc(d, thr) for d in distances.T])
    valid = acc[acc >= 0]
    return acc, (valid.mean() if len(valid) else 0.0), len(valid)


def _distance_acc(distances: np.ndarray, thr: float) -> float:
    """MMPose ``_distance_acc``: share of the valid (!= -1) distances below ``thr``; -1 when none is valid."""
    valid = distances != -1
    n = valid.sum()
    return (distances[valid] < thr).sum() / n if n > 0 else -1


def mpii_pckh(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, head_size: np.ndarray) -> dict[str, float]:
    """MMPose's MPII PCKh (``MpiiPCKAccuracy`` with ``thr=0.5``, ``norm_item='head'``), in percent.

    Args:
        pred: float [N, 16, 2] predicted keypoints in 0-based image pixels (what the served pipeline returns).
        gt: float [N, 16, 2] the annotation file's joints (1-based, :attr:`MpiiInstance.keypoints`).
        visible: [N, 16] ``joints_vis`` (non-zero: the joint counts).
        head_size: float [N] head sizes (:attr:`MpiiInstance.head_size`).

    Returns:
        ``Head PCK``, ``Shoulder PCK``, ``Elbow PCK``, ``Wrist PCK``, ``Hip PCK``, ``Knee PCK``, ``Ankle PCK`` (each the
        mean of its left and right joint), ``PCK`` (PCKh@0.5) and ``PCK@0.1`` (PCKh@0.1): the means over the joints
        except pelvis and thorax, weighted by their visible counts. Percentages.

    Raises:
        ValueError: not 16 MPII joints, or shapes that do not match.
    """
    pred = np.asarray(pred, dtype=np.float32)
    gt = np.asarray(gt, dtype=np.float32)
    k = MPII16.num_keypoints
    if pred.ndim != 3 or pred.shape[1:] != (k, 2) or gt.shape != pred.shape:
        raise ValueError(
            f"MPII PCKh needs predictions and ground truth [N, {k}, 2], got {list(pred.shape)}, {list(gt.shape)}"
        )
    mask = np.asarray(visible).reshape(len(pred), k).astype(bool)
    head = np.asarray(head_size, dtype=np.float64).reshape(-1)
    if len(head) != len(pred):
        raise ValueError(f"{len(head)} head sizes for {len(pred)} instances")
    norm = np.stack([head, head], axis=1)
    pred = pred + 1.0  # MPII's ground truth is Matlab 1-based
    acc, _, _ = pck_accuracy(pred, gt, mask, PCKH_THR, norm)
    pckh = 100.0 * acc
    # MMPose's first call replaces the head sizes <= 0 with 1e6 in place, so the threshold grid below sees 1e6 where
    # a head size was 0: such an instance counts, with distances ~0 (correct at every threshold). Kept as MMPose has it.
    norm = np.where(norm <= 0, 1e6, norm)
    grid = np.arange(0, 0.5 + 0.01, 0.01)
    pck_all = np.zeros((len(grid), k), dtype=np.float32)
    for r, thr in enumerate(grid):
        pck_all[r] = 100.0 * pck_accuracy(pred, gt, mask, thr, norm)[0]
    low = int(np.flatnonzero(np.isclose(grid, PCKH_THR_LOW))[0])
    keep = np.ones(k, dtype=bool)
    keep[list(EXCLUDED_JOINTS)] = False
    count = mask.sum(axis=0).astype(np.float64)
    ratio = np.where(keep, count, 0.0) / count[keep].sum()
    stats = {name: float(np.mean([pckh[j] for j in joints])) for name, joints in PARTS.items()}
    stats["PCK"] = float(np.sum(np.where(keep, pckh, 0.0) * ratio))
    stats["PCK@0.1"] = float(np.sum(np.where(keep, pck_all[low], 0.0) * ratio))
    return stats


def zoo_columns(stats: dict[str, float]) -> dict[str, float]:
    """The model-zoo table's MPII columns from :func:`mpii_pckh`: ``Mean`` = PCKh@0.5 and ``Mean@0.1`` = PCKh@0.1,
    as fractions (MMPose's metafiles)."""
    return {"Mean": stats["PCK"] / 100.0, "Mean@0.1": stats["PCK@0.1"] / 100.0}
