"""The served pipeline: decode -> detect -> crops -> pose (batched) -> keypoints in original pixels.

Evaluation runs this same object, so what is measured is what is served.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from service.batcher import CropBatcher
from service.detector import PersonDetector
from service.errors import InvalidParameterError
from service.pose import PoseEstimator
from service.scoring import person_scores


@dataclass
class PoseResult:
    """Pipeline output for one image.

    Attributes:
        width, height: image size in pixels (after EXIF orientation).
        bboxes: float32 [N, 4] xyxy, original-image pixels.
        bbox_scores: float32 [N] (1.0 for caller-given boxes).
        keypoints: float32 [N, K, 3]: x, y in original-image pixels, score.
        scores: float32 [N] person scores (:func:`service.scoring.person_scores`).
        timings_ms: per-stage wall time.
    """

    width: int
    height: int
    bboxes: np.ndarray
    bbox_scores: np.ndarray
    keypoints: np.ndarray
    scores: np.ndarray
    timings_ms: dict[str, float] = field(default_factory=dict)


class PosePipeline:
    """Detector + pose estimator (+ optional cross-request batcher).

    Args:
        detector: the person detector, or None (then every request must bring its boxes).
        pose: the pose estimator.
        batcher: a :class:`CropBatcher` around ``pose.predict_crops``; None runs crops directly.
        max_boxes: most caller boxes accepted per image.
    """

    def __init__(
        self,
        detector: PersonDetector | None,
        pose: PoseEstimator,
        batcher: CropBatcher | None = None,
        max_boxes: int = 200,
    ):
        self.detector = detector
        self.pose = pose
        self.batcher = batcher
        self.max_boxes = max_boxes

    def __call__(self, image: np.ndarray, bboxes: np.ndarray | None = None) -> PoseResult:
        """Run on one decoded image.

        Args:
            image: uint8 [H, W, 3] RGB.
            bboxes: optional caller boxes [N, 4] xyxy in original pixels; skips the detector.

        Returns:
            :class:`PoseResult`.

        Raises:
            InvalidParameterError: malformed caller boxes, too many, or no detector and no boxes.
            InferenceError: a model failed.
        """
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        if bboxes is None:
            if self.detector is None:
                raise InvalidParameterError("no detector is configured: send boxes with the request")
            bboxes, bbox_scores = self.detector.detect(image)
            timings["detect"] = (time.perf_counter() - t0) * 1000
        else:
            bboxes = (
                np.asarray(bboxes, dtype=np.float32).reshape(-1, 4) if len(bboxes) else np.zeros((0, 4), np.float32)
            )
            if len(bboxes) > self.max_boxes:
                raise InvalidParameterError(f"{len(bboxes)} boxes given, at most {self.max_boxes} accepted")
            bbox_scores = np.ones(len(bboxes), np.float32)
        t1 = time.perf_counter()
        k = len(self.pose.card.keypoint_names)
        if len(bboxes):
            crops, centers, scales = self.pose.crops_for(image, bboxes)
            t2 = time.perf_counter()
            kc = self.batcher.predict(crops) if self.batcher is not None else self.pose.predict_crops(crops)
            t3 = time.perf_counter()
            keypoints = self.pose.to_image(kc, centers, scales)
        else:
            keypoints = np.zeros((0, k, 3), np.float32)
            t2 = t3 = time.perf_counter()
        timings["crop"] = (t2 - t1) * 1000
        timings["pose"] = (t3 - t2) * 1000
        timings["total"] = (time.perf_counter() - t0) * 1000
        h, w = image.shape[:2]
        return PoseResult(
            width=w,
            height=h,
            bboxes=np.asarray(bboxes, np.float32),
            bbox_scores=np.asarray(bbox_scores, np.float32),
            keypoints=keypoints,
            scores=person_scores(bbox_scores, keypoints[..., 2]).astype(np.float32),
            timings_ms=timings,
        )
