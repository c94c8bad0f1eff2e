"""Person detector for the standard Ultralytics YOLO ONNX / engine contract.

Input ``images`` float32 (or float16) [B, 3, S, S], RGB, 0..1, letterboxed with pad value 114.
Output either raw predictions [B, 4 + C, N] (cx, cy, w, h in input pixels, then C class scores,
already sigmoid; Ultralytics ``export(format="onnx")``) or NMS-ed detections [B, M, 6]
(x1, y1, x2, y2, score, class; Ultralytics ``export(nms=True)``). Only the person class is kept;
score threshold and NMS use OpenCV (``cv2.dnn.NMSBoxes``).

Letterbox and box rescaling follow ``ultralytics/data/augment.py`` (``LetterBox``, centred,
no auto-stride padding) and ``ultralytics/utils/ops.py`` (``scale_boxes``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from core.errors import InferenceError, ModelLoadError
from inference.runtime_base import Runtime

PAD_VALUE = 114
PERSON_CLASS = 0


@dataclass(frozen=True)
class Letterbox:
    """How an image was letterboxed: ``input = (orig * ratio) + (pad_x, pad_y)``."""

    ratio: float
    pad_x: int
    pad_y: int


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, Letterbox]:
    """Resize keeping aspect ratio and pad to ``size`` x ``size`` with 114 (Ultralytics LetterBox).

    Args:
        image: uint8 [H, W, 3].
        size: square input side in pixels (640 for the standard export).

    Returns:
        (uint8 [size, size, 3], the transform).
    """
    h, w = image.shape[:2]
    r = min(size / h, size / w)
    new_w, new_h = max(1, int(round(w * r))), max(1, int(round(h * r)))  # a 2000x1 image stays 1 px high
    dw, dh = (size - new_w) / 2, (size - new_h) / 2
    if (w, h) != (new_w, new_h):
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
    left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
    out = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3)
    return out, Letterbox(r, left, top)


def letterbox_batch(
    images: list[np.ndarray], size: int, dtype: np.dtype = np.float32
) -> tuple[np.ndarray, list[Letterbox]]:
    """The detector input for a batch of images: letterboxed, RGB, NCHW, scaled to 0..1.

    Args:
        images: uint8 [H, W, 3] RGB images (any sizes).
        size: square input side S in pixels.
        dtype: float32 or float16 (the model's input dtype).

    Returns:
        (``dtype`` [B, 3, S, S] contiguous, the :class:`Letterbox` of each image).
    """
    dtype = np.dtype(dtype)
    boxed = [letterbox(im, size) for im in images]
    x = np.stack([b for b, _ in boxed]).transpose(0, 3, 1, 2).astype(dtype) / dtype.type(255.0)
    return np.ascontiguousarray(x, dtype=dtype), [lb for _, lb in boxed]


def unletterbox_bboxes(bboxes_xyxy: np.ndarray, lb: Letterbox, image_hw: tuple[int, int]) -> np.ndarray:
    """Map boxes from letterboxed input pixels to original-image pixels, clipped to the image.

    Args:
        bboxes_xyxy: float [N, 4] in input pixels.
        lb: the :class:`Letterbox` used for this image.
        image_hw: (H, W) of the original image.

    Returns:
        float32 [N, 4] xyxy in original-image pixels.
    """
    b = np.asarray(bboxes_xyxy, dtype=np.float32).copy()
    b[:, [0, 2]] = (b[:, [0, 2]] - lb.pad_x) / lb.ratio
    b[:, [1, 3]] = (b[:, [1, 3]] - lb.pad_y) / lb.ratio
    h, w = image_hw
    b[:, [0, 2]] = b[:, [0, 2]].clip(0, w)
    b[:, [1, 3]] = b[:, [1, 3]].clip(0, h)
    return b


class PersonDetector:
    """YOLO person detector over a runtime (``inference.runtime_base.Runtime``).

    Args:
        runtime: an opened runtime whose first input is the image tensor.
        score_thr: minimum person score.
        iou_thr: NMS IoU threshold (raw-output models only; NMS-ed outputs are kept as is).
        max_detections: keep at most this many boxes per image (highest scores).
        name: model name reported in responses.
        max_batch_size: most images per runtime call when the model's batch axis is dynamic (clamped to a TensorRT
            profile's max); a fixed-batch model runs its own batch (padded).

    Raises:
        ModelLoadError: the model's input or output shape does not fit the contract.
    """

    def __init__(
        self,
        runtime: Runtime,
        score_thr: float = 0.25,
        iou_thr: float = 0.45,
        max_detections: int = 100,
        name: str = "detector",
        max_batch_size: int = 1,
    ) -> None:
        self.runtime = runtime
        self.name = name
        self.score_thr = float(score_thr)
        self.iou_thr = float(iou_thr)
        self.max_detections = int(max_detections)
        shape = runtime.input_shapes[0]
        if len(shape) != 4 or (shape[1] is not None and shape[1] != 3):
            raise ModelLoadError(f"detector input must be [B, 3, S, S], got {shape}")
        self.input_name = runtime.input_names[0]
        self.input_dtype = runtime.input_dtypes[0]
        self.input_size = int(shape[2] or shape[3] or 640)
        self.fixed_batch = shape[0]
        limit = runtime.max_batch_size
        dynamic = max(1, int(max_batch_size)) if limit is None else max(1, min(int(max_batch_size), int(limit)))
        #: images per runtime call: the fixed batch, or up to ``max_batch_size`` for a dynamic batch axis
        self.batch_size = int(self.fixed_batch) if self.fixed_batch is not None else dynamic
        out_shape = runtime.output_shapes[0]
        if len(out_shape) != 3:
            raise ModelLoadError(f"detector output must be 3-D ([B, 4+C, N] or [B, M, 6]), got {out_shape}")

    def preprocess(self, image: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        """uint8 RGB [H, W, 3] -> float [1, 3, S, S] in 0..1 and the letterbox transform (:func:`letterbox_batch`)."""
        x, (lb,) = letterbox_batch([image], self.input_size, self.input_dtype)
        return x, lb

    def infer(self, x: np.ndarray) -> np.ndarray:
        """The model's raw output for a batch of preprocessed images, in runtime calls of at most ``batch_size``
        (a fixed-batch model's last call padded with zeros).

        Args:
            x: float [B, 3, S, S] (:meth:`preprocess` outputs, concatenated).

        Returns:
            float [B, 4 + C, N] or [B, M, 6].

        Raises:
            InferenceError: the runtime failed or returned an output that is not [B, ...] 3-D.
        """
        parts = []
        for start in range(0, len(x), self.batch_size):
            chunk = x[start : start + self.batch_size]
            m = len(chunk)
            if self.fixed_batch is not None and m < self.fixed_batch:
                chunk = np.concatenate([chunk, np.zeros((self.fixed_batch - m, *chunk.shape[1:]), chunk.dtype)])
            out = self.runtime.run({self.input_name: chunk})[0]
            if out.ndim != 3 or out.shape[0] != len(chunk):
                raise InferenceError(
                    f"detector output has shape {list(out.shape)}, expected [{len(chunk)}, 4+C, N] or [{len(chunk)}, M, 6]",
                    kind="shape",
                )
            parts.append(out[:m])
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def cancel(self) -> int:
        """Stop the runtime call in flight (``Runtime.cancel``; 0 when the runtime cannot). Returns how many."""
        return self.runtime.cancel()

    def postprocess(self, pred: np.ndarray, lb: Letterbox, image_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """One image's raw output -> person boxes in original pixels, sorted by descending score.

        Args:
            pred: float [4 + C, N] (raw) or [M, 6] (NMS-ed) for one image.
            lb: that image's :class:`Letterbox`.
            image_hw: (H, W) of the original image.

        Returns:
            (bboxes float32 [N, 4] xyxy original-image pixels, scores float32 [N]).

        Raises:
            InferenceError: a raw output without class scores.
        """
        bboxes, scores = self._select(pred, lb, image_hw)
        order = np.argsort(-scores, kind="stable")
        return bboxes[order], scores[order]

    def _select(self, pred: np.ndarray, lb: Letterbox, image_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        pred = np.asarray(pred, dtype=np.float32)
        if pred.ndim == 2 and pred.shape[1] == 6 and pred.shape[0] != 6:
            # NMS-ed: [M, 6] = x1, y1, x2, y2, score, class
            keep = (pred[:, 5].round() == PERSON_CLASS) & (pred[:, 4] >= self.score_thr)
            det = pred[keep]
            det = det[np.argsort(-det[:, 4])][: self.max_detections]
            bboxes, scores = det[:, :4], det[:, 4]
        else:
            if pred.shape[0] < 5:
                raise InferenceError(f"detector output {list(pred.shape)} has no class scores")
            p = pred.T  # [N, 4 + C]
            scores = p[:, 4 + PERSON_CLASS]
            keep = scores >= self.score_thr
            p, scores = p[keep], scores[keep]
            cx, cy, w, h = p[:, 0], p[:, 1], p[:, 2], p[:, 3]
            bboxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
            if len(bboxes):
                xywh = np.stack([bboxes[:, 0], bboxes[:, 1], w, h], axis=1)
                idx = cv2.dnn.NMSBoxes(xywh.tolist(), scores.tolist(), self.score_thr, self.iou_thr)
                idx = np.asarray(idx, dtype=np.int64).reshape(-1)[: self.max_detections]
                bboxes, scores = bboxes[idx], scores[idx]
        bboxes = unletterbox_bboxes(bboxes.reshape(-1, 4), lb, image_hw)
        valid = (bboxes[:, 2] > bboxes[:, 0]) & (bboxes[:, 3] > bboxes[:, 1])
        return bboxes[valid], scores[valid].astype(np.float32)

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Find people in one image.

        Args:
            image: uint8 [H, W, 3] RGB.

        Returns:
            (bboxes float32 [N, 4] xyxy in original-image pixels, scores float32 [N]), sorted by
            descending score.

        Raises:
            InferenceError: the runtime failed or returned an unexpected shape.
        """
        x, lb = self.preprocess(image)
        return self.postprocess(self.infer(x)[0], lb, image.shape[:2])
