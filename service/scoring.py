"""Person score of a top-down prediction: the one implementation, shared by the service and evaluation.

Kept free of heavy imports (numpy only) so ``evaluation.metric`` can use it without loading runtimes.
"""

from __future__ import annotations

import numpy as np

#: MMPose CocoMetric's keypoint score threshold for rescoring.
RESCORE_KEYPOINT_THRESHOLD = 0.2


def person_scores(
    bbox_scores: np.ndarray, keypoint_scores: np.ndarray, threshold: float = RESCORE_KEYPOINT_THRESHOLD
) -> np.ndarray:
    """Person score = bbox score x mean of the keypoint scores above ``threshold`` (0 if none passes).

    Follows ``CocoMetric.compute_metrics`` with ``score_mode='bbox_keypoint'``
    (``mmpose/evaluation/metrics/coco_metric.py``).

    Args:
        bbox_scores: float [N] detector scores (1.0 for caller / ground-truth boxes).
        keypoint_scores: float [N, K] keypoint confidences.
        threshold: keypoints with score <= this are left out of the mean.

    Returns:
        float64 [N].

    Raises:
        ValueError: ``keypoint_scores`` is not 2-D, or the two inputs disagree on N.
    """
    s = np.asarray(keypoint_scores, dtype=np.float64)
    if s.ndim != 2:
        raise ValueError(f"keypoint_scores must have shape [N, K], got {list(s.shape)}")
    b = np.asarray(bbox_scores, dtype=np.float64).reshape(-1)
    if b.shape[0] != s.shape[0]:
        raise ValueError(f"bbox_scores has {b.shape[0]} entries for {s.shape[0]} instances")
    valid = s > threshold
    n_valid = valid.sum(axis=1)
    total = np.where(valid, s, 0.0).sum(axis=1)
    return b * np.divide(total, n_valid, out=np.zeros_like(total), where=n_valid > 0)
