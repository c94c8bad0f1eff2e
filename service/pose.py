"""Top-down pose estimator driven only by a model card (``models/card.py``).

Boxes -> center/scale -> affine crops (``models/geometry.py``, MMPose conventions) -> the model
(batched) -> keypoints decoded per the card -> mapped back to original-image pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.card import ModelCard, ModelCardError, card_path_for
from models.geometry import DEFAULT_PADDING, box_to_center_scale, crop_batch, keypoints_crop_to_image
from models.keypoints import COCO17_FLIP_PAIRS, COCO17_NAMES, flip_indices
from service.errors import InferenceError, InvalidParameterError, ModelLoadError
from service.runtime import create_runtime

_NP_DTYPES = {"uint8": np.uint8, "float32": np.float32, "float16": np.float16, "int32": np.int32}


def decode_output(output: np.ndarray, card: ModelCard) -> np.ndarray:
    """Model output -> keypoints in crop pixels, per the card's output spec.

    Args:
        output: ``keypoints`` kind: [B, K, 2 | 3] or [B, 1, K, 2 | 3]; ``heatmap`` kind: [B, K, H, W].
        card: the model card.

    Returns:
        float32 [B, K, 3]: x, y in crop pixels (MMPose convention), score (1.0 when the model gives none).

    Raises:
        InferenceError: the output's shape does not fit the card.
    """
    out = np.asarray(output, dtype=np.float32)
    w, h = card.input_size
    if card.output.kind == "heatmap":
        from models.codecs import decode_heatmap

        if out.ndim != 4:
            raise InferenceError(f"heatmap output must be [B, K, H, W], got {list(out.shape)}")
        return decode_heatmap(out, (w, h))
    if out.ndim == 4 and out.shape[1] == 1:
        out = out[:, 0]
    if out.ndim != 3 or out.shape[2] not in (2, 3):
        raise InferenceError(f"keypoint output must be [B, K, 2|3] or [B, 1, K, 2|3], got {list(output.shape)}")
    xy = out[..., :2]
    if card.output.coord_order == "yx":
        xy = xy[..., ::-1]
    if card.output.coord_units == "normalized":
        xy = xy * np.array([w, h], dtype=np.float32)
    score = out[..., 2:3] if out.shape[2] == 3 else np.ones_like(out[..., :1])
    return np.concatenate([xy, score], axis=-1).astype(np.float32)


class PoseEstimator:
    """A top-down COCO-17 pose model behind a runtime, configured by its card.

    Args:
        card: the model card (input spec, output spec, keypoint schema).
        runtime: an opened runtime for ``card.model_path()``.
        padding: box padding before the square crop (MMPose 1.25).
        max_batch_size: most crops per runtime call when the model's batch axis is dynamic.
        flip_test: run the horizontally flipped crop too and average (only when the card says the
            graph does not already do it). Coordinates are un-flipped as ``x = W - 1 - x_f``
            (MMPose's ``flip_coordinates`` for integral regression, in pixels) and joints swapped
            by the COCO flip pairs.

    Raises:
        ModelLoadError: the card does not fit the model (input name, size or layout).
    """

    def __init__(
        self,
        card: ModelCard,
        runtime,
        padding: float = DEFAULT_PADDING,
        max_batch_size: int = 32,
        flip_test: bool = False,
    ) -> None:
        self.card = card
        self.runtime = runtime
        self.padding = float(padding)
        self.flip_test = bool(flip_test) and not card.flip_test_in_graph
        self.name = card.name
        if card.input.name not in runtime.input_names:
            raise ModelLoadError(
                f"card {card.name!r}: input {card.input.name!r} not in model inputs {runtime.input_names}"
            )
        if card.output.name not in runtime.output_names:
            raise ModelLoadError(
                f"card {card.name!r}: output {card.output.name!r} not in model outputs {runtime.output_names}"
            )
        self._out_index = runtime.output_names.index(card.output.name)
        shape = runtime.input_shapes[runtime.input_names.index(card.input.name)]
        w, h = card.input_size
        expect = [h, w, 3] if card.input.layout == "NHWC" else [3, h, w]
        if len(shape) != 4 or any(s is not None and s != e for s, e in zip(shape[1:], expect)):
            raise ModelLoadError(
                f"card {card.name!r}: input {card.input.layout} {w}x{h} does not fit the model's input shape {shape}"
            )
        self.fixed_batch = shape[0]
        self.batch_size = int(shape[0]) if shape[0] is not None else int(max_batch_size)
        self._dtype = _NP_DTYPES[card.input.dtype]
        self._mean = None if card.input.mean is None else np.asarray(card.input.mean, np.float32)
        self._std = None if card.input.std is None else np.asarray(card.input.std, np.float32)
        names = card.keypoint_names
        self._flip_idx = flip_indices(len(names), COCO17_FLIP_PAIRS if tuple(names) == COCO17_NAMES else ())

    @classmethod
    def from_card(
        cls,
        card_or_model_path: str | Path,
        backend: str = "onnxruntime",
        providers: list[str] | None = None,
        allow_fallback: bool = False,
        **kwargs,
    ) -> PoseEstimator:
        """Open a pose model from its card (or the model file with ``<stem>.json`` beside it).

        Raises:
            ModelLoadError: the card or the model file is missing or invalid.
        """
        try:
            card = ModelCard.load(card_path_for(card_or_model_path))
        except ModelCardError as exc:
            raise ModelLoadError(str(exc)) from exc
        runtime = create_runtime(card.model_path(), backend, providers, allow_fallback)
        return cls(card, runtime, **kwargs)

    @property
    def input_size(self) -> tuple[int, int]:
        return self.card.input_size

    def preprocess(self, crops: np.ndarray) -> np.ndarray:
        """uint8 RGB crops [N, h, w, 3] -> the model's input tensor (colour, mean/std, layout, dtype)."""
        x = crops
        if self.card.input.color == "BGR":
            x = x[..., ::-1]
        if self._mean is not None or self._std is not None or self._dtype in (np.float32, np.float16):
            x = x.astype(np.float32)
            if self._mean is not None:
                x = x - self._mean
            if self._std is not None:
                x = x / self._std
        if self.card.input.layout == "NCHW":
            x = x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x, dtype=self._dtype)

    def _run(self, crops: np.ndarray) -> np.ndarray:
        n = len(crops)
        out = np.empty((n, len(self.card.keypoint_names), 3), dtype=np.float32)
        for start in range(0, n, self.batch_size):
            chunk = crops[start : start + self.batch_size]
            m = len(chunk)
            if self.fixed_batch is not None and m < self.fixed_batch:
                pad = np.zeros((self.fixed_batch - m, *chunk.shape[1:]), dtype=chunk.dtype)
                chunk = np.concatenate([chunk, pad])
            raw = self.runtime.run({self.card.input.name: self.preprocess(chunk)})[self._out_index]
            kpts = decode_output(raw, self.card)[:m]
            if kpts.shape[1] != out.shape[1]:
                raise InferenceError(f"model gave {kpts.shape[1]} keypoints, its card names {out.shape[1]}")
            out[start : start + m] = kpts
        return out

    def predict_crops(self, crops: np.ndarray) -> np.ndarray:
        """Keypoints for crops already cut to the model input.

        Args:
            crops: uint8 [N, h, w, 3] RGB, (w, h) = ``card.input_size``.

        Returns:
            float32 [N, K, 3]: x, y in crop pixels, score.

        Raises:
            InvalidParameterError: wrong crop shape or dtype.
            InferenceError: the runtime failed.
        """
        crops = np.asarray(crops)
        w, h = self.input_size
        if crops.ndim != 4 or crops.shape[1:] != (h, w, 3) or crops.dtype != np.uint8:
            raise InvalidParameterError(f"crops must be uint8 [N, {h}, {w}, 3], got {crops.dtype} {list(crops.shape)}")
        if len(crops) == 0:
            return np.zeros((0, len(self.card.keypoint_names), 3), np.float32)
        kpts = self._run(crops)
        if self.flip_test:
            flipped = self._run(np.ascontiguousarray(crops[:, :, ::-1]))
            flipped = flipped[:, self._flip_idx]
            flipped[..., 0] = (w - 1) - flipped[..., 0]
            kpts = (kpts + flipped) / 2
        return kpts

    def crops_for(self, image: np.ndarray, bboxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Cut the model-input crops of ``bboxes`` (xyxy, original pixels) from an RGB image.

        Returns:
            (crops uint8 [N, h, w, 3], centers float32 [N, 2], scales float32 [N, 2]).

        Raises:
            InvalidParameterError: malformed boxes (shape, non-finite, empty).
        """
        try:
            centers, scales = box_to_center_scale(bboxes, self.input_size, self.padding)
        except ValueError as exc:
            raise InvalidParameterError(str(exc)) from exc
        return crop_batch(image, centers, scales, self.input_size), centers, scales

    def to_image(self, kpts_crop: np.ndarray, centers: np.ndarray, scales: np.ndarray) -> np.ndarray:
        """Crop-pixel keypoints [N, K, 3] -> original-image pixels [N, K, 3] (score kept)."""
        out = kpts_crop.copy()
        out[..., :2] = keypoints_crop_to_image(kpts_crop[..., :2], centers, scales, self.input_size)
        return out

    def predict(self, image: np.ndarray, bboxes: np.ndarray) -> np.ndarray:
        """Keypoints of the people in ``bboxes``.

        Args:
            image: uint8 [H, W, 3] RGB.
            bboxes: [N, 4] xyxy in original-image pixels.

        Returns:
            float32 [N, K, 3]: x, y in original-image pixels, score.

        Raises:
            InvalidParameterError: malformed boxes.
            InferenceError: the runtime failed.
        """
        if len(bboxes) == 0:
            return np.zeros((0, len(self.card.keypoint_names), 3), np.float32)
        crops, centers, scales = self.crops_for(image, bboxes)
        return self.to_image(self.predict_crops(crops), centers, scales)

    def describe(self) -> dict:
        """Card + runtime facts for ``/v1/models``."""
        return {"card": self.card.to_dict(), "runtime": self.runtime.describe(), "flip_test": self.flip_test}
