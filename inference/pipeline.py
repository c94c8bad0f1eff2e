"""The served pipeline: decode -> detect -> crop -> pose (batched) -> keypoints in original pixels.

One readable path, in LitServe's hook order: :meth:`PosePipeline.from_settings` (setup),
:meth:`PosePipeline.run` (decode the bytes, then :meth:`PosePipeline.predict`: detect, crop, the
batched pose model, map back) and its per-stage timings. Encoding the answer is
``inference.encoding`` (the service's JSON and ``pose-predict``'s files). Evaluation runs this same object, so what is measured is
what is served.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from core.errors import InvalidParameterError, ModelLoadError
from core.settings import Settings
from inference.batcher import Batcher
from inference.context import RequestContext
from inference.imageio import decode_image_reduced, to_original_pixels, to_reduced_pixels
from inference.person_detector import PersonDetector, load_detector_card
from inference.pose_estimator import PoseEstimator
from inference.runtime import create_runtime
from models.detector_card import DetectorCardError
from models.geometry import validate_bboxes
from models.scoring import person_scores

log = logging.getLogger(__name__)


@dataclass
class PoseResult:
    """Pipeline output for one image.

    Attributes:
        image: the decoded uint8 [H, W, 3] RGB image (EXIF orientation applied; for rendering; 1 / ``decode_factor``
            of the original size when ``decode_min_side`` reduced a large JPEG: draw with :meth:`drawable`).
        bboxes: float32 [N, 4] xyxy, original-image pixels.
        bbox_scores: float32 [N] (1.0 for caller-given boxes).
        centers, scales: float32 [N, 2] each: the crop boxes (padded, aspect-fixed), original-image pixels;
            ``prod(scales)`` is MMPose's OKS area.
        keypoints: float32 [N, K, 3]: x, y in original-image pixels, score.
        scores: float32 [N] person scores (:func:`models.scoring.person_scores`).
        detector: name of the detector that found the boxes, or None for caller boxes.
        dropped: people found (or given) whose keypoints the pose model returned as NaN / Inf: left out of every
            array above and counted here (the answer's ``dropped_persons``).
        timings_ms: per-stage wall time: ``decode`` (for :meth:`PosePipeline.run`), ``detect`` (when the
            detector ran), ``crop``, ``pose`` and ``total`` (all stages).
        decode_factor: 1, or the factor (2, 4, 8) the JPEG was decoded smaller by (every array above is in original
            pixels all the same). original_size: (w, h) of the original image when reduced, else None.
    """

    image: np.ndarray
    bboxes: np.ndarray
    bbox_scores: np.ndarray
    centers: np.ndarray
    scales: np.ndarray
    keypoints: np.ndarray
    scores: np.ndarray
    detector: str | None
    timings_ms: dict[str, float] = field(default_factory=dict)
    dropped: int = 0
    decode_factor: int = 1
    original_size: tuple[int, int] | None = None

    @property
    def width(self) -> int:
        """Width of the original image, pixels."""
        return int(self.original_size[0] if self.original_size else self.image.shape[1])

    @property
    def height(self) -> int:
        """Height of the original image, pixels."""
        return int(self.original_size[1] if self.original_size else self.image.shape[0])

    def to_original_pixels(self, factor: int, size: tuple[int, int]) -> PoseResult:
        """This result, computed on a JPEG decoded at 1 / ``factor`` size (``decode_min_side``), with its boxes,
        crop boxes and keypoints mapped to the original image's pixels (``inference.imageio.to_original_pixels``);
        ``image`` stays the reduced decode (``decode_factor`` says so, :meth:`drawable`).

        Args:
            factor: the reduction factor (2, 4, 8). size: (w, h) of the original image, pixels.
        """
        keypoints = self.keypoints.copy()
        keypoints[..., :2] = to_original_pixels(keypoints[..., :2], factor)
        return dataclasses.replace(
            self,
            bboxes=to_original_pixels(self.bboxes.reshape(-1, 2), factor).reshape(-1, 4),
            centers=to_original_pixels(self.centers, factor),
            scales=(self.scales * np.float32(factor)).astype(np.float32),
            keypoints=keypoints,
            decode_factor=factor,
            original_size=size,
        )

    def drawable(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(image, bboxes [N, 4], keypoints [N, K, 3]) in the pixels of ``image`` (the reduced decode's when
        ``decode_factor`` > 1), for drawing."""
        if self.decode_factor == 1:
            return self.image, self.bboxes, self.keypoints
        keypoints = self.keypoints.copy()
        keypoints[..., :2] = to_reduced_pixels(keypoints[..., :2], self.decode_factor)
        bboxes = to_reduced_pixels(self.bboxes.reshape(-1, 2), self.decode_factor).reshape(-1, 4)
        return self.image, bboxes, keypoints


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000.0


class PosePipeline:
    """Detector + pose estimator (+ optional cross-request batchers).

    Args:
        detector: the person detector, or None (then every request must bring its boxes).
        pose: the pose estimator.
        batcher: a :class:`Batcher` around ``pose.predict_crops``; None runs crops directly.
        max_upload_bytes, max_image_pixels: decode limits of :meth:`run` (None: no limit).
        warmup_batch_sizes: the pose model's warm-up batch sizes (``PoseEstimator.warmup_batch_sizes`` mode).
        detector_batcher: a :class:`Batcher` around ``detector.infer`` (letterboxed images of concurrent requests
            in one call, up to ``detector.batch_size``); None runs each image directly.
    """

    def __init__(
        self,
        detector: PersonDetector | None,
        pose: PoseEstimator,
        batcher: Batcher | None = None,
        max_upload_bytes: int | None = None,
        max_image_pixels: int | None = None,
        warmup_batch_sizes: str = "auto",
        detector_batcher: Batcher | None = None,
        decode_min_side: int = 0,
    ):
        self.detector = detector
        self.detector_batcher = detector_batcher
        self.pose = pose
        self.batcher = batcher
        self.max_upload_bytes = max_upload_bytes
        self.max_image_pixels = max_image_pixels
        self.warmup_batch_sizes = warmup_batch_sizes
        self.decode_min_side = decode_min_side
        #: called with the number of people dropped for non-finite keypoints (metrics), when any were
        self.on_dropped: Callable[[int], None] | None = None

    @classmethod
    def from_settings(cls, settings: Settings, batching: bool = True) -> PosePipeline:
        """Open both models as the settings say (same runtime, precision, providers and threads for each) and wrap
        them in a pipeline with cross-request batchers (``batching``; off for single-caller use such as evaluation):
        the pose crops' and the detector's images', sharing one gate so the two models never compute at once.
        Sets OpenCV's thread count for the process (``settings.opencv_threads``, unless 0: OpenCV's default).

        Raises:
            ModelLoadError: the pose model path is unset or a model cannot be opened.
        """
        if settings.pose_model is None:
            raise ModelLoadError("no pose model configured (POSE_POSE_MODEL or --pose)")
        if settings.opencv_threads:
            # process-wide; requests (and the server's threads) already run in parallel, so a warp of one 256x192 crop
            # split over all cores costs hand-offs: 3.8 instead of 3.0 ms of CPU for 32 warps on 2 cores
            # (bench/RESULTS.md, third pass)
            cv2.setNumThreads(settings.opencv_threads)
        pose = PoseEstimator.from_settings(settings.pose_model, settings)
        detector = None
        if settings.detector_model is not None:
            try:
                det_path, det_card = load_detector_card(settings.detector_model)
            except DetectorCardError as exc:
                raise ModelLoadError(str(exc)) from exc
            detector = PersonDetector(
                create_runtime(det_path, settings, batch_size=settings.det_max_batch_size),
                score_thr=settings.det_score_thr,
                iou_thr=settings.det_iou_thr,
                max_detections=settings.det_max_detections,
                name=det_card.name if det_card is not None else det_path.stem,
                max_batch_size=settings.det_max_batch_size,
                card=det_card,
            )
        batcher, detector_batcher = make_batchers(
            pose, detector, settings.max_batch_size, settings.max_batch_wait_ms, settings.inference_timeout_s
        )
        if not batching:
            batcher = detector_batcher = None
        return cls(
            detector,
            pose,
            batcher,
            settings.max_upload_bytes,
            settings.max_image_pixels,
            settings.warmup_batch_sizes,
            detector_batcher,
            settings.decode_min_side,
        )

    def run(self, data: bytes, bboxes: np.ndarray | None = None, ctx: RequestContext | None = None) -> PoseResult:
        """Decode image bytes and :meth:`predict`: the caller's crops and the decoded pixels are reserved
        with ``ctx`` before the pixels are decoded (limits checked on the header).

        Raises:
            ImageDecodeError, PayloadTooLargeError, UnsupportedMediaTypeError: see ``decode_image``.
            OverloadedError, DeadlineExceededError, ClientDisconnectedError: see ``RequestContext``.
            InvalidParameterError, InferenceError: see :meth:`predict`.
        """
        ctx = ctx or RequestContext.unbounded()
        t0 = time.perf_counter()
        ctx.check()
        if bboxes is not None:
            bboxes = self._caller_bboxes(bboxes)
            ctx.reserve_crops(len(bboxes) * self.crops_per_box)
        image, factor, size = decode_image_reduced(
            data, self.max_upload_bytes, self.max_image_pixels, lambda w, h: ctx.reserve_pixels(w * h),
            self.decode_min_side,
        )  # fmt: skip
        if factor == 1:
            return self._predict(image, bboxes, ctx, {"decode": _ms(t0)}, t0, crops_reserved=bboxes is not None)
        if bboxes is not None:
            bboxes = to_reduced_pixels(bboxes.reshape(-1, 2), factor).reshape(-1, 4)
        result = self._predict(image, bboxes, ctx, {"decode": _ms(t0)}, t0, crops_reserved=bboxes is not None)
        return result.to_original_pixels(factor, size)

    def predict(
        self, image: np.ndarray, bboxes: np.ndarray | None = None, ctx: RequestContext | None = None
    ) -> PoseResult:
        """Run on one decoded image.

        Args:
            image: uint8 [H, W, 3] RGB.
            bboxes: optional caller boxes [N, 4] xyxy in original pixels (validated by
                ``models.geometry.validate_bboxes``); skips the detector.
            ctx: the admitted request (deadline, cancellation, crop budget); None: unbounded.

        Returns:
            :class:`PoseResult`.

        Raises:
            InvalidParameterError: malformed caller boxes, or no detector and no boxes.
            OverloadedError, DeadlineExceededError, ClientDisconnectedError: see ``RequestContext``.
            InferenceError: a model failed or broke its output contract (``PoseEstimator.check_output``; a person
                whose keypoints are NaN / Inf is dropped instead, see :attr:`PoseResult.dropped`).
        """
        return self._predict(image, bboxes, ctx or RequestContext.unbounded(), {}, time.perf_counter())

    @property
    def crops_per_box(self) -> int:
        """Pose-model crops one box costs (2 with the service-side flip test)."""
        return 2 if self.pose.flip_test else 1

    @staticmethod
    def _caller_bboxes(bboxes) -> np.ndarray:
        try:
            return validate_bboxes(bboxes)
        except ValueError as exc:
            raise InvalidParameterError(str(exc)) from exc

    def _predict(
        self,
        image: np.ndarray,
        bboxes,
        ctx: RequestContext,
        timings: dict[str, float],
        t0: float,
        crops_reserved: bool = False,
    ) -> PoseResult:
        detector_name = None
        ctx.check()
        if bboxes is None:
            if self.detector is None:
                raise InvalidParameterError("no detector is configured: send boxes with the request")
            t = time.perf_counter()
            if self.detector_batcher is not None:
                x, lb = self.detector.preprocess(image)
                raw = self.detector_batcher.predict(x, ctx)
                bboxes, bbox_scores = self.detector.postprocess(raw[0], lb, image.shape[:2])
            else:
                bboxes, bbox_scores = self.detector.detect(image)
            timings["detect"] = _ms(t)
            detector_name = self.detector.name
            ctx.check()
        else:
            bboxes = self._caller_bboxes(bboxes)
            bbox_scores = np.ones(len(bboxes), np.float32)
        if not crops_reserved:
            ctx.reserve_crops(len(bboxes) * self.crops_per_box)
        t = time.perf_counter()
        crops, centers, scales = self.pose.crops_for(image, bboxes)
        timings["crop"] = _ms(t)
        t = time.perf_counter()
        if len(crops) == 0:
            kc = np.zeros((0, self.pose.num_keypoints, 3), np.float32)
        elif self.batcher is not None:
            kc = self.batcher.predict(crops, ctx)
        else:
            ctx.check()
            kc = self.pose.predict_crops(crops)
        keypoints = self.pose.to_image(kc, centers, scales)
        keep = np.isfinite(keypoints).all(axis=(1, 2))
        dropped = int(len(keep) - keep.sum())
        if dropped:  # the model's fault for these people only: the others keep their answers
            log.warning("%s gave non-finite keypoints for %d of %d people; dropped", self.pose.name, dropped, len(keep))
            bboxes, bbox_scores = np.asarray(bboxes)[keep], np.asarray(bbox_scores)[keep]
            centers, scales, keypoints = centers[keep], scales[keep], keypoints[keep]
            if self.on_dropped is not None:
                self.on_dropped(dropped)
        timings["pose"] = _ms(t)
        timings["total"] = _ms(t0)
        return PoseResult(
            image=image,
            bboxes=np.asarray(bboxes, np.float32),
            bbox_scores=np.asarray(bbox_scores, np.float32),
            centers=centers,
            scales=scales,
            keypoints=keypoints,
            scores=person_scores(bbox_scores, keypoints[..., 2]).astype(np.float32),
            detector=detector_name,
            timings_ms=timings,
            dropped=dropped,
        )

    def warmup(self) -> list[int]:
        """Warm both models up: the detector on a grey 640x480 image at batch 1 and at its batch size, the pose
        model at every batch size of ``PoseEstimator.warmup_batch_sizes`` (so no request pays for a first shape),
        then the whole path once on one box. Returns the pose batch sizes run."""
        dummy = np.full((480, 640, 3), 114, np.uint8)
        if self.detector is not None:
            x, _ = self.detector.preprocess(dummy)
            for n in sorted({1, self.detector.batch_size}):
                self.detector.infer(np.repeat(x, n, axis=0))
        sizes = self.pose.warmup(self.warmup_batch_sizes)
        self.predict(dummy, np.array([[100, 100, 300, 400]], np.float32))
        return sizes

    def describe(self) -> dict:
        """Facts for ``GET /v1/models``: detector settings and runtime, pose card and runtime, batching."""
        det = self.detector
        return {
            "detector": None
            if det is None
            else {
                "name": det.name,
                "input_size": det.input_size,
                "contract": det.card.contract,
                "score_threshold": det.score_thr,
                "nms_iou": det.iou_thr,
                "max_detections": det.max_detections,
                "precision": det.runtime.precision,
                "batch_size": det.batch_size,
                "runtime": det.runtime.describe(),
            },
            "pose": {"name": self.pose.name, "precision": self.pose.runtime.precision, **self.pose.describe()},
            "batching": None
            if self.batcher is None
            else {
                "max_batch_size": self.batcher.max_batch_size,
                "max_wait_ms": self.batcher.max_wait_s * 1000.0,
                "detector_max_batch_size": None
                if self.detector_batcher is None
                else self.detector_batcher.max_batch_size,
            },
        }

    def close(self) -> None:
        """Stop the batchers' worker threads."""
        for b in (self.batcher, self.detector_batcher):
            if b is not None:
                b.close()


def make_batchers(
    pose: PoseEstimator,
    detector: PersonDetector | None,
    max_batch_size: int,
    max_wait_ms: float,
    run_timeout_s: float = 0.0,
) -> tuple[Batcher, Batcher | None]:
    """The pose model's and the detector's cross-request batchers, sharing one gate (one model computes at a time)
    when both compute on the CPU: there each uses every available core (``inference.runtime.model_threads``), and two at
    once would oversubscribe them. When either runtime is ``on_gpu`` (onnxruntime's CUDA / TensorRT EP, the TensorRT
    runtime, an OpenVINO GPU) the two models' calls may overlap.

    Args:
        pose: its batches hold up to ``pose.batch_size`` crops (a dynamic-batch model: ``max_batch_size`` clamped to an
            engine's profile; a fixed-batch model: ``max_batch_size``, run in chunks of its batch).
        detector: its batches hold up to ``detector.batch_size`` images; None: no detector batcher.
        max_batch_size: see ``pose``.
        max_wait_ms: how long a batch waits for others to join (both batchers).
        run_timeout_s: a model call running longer is cancelled (both batchers; 0: never), see ``Batcher``.

    Returns:
        (pose batcher, detector batcher or None).
    """
    gpu = any(m.runtime.on_gpu for m in (pose, detector) if m is not None)
    gate = None if gpu else threading.Lock()
    batch = pose.batch_size if pose.fixed_batch is None else max_batch_size
    batcher = Batcher(pose.predict_crops, batch, max_wait_ms, gate=gate, model=pose.name, cancel_fn=pose.cancel,
                      run_timeout_s=run_timeout_s)  # fmt: skip
    detector_batcher = None
    if detector is not None:
        detector_batcher = Batcher(detector.infer, detector.batch_size, max_wait_ms, gate=gate, name="detector-batcher",
                                   model=detector.name, cancel_fn=detector.cancel, run_timeout_s=run_timeout_s)  # fmt: skip
    return batcher, detector_batcher
