"""Per-person figures over a COCO annotation file: which prediction matches each annotated person (highest OKS in
its image) and the per-keypoint breakdown of those matches."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from evaluation.oks import keypoint_similarity
from models.keypoints import COCO17_NAMES, COCO17_SIGMAS


@dataclass(frozen=True)
class PersonMatches:
    """The best-matching prediction of every annotated person (:func:`match_persons`).

    Attributes:
        ann_ids: int64 [P], annotation ids, in annotation-file order.
        image_ids: int64 [P], each person's image id.
        areas: float64 [P], annotation areas (COCO's OKS scale), original-image pixels squared.
        gt: float64 [P, K, 3], ground-truth keypoints (x, y, visibility), original-image pixels.
        visible: bool [P, K], labelled keypoints (visibility > 0).
        keypoints: float64 [P, K, 3], the best-matching prediction (x, y, score); NaN where the image has none.
        keypoint_oks: float64 [P, K], COCO's per-keypoint similarity of that prediction (0 where none).
        oks: float64 [P], OKS of that prediction: mean keypoint similarity over the labelled keypoints (0 where none).
    """

    ann_ids: np.ndarray
    image_ids: np.ndarray
    areas: np.ndarray
    gt: np.ndarray
    visible: np.ndarray
    keypoints: np.ndarray
    keypoint_oks: np.ndarray
    oks: np.ndarray


def annotated_persons(coco_gt, num_keypoints: int, image_ids: Iterable[int] | None = None):
    """The persons every per-person figure is taken over: non-crowd annotations with at least one labelled keypoint,
    in annotation-file order.

    Yields:
        (annotation dict, ground truth float64 [K, 3] x, y, visibility, labelled bool [K]).
    """
    wanted = None if image_ids is None else {int(i) for i in image_ids}
    for ann in coco_gt.dataset["annotations"]:
        if wanted is not None and ann["image_id"] not in wanted:
            continue
        if ann.get("iscrowd", 0) or ann.get("num_keypoints", 0) == 0:
            continue
        g = np.asarray(ann["keypoints"], dtype=np.float64).reshape(num_keypoints, 3)
        vis = g[:, 2] > 0
        if vis.any():
            yield ann, g, vis


def match_persons(
    coco_gt, results: list[dict], *, sigmas: np.ndarray | None = None, image_ids: Iterable[int] | None = None
) -> PersonMatches:
    """For each non-crowd ground-truth person with at least one labelled keypoint, the prediction of the same image
    with the highest OKS (COCO's ``computeOks`` formula, area = annotation area, mean over the labelled keypoints).

    Args:
        coco_gt: COCO object (:func:`load_coco`).
        results: COCO keypoint result records (original-image pixels).
        sigmas: float [K]; default COCO-17 sigmas.
        image_ids: only people of these images (all when None).

    Returns:
        :class:`PersonMatches` (P = 0 when no person qualifies).
    """
    sig = COCO17_SIGMAS if sigmas is None else np.asarray(sigmas, dtype=np.float64)
    k = len(sig)
    by_image: dict[int, list[np.ndarray]] = {}
    for r in results:
        by_image.setdefault(r["image_id"], []).append(np.asarray(r["keypoints"], dtype=np.float64).reshape(k, 3))
    rows: list[tuple] = []
    for ann, g, vis in annotated_persons(coco_gt, k, image_ids):
        preds = by_image.get(ann["image_id"])
        kp, ks, oks = np.full((k, 3), np.nan), np.zeros(k), 0.0
        if preds:
            d = np.stack(preds)
            sim = keypoint_similarity(d, g, ann["area"], sig)
            best = int(np.argmax(sim[:, vis].mean(axis=1)))
            kp, ks, oks = d[best], sim[best], float(sim[best, vis].mean())
        rows.append((ann["id"], ann["image_id"], float(ann["area"]), g, vis, kp, ks, oks))
    if not rows:
        z = np.zeros((0, k, 3))
        return PersonMatches(
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
            np.zeros(0),
            z,
            np.zeros((0, k), bool),
            z,
            np.zeros((0, k)),
            np.zeros(0),
        )
    cols = list(zip(*rows))
    return PersonMatches(
        np.asarray(cols[0], np.int64),
        np.asarray(cols[1], np.int64),
        np.asarray(cols[2], np.float64),
        np.stack(cols[3]),
        np.stack(cols[4]),
        np.stack(cols[5]),
        np.stack(cols[6]),
        np.asarray(cols[7], np.float64),
    )


def per_keypoint_breakdown(
    coco_gt,
    results: list[dict],
    *,
    sigmas: np.ndarray | None = None,
    pck_thr: float = 0.05,
    image_ids: Iterable[int] | None = None,
) -> dict:
    """Per-keypoint OKS and PCK of the best-matching prediction of every annotated person (:func:`match_persons`).

    For each labelled keypoint k (visibility > 0) of each person:

    * keypoint OKS ``exp(-d_k^2 / (2 * area * (2 sigma_k)^2))`` (COCO ``cocoeval.py``), and
    * PCK: ``1`` when both ``|dx|`` and ``|dy|`` are below ``pck_thr * max(bbox w, h)`` (MMPose
      ``PCKAccuracy`` with ``norm_item='bbox'``, ``mmpose/evaluation/functional/keypoint_eval.py``).

    People without any prediction count as OKS 0 / PCK 0 for every labelled keypoint.

    Args:
        coco_gt: COCO object (:func:`load_coco`).
        results: COCO keypoint result records (original-image pixels).
        sigmas: float [K]; default COCO-17 sigmas.
        pck_thr: PCK threshold as a fraction of the box's longer side.
        image_ids: only people of these images (all when None).

    Returns:
        dict with ``names`` (K str), ``oks`` (K float, mean keypoint OKS), ``pck`` (K float), ``count`` (K int,
        labelled keypoints), ``pck_thr``; means are NaN for a keypoint never labelled.
    """
    sig = COCO17_SIGMAS if sigmas is None else np.asarray(sigmas, dtype=np.float64)
    k = len(sig)
    m = match_persons(coco_gt, results, sigmas=sig, image_ids=image_ids)
    anns = coco_gt.anns
    norm = np.array([max(anns[int(a)]["bbox"][2], anns[int(a)]["bbox"][3], np.spacing(1)) for a in m.ann_ids])
    norm = norm.reshape(-1, 1)
    with np.errstate(invalid="ignore"):
        close = (np.abs(m.keypoints[:, :, 0] - m.gt[:, :, 0]) / norm < pck_thr) & (
            np.abs(m.keypoints[:, :, 1] - m.gt[:, :, 1]) / norm < pck_thr
        )
    count = m.visible.sum(axis=0).astype(np.int64)
    oks_sum = np.where(m.visible, m.keypoint_oks, 0.0).sum(axis=0)
    pck_sum = np.where(m.visible, close, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        oks = np.where(count > 0, oks_sum / count, np.nan)
        pck = np.where(count > 0, pck_sum / count, np.nan)
    names = list(COCO17_NAMES) if k == len(COCO17_NAMES) else [str(i) for i in range(k)]
    return {"names": names, "oks": oks.tolist(), "pck": pck.tolist(), "count": count.tolist(), "pck_thr": pck_thr}
