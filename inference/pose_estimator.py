"""Top-down pose estimator driven only by a model card (``models/card.py``).

Boxes -> center/scale -> affine crops (``models/geometry.py``, MMPose conventions) -> the model
(batched; with the mirrored crops in the same batch when flip testing) -> the card's decode
(``ModelCard.decode``: codec and flip-back, the same code the torch model uses) -> original-image pixels.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from core.errors import InferenceError, InvalidParameterError, ModelLoadError
from core.settings import Settings
from inference.runtime import create_runtime
from inference.runtime_base import Runtime
from models.card import CARD_METADATA_KEY, ModelCard, ModelCardError, card_from_metadata, card_path_for
from models.geometry import DEFAULT_PADDING, bbox_to_center_scale, crop_batch, keypoints_crop_to_image

log = logging.getLogger(__name__)

#: A finite keypoint coordinate farther than this many crop sizes from the crop's origin breaks the output contract.
MAX_CROP_SPANS = 4.0


def onnx_metadata(path: Path) -> dict[str, str]:
    """An ONNX file's ``metadata_props`` as a dict, read by onnxruntime (the serving runtime; the graph is loaded
    on the CPU provider, no inference runs).

    Raises:
        ModelCardError: the file cannot be read as ONNX (the message names it and onnxruntime's reason).
    """
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail / InvalidProtobuf / NoSuchFile types
        raise ModelCardError(f"cannot read {path} as ONNX to find its embedded card: {exc}") from exc
    return dict(session.get_modelmeta().custom_metadata_map)


def load_card(card_or_model_path: str | Path) -> ModelCard:
    """The model card of a pose model: the card JSON itself, ``<stem>.json`` beside the model file, or else, for
    an ``.onnx`` file, the card ``pose-export`` embedded in its metadata (``models.card.CARD_METADATA_KEY``).

    Raises:
        ModelCardError: no card (the message names the JSON looked for and whether the ONNX had one embedded), or
            an invalid one.
    """
    path = Path(card_or_model_path)
    json_path = card_path_for(path)
    if json_path.is_file() or path.suffix.lower() != ".onnx" or not path.is_file():
        return ModelCard.load(json_path)
    text = onnx_metadata(path).get(CARD_METADATA_KEY)
    if text is None:
        raise ModelCardError(f"model card not found: {json_path}, and {path.name} has no card in its metadata")
    return card_from_metadata(text, path)


class PoseEstimator:
    """A top-down pose model behind a runtime, configured by its card.

    Args:
        card: the model card (input spec, output spec, keypoint schema).
        runtime: an opened runtime for ``card.model_path()`` (``inference.runtime_base.Runtime``).
        padding: box padding before the square crop (MMPose 1.25).
        max_batch_size: most crops per runtime call when the model's batch axis is dynamic; clamped to the
            runtime's ``max_batch_size`` (a TensorRT engine's profile max), so no batch exceeds what the engine takes.
        flip_test: also run the horizontally mirrored crops and merge them with MMPose's flip-back
            (``ModelCard.decode``), unless the card says the graph already does it.

    Raises:
        ModelLoadError: the card does not fit the model (input / output name, size or layout), or a
            flip test was asked for on a card without flip pairs.
    """

    def __init__(
        self,
        card: ModelCard,
        runtime: Runtime,
        padding: float = DEFAULT_PADDING,
        max_batch_size: int = 32,
        flip_test: bool = False,
    ) -> None:
        self.card = card
        self.runtime = runtime
        self.padding = float(padding)
        self.flip_test = bool(flip_test) and not card.flip_test_in_graph
        self.name = card.name
        if self.flip_test and card.flip_index is None:
            raise ModelLoadError(f"card {card.name!r} defines no flip pairs (keypoints.flip_pairs): no flip test")
        if card.input.name not in runtime.input_names:
            raise ModelLoadError(
                f"card {card.name!r}: input {card.input.name!r} not in model inputs {runtime.input_names}"
            )
        for out_name in card.output.tensor_names:
            if out_name not in runtime.output_names:
                raise ModelLoadError(
                    f"card {card.name!r}: output {out_name!r} not in model outputs {runtime.output_names}"
                )
        #: Positions of the card's outputs (``OutputSpec.tensor_names``: one, or simcc's x and y) among the runtime's.
        self._out_indices = [runtime.output_names.index(n) for n in card.output.tensor_names]
        shape = runtime.input_shapes[runtime.input_names.index(card.input.name)]
        w, h = card.input_size
        expect = [h, w, 3] if card.input.layout == "NHWC" else [3, h, w]
        if len(shape) != 4 or any(s is not None and s != e for s, e in zip(shape[1:], expect)):
            raise ModelLoadError(
                f"card {card.name!r}: input {card.input.layout} {w}x{h} does not fit the model's input shape {shape}"
            )
        self.fixed_batch = shape[0]
        self.batch_size = int(shape[0]) if shape[0] is not None else int(max_batch_size)
        limit = runtime.max_batch_size
        if self.fixed_batch is None and limit is not None and limit < self.batch_size:
            log.warning(
                "%s: the engine's profile runs at most %d crops per batch; batches are capped there (max batch size %d)",
                card.name,
                limit,
                self.batch_size,
            )
            self.batch_size = int(limit)

    @classmethod
    def from_settings(cls, card_or_model_path: str | Path, settings: Settings) -> PoseEstimator:
        """Open a pose model from its card (or the model file with ``<stem>.json`` beside it) with the
        runtime, precision, padding, batch size and flip test of ``settings``. With ``precision`` int8 an fp32 card
        is replaced by the int8 card ``pose-export quantize`` wrote for it (``inference.runtime_ov``).

        Raises:
            ModelLoadError: the card or the model file is missing or invalid; int8 asked for and not quantised yet;
                an int8 card under another precision.
        """
        try:
            card = load_card(card_or_model_path)
        except ModelCardError as exc:
            raise ModelLoadError(str(exc)) from exc
        if settings.precision == "int8" or card.precision == "int8":
            from inference.runtime_ov import resolve_card_precision

            card = resolve_card_precision(card, settings.precision, settings.cache)
        return cls(
            card,
            create_runtime(card.model_path(), settings, batch_size=settings.max_batch_size),
            padding=settings.bbox_padding,
            max_batch_size=settings.max_batch_size,
            flip_test=settings.flip_test,
        )

    @property
    def input_size(self) -> tuple[int, int]:
        """(w, h) of the crops."""
        return self.card.input_size

    @property
    def num_keypoints(self) -> int:
        return len(self.card.keypoint_names)

    def _run(self, crops: np.ndarray) -> list[np.ndarray]:
        """The card's output tensors (``OutputSpec.tensor_names``) for crops [N, h, w, 3], each [N, ...], in runtime
        calls of at most ``batch_size``."""
        parts: list[list[np.ndarray]] = []
        for start in range(0, len(crops), self.batch_size):
            chunk = crops[start : start + self.batch_size]
            m = len(chunk)
            if self.fixed_batch is not None and m < self.fixed_batch:
                pad = np.zeros((self.fixed_batch - m, *chunk.shape[1:]), dtype=chunk.dtype)
                chunk = np.concatenate([chunk, pad])
            result = self.runtime.run({self.card.input.name: self.card.input.prepare(chunk)})
            outs = [np.asarray(result[i]) for i in self._out_indices]
            for out in outs:
                if out.ndim == 0 or out.shape[0] != len(chunk):
                    raise InferenceError(
                        f"{self.name}: the model returned an output of shape {list(out.shape)} for {len(chunk)} crops "
                        "(batch-size check)",
                        kind="shape",
                    )
            parts.append([out[:m] for out in outs])
        return [np.concatenate(column) for column in zip(*parts)]

    def _decode(self, outs: list[np.ndarray], flipped: list[np.ndarray] | None = None) -> np.ndarray:
        """``ModelCard.decode`` of :meth:`_run`'s tensors: the one tensor, or simcc's (x, y) pair."""
        if len(outs) == 1:
            return self.card.decode(outs[0], None if flipped is None else flipped[0])
        return self.card.decode(tuple(outs), None if flipped is None else tuple(flipped))

    def cancel(self) -> int:
        """Stop the runtime call in flight (``Runtime.cancel``; 0 when the runtime cannot). Returns how many."""
        return self.runtime.cancel()

    def check_output(self, kpts: np.ndarray, n: int) -> np.ndarray:
        """The output contract, checked on every run: ``kpts`` is [n, K, 3] with the card's K, and every finite
        coordinate lies within :data:`MAX_CROP_SPANS` crop sizes of the crop. Non-finite values pass: the pipeline
        drops those people (``PosePipeline``), the others keep their answers.

        Returns:
            ``kpts`` (float32 [n, K, 3]).

        Raises:
            InferenceError: kind ``shape`` or ``range``; the message names the model and the check.
        """
        k = self.num_keypoints
        if kpts.ndim != 3 or kpts.shape != (n, k, 3):
            raise InferenceError(
                f"{self.name}: output keypoints of shape {list(kpts.shape)}, its card says [{n}, {k}, 3] "
                "(keypoint-count check)",
                kind="shape",
            )
        xy = kpts[..., :2]
        bound = MAX_CROP_SPANS * max(self.input_size)
        finite = np.isfinite(xy)
        if np.any(np.abs(np.where(finite, xy, 0.0)) > bound):
            worst = float(np.max(np.abs(xy[finite])))
            raise InferenceError(
                f"{self.name}: keypoint coordinate {worst:.3g} crop px is beyond {MAX_CROP_SPANS:g} crop sizes "
                f"(|x|, |y| <= {bound:g}; range check)",
                kind="range",
            )
        return kpts

    def predict_crops(self, crops: np.ndarray) -> np.ndarray:
        """Keypoints for crops already cut to the model input.

        Args:
            crops: uint8 [N, h, w, 3] RGB, (w, h) = ``card.input_size``.

        Returns:
            float32 [N, K, 3]: x, y in crop pixels, score; a crop's rows may be NaN / Inf when the model gave them
            (the caller drops those people).

        Raises:
            InvalidParameterError: wrong crop shape or dtype.
            InferenceError: the runtime failed or its output breaks the contract (:meth:`check_output`: batch size,
                keypoint count and layout, coordinates within a few crop sizes).
        """
        crops = np.asarray(crops)
        w, h = self.input_size
        if crops.ndim != 4 or crops.shape[1:] != (h, w, 3) or crops.dtype != np.uint8:
            raise InvalidParameterError(f"crops must be uint8 [N, {h}, {w}, 3], got {crops.dtype} {list(crops.shape)}")
        n = len(crops)
        if n == 0:
            return np.zeros((0, self.num_keypoints, 3), np.float32)
        try:
            if self.flip_test:
                outs = self._run(np.concatenate([crops, crops[:, :, ::-1]]))
                kpts = self._decode([o[:n] for o in outs], [o[n:] for o in outs])
            else:
                kpts = self._decode(self._run(crops))
        except ValueError as exc:
            raise InferenceError(f"{self.name}: {exc} (shape check)", kind="shape") from exc
        return self.check_output(kpts, n)

    def warmup_batch_sizes(self, mode: str = "auto") -> list[int]:
        """The runtime batch sizes :meth:`warmup` runs.

        Args:
            mode: ``all`` (1..``batch_size``: every size the batcher and the flip test can produce), ``one``
                (1), or ``auto``: the runtime's ``batch_profile`` min / opt / max when it has one (TensorRT runtime
                or EP: kernels are chosen at build time), all sizes when the runtime ``tunes_per_shape``
                (onnxruntime's CUDA EP: cuDNN picks algorithms per input shape on first use), else one.

        Returns:
            Sorted batch sizes (``[fixed batch]`` for a fixed-batch model).

        Raises:
            ValueError: unknown mode.
        """
        if mode not in ("auto", "all", "one"):
            raise ValueError(f"warm-up mode {mode!r} must be auto, all or one")
        if self.fixed_batch is not None:
            return [int(self.fixed_batch)]
        every = list(range(1, self.batch_size + 1))
        if mode == "all":
            return every
        if mode == "one":
            return [1]
        profile = self.runtime.batch_profile
        if profile:
            return sorted({min(max(int(b), 1), self.batch_size) for b in profile})
        if self.runtime.tunes_per_shape:
            return every
        return [1]

    def warmup(self, mode: str = "auto") -> list[int]:
        """Run the model once per batch size of :meth:`warmup_batch_sizes` (grey crops); returns the sizes run.

        Raises:
            InferenceError: the runtime failed.
        """
        w, h = self.input_size
        sizes = self.warmup_batch_sizes(mode)
        for n in sizes:
            self._run(np.full((n, h, w, 3), 114, np.uint8))
        return sizes

    def crops_for(self, image: np.ndarray, bboxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Cut the model-input crops of ``bboxes`` (xyxy, original pixels) from an RGB image.

        Returns:
            (crops uint8 [N, h, w, 3], centers float32 [N, 2], scales float32 [N, 2]).

        Raises:
            InvalidParameterError: malformed boxes (shape, non-finite, empty).
        """
        try:
            centers, scales = bbox_to_center_scale(bboxes, self.input_size, self.padding)
        except ValueError as exc:
            raise InvalidParameterError(str(exc)) from exc
        return crop_batch(image, centers, scales, self.input_size, use_udp=self.card.use_udp), centers, scales

    def to_image(self, kpts_crop: np.ndarray, centers: np.ndarray, scales: np.ndarray) -> np.ndarray:
        """Crop-pixel keypoints [N, K, 3] -> original-image pixels [N, K, 3] (score kept)."""
        out = kpts_crop.copy()
        out[..., :2] = keypoints_crop_to_image(kpts_crop[..., :2], centers, scales, self.input_size)
        return out

    def describe(self) -> dict:
        """Card + runtime facts for ``/v1/models`` (file names only: no server paths in responses)."""
        card = self.card.to_dict()
        card["model_file"] = Path(card["model_file"]).name
        return {
            "card": card,
            "runtime": self.runtime.describe(),
            "flip_test": self.flip_test,
            "batch_size": self.batch_size,
        }
