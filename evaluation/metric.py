"""The COCO keypoint metric, computed the way MMPose's ``CocoMetric`` computes it for top-down models.

The accumulator (:class:`CocoKeypointMetric`) is here; its parts are :mod:`evaluation.oks` (area, OKS, OKS-NMS),
:mod:`evaluation.coco_eval` (the COCO API and COCOeval) and :mod:`evaluation.matching` (per-person matches and the
per-keypoint breakdown), whose public names this module re-exports. Torch-free: numpy + pycocotools / xtcocotools.

Steps, in MMPose's order (``mmpose/evaluation/metrics/coco_metric.py``, ``CocoMetric.compute_metrics``):

1. person score (``score_mode``, :func:`models.scoring.person_scores`): ``bbox_keypoint`` (the default)
   ``bbox_score * mean(keypoint scores > 0.2)``, 0 when no keypoint score is above the threshold; ``bbox_rle`` (RLE's
   configs) ``bbox_score + mean + max`` of the keypoint scores; ``keypoint`` the mean of all K keypoint scores (what a
   minimal pipeline without a detector score does); ``bbox`` the bbox score.
2. OKS-NMS per image at OKS 0.9 (``mmpose/evaluation/functional/nms.py``, ``oks_nms`` / ``oks_iou``):
   greedy, highest score first; a prediction is dropped when its OKS with a kept one is > 0.9.
   The OKS area of a prediction is MMPose's ``np.prod(bbox_scales)``: the product of the padded
   (x1.25), aspect-fixed (square for a 256x256 input) box scale, in original-image pixels squared
   (:func:`scale_area`).
3. COCO results JSON (``results2json``): one record per person, ``keypoints`` = flattened [K, 3]
   (x, y in original-image pixels, keypoint score), ``category_id`` 1, ``score`` from step 1.
4. ``COCOeval(..., 'keypoints')`` with the OKS sigmas of :mod:`models.keypoints`; xtcocotools (what
   MMPose uses) when it is installed, else pycocotools (same keypoint numerics for COCO with areas);
   :attr:`KeypointEvalResult.backend` says which one ran.

Everything is in original-image pixels; keypoints are [K, 3] = x, y, score (MMPose convention:
a pixel's index is its coordinate).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from evaluation.coco_eval import (
    STAT_NAMES,
    KeypointEvalResult,
    coco_backend,
    load_coco,
    make_cocoeval,
    run_cocoeval,
)
from evaluation.matching import PersonMatches, annotated_persons, match_persons, per_keypoint_breakdown
from evaluation.oks import DEFAULT_NMS_THR, as_keypoints, keypoint_similarity, oks_iou, oks_nms, scale_area
from models.keypoints import COCO17_SIGMAS
from models.scoring import RESCORE_KPT_THR, SCORE_MODES, person_scores

__all__ = [
    "DEFAULT_KPT_SCORE_THR",
    "DEFAULT_NMS_THR",
    "STAT_NAMES",
    "CocoKeypointMetric",
    "KeypointEvalResult",
    "PersonMatches",
    "annotated_persons",
    "coco_backend",
    "keypoint_similarity",
    "load_coco",
    "make_cocoeval",
    "match_persons",
    "oks_iou",
    "oks_nms",
    "per_keypoint_breakdown",
    "run_cocoeval",
    "scale_area",
    "write_results_json",
]

#: MMPose CocoMetric defaults.
DEFAULT_KPT_SCORE_THR: float = RESCORE_KPT_THR


class CocoKeypointMetric:
    """Collects top-down predictions image by image, then rescoring, OKS-NMS, results JSON and COCOeval.

    Follows MMPose ``CocoMetric`` (``score_mode='bbox_keypoint'`` or RLE's ``'bbox_rle'``,
    ``kpt_score_thr=0.2``, ``nms_mode='oks_nms'``, ``nms_thr=0.9``, ``use_area=True``). Instances are kept per
    image in the order they are added (MMPose sorts by sample id, which is the dataset order the job also uses).

    Args:
        ann_file: COCO keypoint annotation JSON (ground truth).
        score_mode: the person score (:func:`models.scoring.person_scores`): ``bbox_keypoint``, ``bbox_rle``, ``bbox`` or
            ``keypoint`` (mean of all keypoint scores: no detector score).
        kpt_score_thr: see :func:`models.scoring.person_scores` (``kpt_score_thr``).
        nms: apply OKS-NMS per image.
        nms_thr: OKS threshold of the NMS.
        sigmas: float [K] OKS sigmas; default COCO-17 (:data:`models.keypoints.COCO17_SIGMAS`).
        use_area: passed to xtcocotools' COCOeval.
        backend: ``auto`` / ``xtcocotools`` / ``pycocotools`` (:func:`coco_backend`).

    Raises:
        FileNotFoundError / ValueError: from :func:`load_coco`.
    """

    def __init__(
        self,
        ann_file: str | Path,
        *,
        score_mode: str = "bbox_keypoint",
        kpt_score_thr: float = DEFAULT_KPT_SCORE_THR,
        nms: bool = True,
        nms_thr: float = DEFAULT_NMS_THR,
        sigmas: np.ndarray | None = None,
        use_area: bool = True,
        backend: str = "auto",
    ) -> None:
        self.backend = coco_backend(backend)[0]
        self.coco = load_coco(ann_file, self.backend)
        if score_mode not in SCORE_MODES:
            raise ValueError(f"score_mode {score_mode!r} must be one of {SCORE_MODES}")
        self.score_mode = score_mode
        self.kpt_score_thr = kpt_score_thr
        self.nms = nms
        self.nms_thr = nms_thr
        self.sigmas = COCO17_SIGMAS if sigmas is None else np.asarray(sigmas, dtype=np.float64)
        self.use_area = use_area
        self._images: dict[int, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
        self._valid_ids = set(self.coco.getImgIds())

    @property
    def num_instances(self) -> int:
        """Predictions added so far (before NMS)."""
        return sum(len(kp) for parts in self._images.values() for kp, _, _ in parts)

    def add(self, image_id: int, keypoints: np.ndarray, bbox_scores: np.ndarray, areas: np.ndarray) -> None:
        """Add the predictions of one image (call again to append more people of the same image).

        Args:
            image_id: COCO image id (must be in the annotation file).
            keypoints: float [N, K, 3], x, y in original-image pixels and keypoint score.
            bbox_scores: float [N], detector score of each box (1.0 for ground-truth boxes).
            areas: float [N], OKS area of each prediction (:func:`scale_area` of the crop scales).

        Raises:
            ValueError: unknown image id, wrong shapes, or non-finite values.
        """
        if image_id not in self._valid_ids:
            raise ValueError(f"image id {image_id} is not in the annotation file")
        kp = as_keypoints(keypoints)
        if kp.shape[1] != len(self.sigmas):
            raise ValueError(f"keypoints have K={kp.shape[1]}, the metric has {len(self.sigmas)} sigmas")
        bs = np.asarray(bbox_scores, dtype=np.float64).reshape(-1)
        ar = np.asarray(areas, dtype=np.float64).reshape(-1)
        if not (len(kp) == len(bs) == len(ar)):
            raise ValueError(f"add(): {len(kp)} keypoint sets, {len(bs)} bbox scores, {len(ar)} areas")
        if len(kp) == 0:
            return
        self._images.setdefault(int(image_id), []).append((kp, bs, ar))

    def coco_results(self) -> list[dict]:
        """Rescore, OKS-NMS, and format as COCO keypoint result records (``results2json``).

        Returns:
            list of ``{"image_id", "category_id": 1, "keypoints": [3K floats], "score"}``, grouped by image in
            insertion order, within an image in NMS keep order (or insertion order with NMS off).
        """
        out: list[dict] = []
        for image_id, parts in self._images.items():
            kp = np.concatenate([p[0] for p in parts])
            bs = np.concatenate([p[1] for p in parts])
            ar = np.concatenate([p[2] for p in parts])
            scores = person_scores(bs, kp[:, :, 2], self.kpt_score_thr, mode=self.score_mode)
            keep = oks_nms(kp, scores, ar, self.nms_thr, self.sigmas) if self.nms else np.arange(len(kp))
            for i in keep:
                out.append(
                    {
                        "image_id": image_id,
                        "category_id": 1,
                        "keypoints": kp[i].reshape(-1).tolist(),
                        "score": float(scores[i]),
                    }
                )
        return out

    def evaluate(
        self, results: list[dict] | None = None, *, pck_thr: float = 0.05, image_ids: Iterable[int] | None = None
    ) -> KeypointEvalResult:
        """COCOeval (keypoints) plus the per-keypoint breakdown.

        Args:
            results: records from :meth:`coco_results` (computed when None).
            pck_thr: threshold of :func:`per_keypoint_breakdown`.
            image_ids: restrict COCOeval and the breakdown to these images (all annotated images when None).

        Raises:
            ValueError: nothing to evaluate.
        """
        res = self.coco_results() if results is None else results
        stats, backend, summary = run_cocoeval(
            self.coco, res, sigmas=self.sigmas, use_area=self.use_area, backend=self.backend, image_ids=image_ids
        )
        breakdown = per_keypoint_breakdown(self.coco, res, sigmas=self.sigmas, pck_thr=pck_thr, image_ids=image_ids)
        return KeypointEvalResult(stats, backend, summary, len(res), breakdown)


def write_results_json(results: Iterable[dict], path: str | Path) -> Path:
    """Write COCO keypoint result records as a JSON list (the file COCO's ``loadRes`` reads). Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(list(results)))
    return path
