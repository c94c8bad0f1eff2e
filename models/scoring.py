"""Person score of a top-down prediction: the one implementation (:func:`person_scores`) and its vocabulary
(:data:`SCORE_MODES`), shared by the pipeline (``inference.pipeline``), the COCO metric (``evaluation.metric``) and
the zoo's configs (``models.zoo``).

Kept free of heavy imports (numpy only) so ``evaluation.metric`` can use it without loading runtimes.
"""

from __future__ import annotations

import numpy as np

#: Person-score modes of MMPose's ``CocoMetric`` (``score_mode``); the zoo's configs use the last two.
SCORE_MODES = ("bbox", "keypoint", "bbox_keypoint", "bbox_rle")
#: MMPose CocoMetric's keypoint score threshold for rescoring.
RESCORE_KPT_THR = 0.2


def person_scores(
    bbox_scores: np.ndarray | None,
    keypoint_scores: np.ndarray,
    kpt_score_thr: float = RESCORE_KPT_THR,
    mode: str = "bbox_keypoint",
) -> np.ndarray:
    """Person scores of top-down predictions, by MMPose ``CocoMetric``'s ``score_mode``
    (``mmpose/evaluation/metrics/coco_metric.py``, ``compute_metrics``):

    * ``bbox_keypoint`` (the default; every config here but RLE's): bbox score x mean of the keypoint scores above
      ``kpt_score_thr`` (0 if none passes);
    * ``bbox_rle`` (RLE's configs): bbox score + mean keypoint score + max keypoint score;
    * ``bbox``: the bbox score; ``keypoint``: the mean keypoint score (``bbox_scores`` unused).

    Args:
        bbox_scores: float [N] detector scores (1.0 for caller / ground-truth boxes); may be None in ``keypoint``
            mode.
        keypoint_scores: float [N, K] keypoint confidences.
        kpt_score_thr: ``bbox_keypoint``: keypoints with score <= this are left out of the mean.
        mode: one of :data:`SCORE_MODES`.

    Returns:
        float64 [N].

    Raises:
        ValueError: unknown mode, ``keypoint_scores`` not 2-D, ``bbox_scores`` missing where the mode needs it, or
            the two inputs disagree on N.
    """
    if mode not in SCORE_MODES:
        raise ValueError(f"score mode {mode!r} must be one of {SCORE_MODES}")
    s = np.asarray(keypoint_scores, dtype=np.float64)
    if s.ndim != 2:
        raise ValueError(f"keypoint_scores must have shape [N, K], got {list(s.shape)}")
    if mode == "keypoint":
        return s.mean(axis=1) if s.shape[1] else np.zeros(len(s))
    if bbox_scores is None:
        raise ValueError(f"bbox_scores are required for score mode {mode!r}")
    b = np.asarray(bbox_scores, dtype=np.float64).reshape(-1)
    if b.shape[0] != s.shape[0]:
        raise ValueError(f"bbox_scores has {b.shape[0]} entries for {s.shape[0]} instances")
    if mode == "bbox":
        return b
    if mode == "bbox_rle":
        return b + s.mean(axis=1) + s.max(axis=1)
    valid = s > kpt_score_thr
    n_valid = valid.sum(axis=1)
    total = np.where(valid, s, 0.0).sum(axis=1)
    return b * np.divide(total, n_valid, out=np.zeros_like(total), where=n_valid > 0)
