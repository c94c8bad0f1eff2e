"""Person detector for three ONNX / engine output contracts: Ultralytics YOLO, YOLOX, MMDeploy end2end (RTMDet, ...).

The contract and the preprocessing conventions come from the model's detector card (``models.detector_card``: a
JSON beside the model), or, without one, from the graph's output names and shapes
(``models.detector_card.detect_contract``) with that contract's own conventions (``default_card``):

* ``ultralytics``: input RGB, 0..1, letterbox centred with pad 114; output [B, 4 + C, N] (cx, cy, w, h in input
  pixels, then C sigmoid class scores; NMS here) or NMS-ed [B, M, 6] (x1, y1, x2, y2, score, class;
  ``export(nms=True)``). Letterbox and box rescaling follow ``ultralytics/data/augment.py`` (``LetterBox``, centred,
  no auto-stride padding) and ``ultralytics/utils/ops.py`` (``scale_boxes``).
* ``yolox``: input BGR 0..255, image at the top-left, pad 114 (``yolox/data/data_augment.py`` ``preproc``); output
  [B, N, 5 + C], decoded here by the stride grid when the export left it raw (``yolox/utils/demo_utils.py``
  ``demo_postprocess``); score = objectness x person score; NMS here (``multiclass_nms`` of the demo, per class).
* ``mmdeploy``: input as MMDet's test pipeline (``Resize(keep_ratio=True)``, ``Pad`` at the bottom-right with 114,
  ``(x - mean) / std`` in BGR for RTMDet); outputs ``dets`` [B, N, 5] (x1, y1, x2, y2, score in input pixels) and
  ``labels`` [B, N], NMS already in the graph (``mmdeploy/codebase/mmdet``, rtmlib ``RTMDet``).

Every contract returns boxes xyxy in original-image pixels (``input = original * ratio + pad``, inverted and clipped
to the image), person class only, score threshold, at most ``max_detections``, sorted by score. NMS (where the graph
has none) is OpenCV's ``cv2.dnn.NMSBoxes``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from core.errors import InferenceError, ModelLoadError
from inference.runtime_base import Runtime
from models.detector_card import (
    DETECTOR_CARD_METADATA_KEY,
    DetectorCard,
    DetectorCardError,
    LetterboxSpec,
    default_card,
    detect_contract,
    detector_card_from_metadata,
    find_detector_card,
)

PAD_VALUE = 114
PERSON_CLASS = 0
#: The Ultralytics letterbox (centred, 114, Python rounding): the default of :func:`letterbox`.
ULTRALYTICS_LETTERBOX = LetterboxSpec("center", PAD_VALUE, "keep_ratio", "round")


@dataclass(frozen=True)
class Letterbox:
    """How an image was letterboxed: ``input = (orig * ratio) + (pad_x, pad_y)`` (input and original pixels)."""

    ratio: float
    pad_x: int
    pad_y: int


def _size_wh(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, int | np.integer):
        return int(size), int(size)
    w, h = size
    return int(w), int(h)


def _rounded(x: float, rounding: str) -> int:
    if rounding == "floor":
        return int(x)
    if rounding == "half_up":
        return int(x + 0.5)
    return int(round(x))


def letterbox(
    image: np.ndarray, size: int | tuple[int, int], spec: LetterboxSpec | None = None
) -> tuple[np.ndarray, Letterbox]:
    """Resize keeping the aspect ratio and pad to the input size (``spec``: placement, pad value, rounding).

    ``r = min(H / h, W / w)``; the resized size is ``w * r``, ``h * r`` rounded by ``spec.rounding`` (at least 1 px);
    ``center`` splits the padding as Ultralytics' ``LetterBox`` (``round(d - 0.1)`` before, ``round(d + 0.1)``
    after), ``top_left`` puts all of it on the right and bottom (YOLOX ``preproc``, MMDet ``Pad``).

    Args:
        image: uint8 [H, W, 3].
        size: input side in pixels (square), or (width, height).
        spec: the conventions; None: Ultralytics' (:data:`ULTRALYTICS_LETTERBOX`).

    Returns:
        (uint8 [height, width, 3], the transform).

    Raises:
        ValueError: the image is not [H, W, 3] with H, W > 0.
    """
    spec = spec or ULTRALYTICS_LETTERBOX
    if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) == 0:
        raise ValueError(f"letterbox wants an [H, W, 3] image, got shape {list(image.shape)}")
    out_w, out_h = _size_wh(size)
    h, w = image.shape[:2]
    r = min(out_h / h, out_w / w)
    new_w = min(out_w, max(1, _rounded(w * r, spec.rounding)))  # a 2000x1 image stays 1 px high
    new_h = min(out_h, max(1, _rounded(h * r, spec.rounding)))
    if (w, h) != (new_w, new_h):
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    if spec.placement == "center":
        dw, dh = (out_w - new_w) / 2, (out_h - new_h) / 2
        top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
        left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
    else:
        top, left, bottom, right = 0, 0, out_h - new_h, out_w - new_w
    value = (int(spec.pad_value),) * 3
    out = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=value)
    return out, Letterbox(r, left, top)


def letterbox_batch(
    images: list[np.ndarray],
    size: int | tuple[int, int],
    dtype: np.dtype = np.float32,
    card: DetectorCard | None = None,
) -> tuple[np.ndarray, list[Letterbox]]:
    """The detector input for a batch of images: letterboxed, colour order, ``(x - mean) / std``, NCHW.

    Args:
        images: uint8 [H, W, 3] RGB images (any sizes).
        size: input side (square) or (width, height) in pixels.
        dtype: float32 or float16 (the model's input dtype; computed in float32, then cast).
        card: the conventions (letterbox, colour order, mean / std); None: Ultralytics' (RGB, 0..1, centred, 114).

    Returns:
        (``dtype`` [B, 3, height, width] contiguous, the :class:`Letterbox` of each image).
    """
    dtype = np.dtype(dtype)
    spec = card.letterbox if card is not None else ULTRALYTICS_LETTERBOX
    boxed = [letterbox(im, size, spec) for im in images]
    x = np.stack([b for b, _ in boxed])
    if card is None:
        x = x.transpose(0, 3, 1, 2).astype(dtype) / dtype.type(255.0)
        return np.ascontiguousarray(x, dtype=dtype), [lb for _, lb in boxed]
    if card.input.color == "BGR":
        x = x[..., ::-1]
    x = x.astype(np.float32)
    if card.input.mean is not None and any(card.input.mean):  # Ultralytics' zero mean: skip a pass over the batch
        x -= np.asarray(card.input.mean, np.float32)
    if card.input.std is not None:
        x /= np.asarray(card.input.std, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=dtype), [lb for _, lb in boxed]


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


@functools.lru_cache(maxsize=8)
def _yolox_grid(width: int, height: int, strides: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """float32 [N, 2] grid cells (x, y) and [N, 1] strides of YOLOX's anchors (read-only; cached per input size)."""
    grids, steps = [], []
    for s in strides:
        hs, ws = height // s, width // s
        gx, gy = np.meshgrid(np.arange(ws), np.arange(hs))
        grids.append(np.stack([gx, gy], -1).reshape(-1, 2))
        steps.append(np.full((hs * ws, 1), s))
    grid, stride = np.concatenate(grids).astype(np.float32), np.concatenate(steps).astype(np.float32)
    grid.flags.writeable = stride.flags.writeable = False
    return grid, stride


def yolox_grid_decode(pred: np.ndarray, width: int, height: int, strides: list[int] | tuple[int, ...]) -> np.ndarray:
    """Decode YOLOX's raw head output as ``demo_postprocess`` does (``yolox/utils/demo_utils.py``).

    Anchors run stride by stride, row-major within each level (``y`` outer, ``x`` inner); for an anchor at grid cell
    (gx, gy) of stride s: ``cx = (tx + gx) * s``, ``cy = (ty + gy) * s``, ``w = exp(tw) * s``, ``h = exp(th) * s``.

    Args:
        pred: float [..., N, 5 + C] raw (tx, ty, tw, th, objectness, class scores).
        width, height: model input size in pixels.
        strides: the head's strides, e.g. (8, 16, 32).

    Returns:
        float32 [..., N, 5 + C] with the first four values cx, cy, w, h in input pixels (the rest unchanged).

    Raises:
        ValueError: N is not ``sum((height // s) * (width // s))``.
    """
    grid, stride = _yolox_grid(int(width), int(height), tuple(int(s) for s in strides))
    pred = np.asarray(pred, np.float32)
    if pred.shape[-2] != len(grid):
        raise ValueError(
            f"YOLOX output has {pred.shape[-2]} anchors, but strides {list(strides)} at {width}x{height} give {len(grid)}"
        )
    out = pred.copy()
    out[..., :2] = (pred[..., :2] + grid) * stride
    out[..., 2:4] = np.exp(pred[..., 2:4]) * stride
    return out


def load_detector_card(model_or_card: str | Path) -> tuple[Path, DetectorCard | None]:
    """The model file and its detector card: the card JSON itself, ``<stem>.json`` beside the model
    (``models.detector_card.find_detector_card``), or else, for an ``.onnx`` file, the card the exports embed in its
    metadata (:data:`models.detector_card.DETECTOR_CARD_METADATA_KEY`, read by onnxruntime); None when there is none
    (the contract is then told from the graph).

    Raises:
        DetectorCardError: an invalid card, or an ONNX file that cannot be read.
    """
    path, card = find_detector_card(model_or_card)
    if card is None and path.suffix.lower() == ".onnx" and path.is_file():
        from inference.pose_estimator import onnx_metadata
        from models.card import ModelCardError

        try:
            text = onnx_metadata(path).get(DETECTOR_CARD_METADATA_KEY)
        except ModelCardError as exc:
            raise DetectorCardError(str(exc)) from exc
        if text is not None:
            card = detector_card_from_metadata(text, path)
    return path, card


class PersonDetector:
    """Person detector over a runtime (``inference.runtime_base.Runtime``), for the contract of its card.

    Args:
        runtime: an opened runtime.
        score_thr: minimum person score.
        iou_thr: NMS IoU threshold (models without NMS in the graph; NMS-ed outputs are kept as they are).
        max_detections: keep at most this many boxes per image (highest scores).
        name: model name reported in responses.
        max_batch_size: most images per runtime call when the model's batch axis is dynamic (clamped to a TensorRT
            profile's max); a fixed-batch model runs its own batch (padded).
        card: the detector card (``models.detector_card.find_detector_card``); None: the contract is told from the
            graph's outputs and gets that contract's default conventions.

    Raises:
        ModelLoadError: the model's input or outputs do not fit the contract, the card disagrees with the graph, or no
            card was given and the graph's outputs fit no known contract (the message names what was seen).
    """

    def __init__(
        self,
        runtime: Runtime,
        score_thr: float = 0.25,
        iou_thr: float = 0.45,
        max_detections: int = 100,
        name: str = "detector",
        max_batch_size: int = 1,
        card: DetectorCard | None = None,
    ) -> None:
        self.runtime = runtime
        self.name = name
        self.score_thr = float(score_thr)
        self.iou_thr = float(iou_thr)
        self.max_detections = int(max_detections)
        shape = runtime.input_shapes[0]
        if len(shape) != 4 or (shape[1] is not None and shape[1] != 3):
            raise ModelLoadError(f"detector input must be [B, 3, H, W], got {shape}")
        if card is None:
            try:
                contract = detect_contract(runtime.output_names, runtime.output_shapes)
            except DetectorCardError as exc:
                raise ModelLoadError(f"{runtime.model_path}: {exc}") from exc
            side = int(shape[3] or shape[2] or 640)
            card = default_card(contract, side, int(shape[2] or side))
        self.card = card
        width, height = card.input_size
        if (shape[2] is not None and shape[2] != height) or (shape[3] is not None and shape[3] != width):
            raise ModelLoadError(f"detector card input {width}x{height} (WxH) does not fit the graph's input {shape}")
        self.input_name = card.input.name or runtime.input_names[0]
        if self.input_name not in runtime.input_names:
            raise ModelLoadError(
                f"detector card input {self.input_name!r} is not an input of the graph {runtime.input_names}"
            )
        self.input_dtype = runtime.input_dtypes[runtime.input_names.index(self.input_name)]
        #: input side in pixels (the width; detectors are square in practice), see :attr:`input_wh`
        self.input_size = int(width)
        self.input_wh = (int(width), int(height))
        self.person_class = int(card.person_class)
        self.fixed_batch = shape[0]
        limit = runtime.max_batch_size
        dynamic = max(1, int(max_batch_size)) if limit is None else max(1, min(int(max_batch_size), int(limit)))
        #: images per runtime call: the fixed batch, or up to ``max_batch_size`` for a dynamic batch axis
        self.batch_size = int(self.fixed_batch) if self.fixed_batch is not None else dynamic
        self._outputs = self._output_indices(runtime)

    def _output_indices(self, runtime: Runtime) -> tuple[int, ...]:
        names, shapes = runtime.output_names, runtime.output_shapes
        contract = self.card.contract
        if contract == "mmdeploy":
            if "dets" in names and "labels" in names:
                idx = (names.index("dets"), names.index("labels"))
            elif len(names) >= 2:
                idx = (0, 1)
            else:
                raise ModelLoadError(f"mmdeploy detector needs outputs dets [B, N, 5] and labels [B, N], got {names}")
            dets, labels = shapes[idx[0]], shapes[idx[1]]
            if len(dets) != 3 or dets[2] not in (5, None) or len(labels) != 2:
                raise ModelLoadError(
                    f"mmdeploy detector outputs must be dets [B, N, 5] and labels [B, N], got {names[idx[0]]} {dets} "
                    f"and {names[idx[1]]} {labels}"
                )
            return idx
        out = shapes[0]
        if len(out) != 3:
            want = "[B, N, 5+C]" if contract == "yolox" else "[B, 4+C, N] or [B, M, 6]"
            raise ModelLoadError(f"{contract} detector output must be 3-D {want}, got {names[0]} {out}")
        if contract == "yolox":
            if out[2] is not None and out[2] < 6:
                raise ModelLoadError(f"yolox detector output must be [B, N, 5+C] with C >= 1, got {out}")
            if self.card.yolox_decode == "grid" and out[1] is not None and out[1] != self.card.yolox_anchor_count():
                raise ModelLoadError(
                    f"yolox output has {out[1]} anchors; strides {self.card.strides} at {self.input_wh} give "
                    f"{self.card.yolox_anchor_count()} (set strides in the detector card)"
                )
        return (0,)

    def preprocess(self, image: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        """uint8 RGB [H, W, 3] -> float [1, 3, h, w] as the card says, and the letterbox transform
        (:func:`letterbox_batch`)."""
        x, (lb,) = letterbox_batch([image], self.input_wh, self.input_dtype, self.card)
        return x, lb

    def infer(self, x: np.ndarray) -> np.ndarray:
        """The model's output for a batch of preprocessed images, in runtime calls of at most ``batch_size``
        (a fixed-batch model's last call padded with zeros). One array per contract, batch first: the one
        code path of the cross-request batcher, which splits it by image.

        Args:
            x: float [B, 3, h, w] (:meth:`preprocess` outputs, concatenated).

        Returns:
            ultralytics: float [B, 4 + C, N] or [B, M, 6]; yolox: float [B, N, 5 + C] as the graph wrote it;
            mmdeploy: float32 [B, N, 6] = ``dets`` and the label (rows added to align calls with different N have
            label -1).

        Raises:
            InferenceError: the runtime failed or returned outputs that break the contract.
        """
        parts = []
        for start in range(0, len(x), self.batch_size):
            chunk = x[start : start + self.batch_size]
            m = len(chunk)
            if self.fixed_batch is not None and m < self.fixed_batch:
                chunk = np.concatenate([chunk, np.zeros((self.fixed_batch - m, *chunk.shape[1:]), chunk.dtype)])
            outs = self.runtime.run({self.input_name: chunk})
            parts.append(self._pack(outs, len(chunk))[:m])
        if len(parts) == 1:
            return parts[0]
        if self.card.contract == "mmdeploy":
            n = max(p.shape[1] for p in parts)
            parts = [_pad_rows(p, n) for p in parts]
        return np.concatenate(parts)

    def _pack(self, outs: list[np.ndarray], batch: int) -> np.ndarray:
        if self.card.contract != "mmdeploy":
            out = outs[self._outputs[0]]
            if out.ndim != 3 or out.shape[0] != batch:
                want = "N, 5+C" if self.card.contract == "yolox" else "4+C, N] or [B, M, 6"
                raise InferenceError(
                    f"detector output has shape {list(out.shape)}, expected [{batch}, {want}]", kind="shape"
                )
            return out
        dets, labels = (np.asarray(outs[i]) for i in self._outputs)
        if dets.ndim != 3 or dets.shape[0] != batch or dets.shape[2] != 5 or labels.shape != dets.shape[:2]:
            raise InferenceError(
                f"mmdeploy detector outputs have shapes dets {list(dets.shape)}, labels {list(labels.shape)}; expected "
                f"[{batch}, N, 5] and [{batch}, N]",
                kind="shape",
            )
        return np.concatenate([dets.astype(np.float32), labels[..., None].astype(np.float32)], axis=-1)

    def cancel(self) -> int:
        """Stop the runtime call in flight (``Runtime.cancel``; 0 when the runtime cannot). Returns how many."""
        return self.runtime.cancel()

    def postprocess(self, pred: np.ndarray, lb: Letterbox, image_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """One image's output (one item of :meth:`infer`) -> person boxes in original pixels, sorted by descending score.

        Args:
            pred: one image's item of :meth:`infer`'s output.
            lb: that image's :class:`Letterbox`.
            image_hw: (H, W) of the original image.

        Returns:
            (bboxes float32 [N, 4] xyxy original-image pixels, scores float32 [N]).

        Raises:
            InferenceError: an output without the person class's score.
        """
        bboxes, scores = self._select(np.asarray(pred, dtype=np.float32))
        bboxes = unletterbox_bboxes(bboxes.reshape(-1, 4), lb, image_hw)
        valid = (bboxes[:, 2] > bboxes[:, 0]) & (bboxes[:, 3] > bboxes[:, 1])
        bboxes, scores = bboxes[valid], scores[valid].astype(np.float32)
        order = np.argsort(-scores, kind="stable")
        return bboxes[order], scores[order]

    def _select(self, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Person boxes xyxy in input pixels and their scores, thresholded, NMS-ed, at most ``max_detections``."""
        contract, pc = self.card.contract, self.person_class
        if contract == "mmdeploy" or (contract == "ultralytics" and pred.shape[1] == 6 and pred.shape[0] != 6):
            # NMS-ed: [M, 6] = x1, y1, x2, y2, score, class
            keep = (pred[:, 5].round() == pc) & (pred[:, 4] >= self.score_thr)
            det = pred[keep]
            det = det[np.argsort(-det[:, 4], kind="stable")][: self.max_detections]
            return det[:, :4], det[:, 4]
        if contract == "yolox":
            if pred.shape[1] <= 5 + pc:
                raise InferenceError(f"yolox output {list(pred.shape)} has no score for class {pc}")
            if self.card.yolox_decode == "grid":
                pred = yolox_grid_decode(pred, *self.input_wh, self.card.strides)
            cxcywh, scores = pred[:, :4], pred[:, 4] * pred[:, 5 + pc]
        else:
            if pred.shape[0] <= 4 + pc:
                raise InferenceError(f"detector output {list(pred.shape)} has no score for class {pc}")
            cxcywh, scores = pred[:4].T, pred[4 + pc]
        keep = scores >= self.score_thr
        cxcywh, scores = cxcywh[keep], scores[keep]
        cx, cy, w, h = cxcywh.T
        bboxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        if len(bboxes):
            xywh = np.stack([bboxes[:, 0], bboxes[:, 1], w, h], axis=1)
            idx = cv2.dnn.NMSBoxes(xywh.tolist(), scores.tolist(), self.score_thr, self.iou_thr)
            idx = np.asarray(idx, dtype=np.int64).reshape(-1)[: self.max_detections]
            bboxes, scores = bboxes[idx], scores[idx]
        return bboxes, scores

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


def _pad_rows(packed: np.ndarray, n: int) -> np.ndarray:
    """[B, M, 6] -> [B, n, 6] with rows of label -1 (never a person) added."""
    if packed.shape[1] == n:
        return packed
    pad = np.zeros((packed.shape[0], n - packed.shape[1], 6), np.float32)
    pad[..., 5] = -1
    return np.concatenate([packed, pad], axis=1)
