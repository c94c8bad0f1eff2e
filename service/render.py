"""Draw boxes and skeletons on an image (``POST /pose?render=true`` returns this as JPEG)."""

from __future__ import annotations

import cv2
import numpy as np

from models.keypoints import COCO17_SKELETON


def render_poses(
    image: np.ndarray,
    bboxes: np.ndarray,
    keypoints: np.ndarray,
    kpt_score_thr: float = 0.3,
    skeleton=COCO17_SKELETON,
) -> np.ndarray:
    """Return a copy of ``image`` with boxes, limbs and joints drawn.

    Args:
        image: uint8 [H, W, 3] RGB.
        bboxes: float [N, 4] xyxy, original-image pixels.
        keypoints: float [N, K, 3] x, y (original-image pixels), score.
        kpt_score_thr: joints and limbs with a lower score are not drawn.
        skeleton: limbs as 0-based index pairs.

    Returns:
        uint8 [H, W, 3] RGB.
    """
    out = np.ascontiguousarray(image.copy())
    t = max(1, round(max(image.shape[:2]) / 400))
    for box, kpts in zip(np.asarray(bboxes), np.asarray(keypoints)):
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(out, (x1, y1), (x2, y2), (0, 200, 0), t)
        for a, b in skeleton:
            if kpts[a, 2] >= kpt_score_thr and kpts[b, 2] >= kpt_score_thr:
                pa = (int(round(kpts[a, 0])), int(round(kpts[a, 1])))
                pb = (int(round(kpts[b, 0])), int(round(kpts[b, 1])))
                cv2.line(out, pa, pb, (255, 128, 0), t, cv2.LINE_AA)
        for x, y, s in kpts:
            if s >= kpt_score_thr:
                cv2.circle(out, (int(round(x)), int(round(y))), t + 2, (255, 0, 0), -1, cv2.LINE_AA)
    return out


def encode_jpeg(image_rgb: np.ndarray, quality: int = 90) -> bytes:
    """uint8 RGB [H, W, 3] -> JPEG bytes."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def render_jpeg(
    image: np.ndarray, bboxes: np.ndarray, keypoints: np.ndarray, max_pixels: int, skeleton=COCO17_SKELETON
) -> bytes:
    """JPEG of :func:`render_poses`, drawn on a copy downscaled to at most ``max_pixels`` (boxes and keypoints
    scaled with it), so the answer's size is bounded whatever the upload.

    Args:
        image: uint8 [H, W, 3] RGB. bboxes: [N, 4] xyxy and keypoints [N, K, 3], original-image pixels.
        max_pixels: most pixels (width x height) of the drawn image.
        skeleton: limbs as 0-based index pairs of the model's keypoints (``ModelCard.schema.skeleton``; none for a
            model without a known schema).
    """
    h, w = image.shape[:2]
    scale = min(1.0, (max_pixels / float(w * h)) ** 0.5)
    if scale < 1.0:
        size = (max(1, int(w * scale)), max(1, int(h * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        bboxes = np.asarray(bboxes, np.float32) * scale
        keypoints = np.asarray(keypoints, np.float32).copy()
        keypoints[..., :2] *= scale
    return encode_jpeg(render_poses(image, bboxes, keypoints, skeleton=skeleton))
