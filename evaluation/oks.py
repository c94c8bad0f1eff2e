"""OKS and OKS-NMS as MMPose computes them (``mmpose/evaluation/functional/nms.py``): the OKS area of top-down
predictions, COCO's per-keypoint similarity, greedy OKS-NMS. Pure numpy; keypoints are [N, K, 3] = x, y, score in
original-image pixels."""

from __future__ import annotations

import numpy as np

from models.keypoints import COCO17_SIGMAS

#: MMPose CocoMetric's OKS-NMS threshold.
DEFAULT_NMS_THR: float = 0.9


def as_keypoints(keypoints: np.ndarray, name: str = "keypoints") -> np.ndarray:
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim != 3 or kp.shape[2] != 3:
        raise ValueError(f"{name} must have shape [N, K, 3] (x, y, score), got {list(kp.shape)}")
    if not np.isfinite(kp).all():
        raise ValueError(f"{name} contain a non-finite value")
    return kp


def scale_area(scales: np.ndarray) -> np.ndarray:
    """MMPose's OKS area of top-down predictions: ``prod(bbox_scale)`` per instance.

    Follows ``CocoMetric.process`` (``np.prod(gt_instances.bbox_scales, axis=1)``), where ``bbox_scale``
    is the box (w, h) after padding (x1.25) and the aspect fix of ``TopdownAffine``, i.e. the ``scale``
    returned by :func:`models.geometry.bbox_to_center_scale`.

    Args:
        scales: float [N, 2], (w, h) in original-image pixels.

    Returns:
        float64 [N], pixels squared.
    """
    s = np.asarray(scales, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] != 2:
        raise ValueError(f"scales must have shape [N, 2] (w, h), got {list(s.shape)}")
    return s[:, 0] * s[:, 1]


def oks_iou(
    keypoints: np.ndarray,
    others: np.ndarray,
    area: float,
    other_areas: np.ndarray,
    sigmas: np.ndarray | None = None,
) -> np.ndarray:
    """OKS between one prediction and M others (both predictions; used by OKS-NMS).

    Follows ``oks_iou`` of ``mmpose/evaluation/functional/nms.py`` (no visibility threshold):
    ``mean_k exp(-d_k^2 / (2 * (2 sigma_k)^2 * ((a + a_m) / 2 + eps)))`` over all K keypoints.

    Args:
        keypoints: float [K, 3] (x, y, score), original-image pixels.
        others: float [M, K, 3].
        area: OKS area of ``keypoints`` (pixels squared, see :func:`scale_area`).
        other_areas: float [M].
        sigmas: float [K] OKS sigmas; default :data:`models.keypoints.COCO17_SIGMAS`.

    Returns:
        float32 [M] OKS values in [0, 1] (float32 as MMPose, so threshold ties resolve the same way).
    """
    sig = COCO17_SIGMAS if sigmas is None else np.asarray(sigmas, dtype=np.float64)
    g = np.asarray(keypoints, dtype=np.float64)
    d = np.asarray(others, dtype=np.float64).reshape(-1, g.shape[0], g.shape[1])
    if len(d) == 0:
        return np.zeros(0, dtype=np.float32)
    variances = (sig * 2) ** 2
    a_d = np.asarray(other_areas, dtype=np.float64).reshape(-1)
    sq_dist = (d[:, :, 0] - g[None, :, 0]) ** 2 + (d[:, :, 1] - g[None, :, 1]) ** 2
    e = sq_dist / variances[None] / ((area + a_d)[:, None] / 2 + np.spacing(1)) / 2
    return np.exp(-e).mean(axis=1).astype(np.float32)


def oks_nms(
    keypoints: np.ndarray,
    scores: np.ndarray,
    areas: np.ndarray,
    thr: float = DEFAULT_NMS_THR,
    sigmas: np.ndarray | None = None,
) -> np.ndarray:
    """Greedy OKS non-maximum suppression of the predictions of one image.

    Follows ``oks_nms`` of ``mmpose/evaluation/functional/nms.py``: visit predictions by descending
    score (``argsort()[::-1]``, the same tie order as MMPose), keep the best, drop every remaining one
    whose OKS with it is > ``thr``.

    Args:
        keypoints: float [N, K, 3] (x, y, score) in original-image pixels.
        scores: float [N] person scores (:func:`models.scoring.person_scores`).
        areas: float [N] OKS areas (:func:`scale_area`).
        thr: OKS above which a lower-scored prediction is suppressed (MMPose: 0.9).
        sigmas: float [K]; default COCO-17 sigmas.

    Returns:
        int64 [n_keep] indices into the inputs, in the order they were kept (highest score first).

    Raises:
        ValueError: shapes do not match.
    """
    kp = as_keypoints(keypoints)
    sc = np.asarray(scores, dtype=np.float64).reshape(-1)
    ar = np.asarray(areas, dtype=np.float64).reshape(-1)
    if not (len(kp) == len(sc) == len(ar)):
        raise ValueError(f"oks_nms: {len(kp)} keypoint sets, {len(sc)} scores, {len(ar)} areas")
    order = sc.argsort()[::-1]
    keep: list[int] = []
    while len(order) > 0:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        ovr = oks_iou(kp[i], kp[rest], ar[i], ar[rest], sigmas)
        order = rest[ovr <= thr]
    return np.asarray(keep, dtype=np.int64)


def keypoint_similarity(pred: np.ndarray, gt: np.ndarray, area: float, sigmas: np.ndarray) -> np.ndarray:
    """COCO's per-keypoint similarity ``exp(-d^2 / (2 * area * (2 sigma)^2))`` (pycocotools ``computeOks``).

    Args:
        pred: float [..., K, >=2], x, y in original-image pixels.
        gt: float [K, >=2], same pixels.
        area: the object scale (annotation area), pixels squared.
        sigmas: float [K].

    Returns:
        float64 [..., K] in [0, 1].
    """
    p, g = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    sq = (p[..., 0] - g[:, 0]) ** 2 + (p[..., 1] - g[:, 1]) ** 2
    return np.exp(-sq / ((np.asarray(sigmas, dtype=np.float64) * 2) ** 2) / (area + np.spacing(1)) / 2)
