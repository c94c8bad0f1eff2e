"""The in-process Python API: the server's engine (detector, crops, batched top-down pose model) without HTTP.

    from poseserve import PoseEstimator
    estimator = PoseEstimator.from_pretrained()        # default models (fetched and exported once), or paths
    people = estimator("person.jpg")                   # -> Poses: .keypoints [N, K, 3], .bboxes [N, 4], .plot()

Images are taken as rtmlib's ``Body()(img)`` and Ultralytics' ``YOLO(...)(img)`` take them: a path, a BGR uint8
numpy array (OpenCV's order; ``rgb=True`` for RGB), a PIL image or encoded bytes. Answers equal ``POST /v1/pose``'s
for the same image and settings (the same :class:`~inference.pipeline.PosePipeline`); the HTTP answer rounds to
0.01 px and 1e-5 in score, this one does not.

Videos and cameras: :meth:`PoseEstimator.video` iterates over a file's or URL's frames; :meth:`PoseEstimator.session`
keeps tracks and smoothing across frames the caller reads (e.g. from ``cv2.VideoCapture``), as the server's
WebSocket stream does.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import InvalidParameterError
from core.settings import Settings
from inference.encoding import person_order
from inference.imageio import decode_image
from inference.pipeline import PosePipeline, PoseResult
from inference.stream import FrameResult, PoseStream, StreamOptions
from poseserve.results import Person, Poses

__all__ = ["PoseEstimator", "StreamSession"]


def _settings(overrides: dict[str, Any]) -> Settings:
    """``Settings`` (``POSE_*`` environment variables, then ``overrides`` by field name).

    Raises:
        TypeError: an override that is not a setting (``Settings`` itself ignores unknown names).
    """
    unknown = sorted(set(overrides) - set(Settings.model_fields))
    if unknown:
        raise TypeError(f"unknown setting(s) {unknown}; the settings are the POSE_* names in the README, lower case")
    return Settings(**overrides)


def _poses(result: PoseResult, keypoint_names: tuple[str, ...], pose_name: str, track_ids=None, frame=None,
           time_s=None) -> Poses:  # fmt: skip
    """A pipeline result as :class:`Poses`, people in the HTTP answer's order (``inference.encoding.person_order``)."""
    order = person_order(result.scores)
    persons = tuple(
        Person(
            result.bboxes[i].copy(),
            float(result.bbox_scores[i]),
            result.keypoints[i].copy(),
            float(result.scores[i]),
            None if track_ids is None else int(track_ids[i]),
        )  # fmt: skip
        for i in order
    )
    return Poses(persons, result.width, result.height, keypoint_names, frame=frame, time_s=time_s,
                 models={"detector": result.detector, "pose": pose_name},
                 timings_ms={k: float(v) for k, v in result.timings_ms.items()})  # fmt: skip


class PoseEstimator:
    """Detector + top-down pose model in this process.

    Build it with :meth:`from_pretrained` (model names or paths, settings by name) or around a pipeline you made.
    Calls are thread-safe: concurrent calls share the models (one at a time through the runtime).

    Args:
        pipeline: the models (:class:`~inference.pipeline.PosePipeline`, no batchers needed).
        settings: image / video limits and stream options (``max_image_pixels``, ``video_*``, ``det_interval``,
            ``track_*``, ``smooth_*``).
    """

    def __init__(self, pipeline: PosePipeline, settings: Settings | None = None):
        self.pipeline = pipeline
        self.settings = settings or Settings()
        card = pipeline.pose.card
        self.keypoint_names: tuple[str, ...] = tuple(card.keypoint_names)
        self.skeleton = card.schema.skeleton if card.schema is not None else ()

    @classmethod
    def from_pretrained(
        cls, pose: str | Path | None = None, detector: str | Path | None = None, **settings: Any
    ) -> PoseEstimator:
        """Open the models.

        Args:
            pose: a pose model card (``.json``), ONNX (with its card beside it), OpenVINO / TensorRT file, or a
                checkpoint (``.pth``, ours or MMPose's: exported to ONNX once and cached, needs the ``export``
                extra), or a zoo name (``pose-zoo list``: ``"td-reg_res50_rle"``; exported into the cache once, as
                ``pose-serve --pose NAME``); None: the default pose model (MMPose's ``ipr_res50_debias``).
            detector: a person detector ONNX / engine; None: the default detector. Both None: the default models,
                prepared in the cache (``~/.cache/poseserve``) on first use as ``pose-serve`` does.
            **settings: any setting by its lower-case name (``runtime="openvino"``, ``flip_test=True``,
                ``det_score_thr=0.4``, ``intra_op_threads=2``, ...; the README's table), over ``POSE_*``
                environment variables.

        Raises:
            TypeError: an unknown setting name.
            pydantic.ValidationError: a setting's value is out of range.
            ModelLoadError: a model file or card is missing or cannot be opened (the message names the path, and
                for missing defaults the command that prepares them).
        """
        from inference.default_models import check_model_files, resolve_models

        overrides = dict(settings)
        if pose is not None:
            overrides["pose_model"] = Path(pose)
        if detector is not None:
            overrides["detector_model"] = Path(detector)
        resolved = resolve_models(_settings(overrides))
        check_model_files(resolved)
        pipeline = PosePipeline.from_settings(resolved, batching=False)
        return cls(pipeline, resolved)

    # ------------------------------------------------------------------ images
    def _image(self, image: Any, rgb: bool) -> np.ndarray:
        """uint8 [H, W, 3] RGB from a path, bytes, numpy (BGR unless ``rgb``) or PIL image."""
        if isinstance(image, (str, Path)):
            path = Path(image).expanduser()
            return decode_image(path.read_bytes(), None, self.settings.max_image_pixels)
        if isinstance(image, (bytes, bytearray, memoryview)):
            return decode_image(bytes(image), None, self.settings.max_image_pixels)
        if isinstance(image, np.ndarray):
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise InvalidParameterError(
                    f"an image array must be uint8 [H, W, 3] ({'RGB' if rgb else 'BGR'}), got {image.dtype} "
                    f"{list(image.shape)}; convert grey or BGRA images with cv2.cvtColor first"
                )
            if image.shape[0] * image.shape[1] > self.settings.max_image_pixels:
                raise InvalidParameterError(
                    f"image is {image.shape[1]}x{image.shape[0]} pixels, over max_image_pixels "
                    f"{self.settings.max_image_pixels}"
                )
            return np.ascontiguousarray(image if rgb else image[..., ::-1])
        try:
            from PIL import Image
        except ImportError:  # pragma: no cover - pillow comes with serve
            Image = None
        if Image is not None and isinstance(image, Image.Image):
            return np.asarray(image.convert("RGB"))
        raise InvalidParameterError(
            f"cannot read an image from {type(image).__name__}: pass a path, bytes, a uint8 [H, W, 3] numpy array "
            "or a PIL image"
        )

    def __call__(self, image: Any, bboxes: Any = None, *, rgb: bool = False) -> Poses:
        """Pose of the people in one image.

        Args:
            image: a path (``str`` / ``Path``), encoded bytes (JPEG, PNG, WebP, BMP; EXIF orientation applied),
                a uint8 [H, W, 3] numpy array in BGR order (OpenCV's; ``rgb=True`` for RGB) or a PIL image.
            bboxes: optional [N, 4] xyxy person boxes in image pixels (the detector is then skipped).
            rgb: a numpy ``image`` is RGB.

        Returns:
            :class:`~poseserve.results.Poses` (pixels of ``image``; for encoded input, of the decoded image).

        Raises:
            OSError: a path that cannot be read.
            InvalidParameterError: an array that is not uint8 [H, W, 3], malformed boxes, an unknown input type.
            ImageDecodeError, UnsupportedMediaTypeError, PayloadTooLargeError: bytes that are no supported image,
                or one over ``max_image_pixels``.
            InferenceError: a model failed.
        """
        t0 = time.perf_counter()
        rgb_image = self._image(image, rgb)
        decode_ms = (time.perf_counter() - t0) * 1000.0
        result = self.pipeline.predict(rgb_image, bboxes)
        result.timings_ms = {"decode": decode_ms, **result.timings_ms, "total": (time.perf_counter() - t0) * 1000}
        return _poses(result, self.keypoint_names, self.pipeline.pose.name)

    predict = __call__

    # ------------------------------------------------------------------ video
    def session(self, **options: Any) -> StreamSession:
        """A video / camera session: frames given in order get track ids and One-Euro smoothing.

        Args:
            **options: ``track``, ``smooth``, ``det_interval`` and the ``track_*`` / ``smooth_*`` /
                ``pose_nms_thr`` / ``scene_cut_threshold`` settings by name (defaults: the settings').

        Raises:
            InvalidParameterError: an unknown option or an out-of-range value.
        """
        return StreamSession(self, self._options(options))

    def _options(self, options: dict[str, Any]) -> StreamOptions:
        try:
            return StreamOptions.from_settings(self.settings, **options)
        except TypeError as exc:
            raise InvalidParameterError(f"unknown stream option: {exc}") from exc
        except ValueError as exc:
            raise InvalidParameterError(str(exc)) from exc

    def video(self, source: str | Path | bytes, *, stride: int = 1, max_frames: int | None = None,
              **options: Any) -> Iterator[Poses]:  # fmt: skip
        """Pose of every ``stride``-th frame of a video, in order, tracked and smoothed as ``options`` say.

        Args:
            source: a video file (path), its bytes, or an ``http(s)://`` / ``rtsp://`` URL (PyAV / FFmpeg; the
                ``video`` extra); the containers, codecs and sizes ``video_*`` settings allow.
            stride: process every ``stride``-th decoded frame.
            max_frames: stop after this many processed frames.
            **options: as :meth:`session`.

        Yields:
            :class:`~poseserve.results.Poses` per processed frame (``frame``: index in the source, ``time_s``:
            presentation time), people with ``track_id`` when tracking.

        Raises:
            VideoDecodeError, UnsupportedMediaTypeError, PayloadTooLargeError: the video (see
                ``inference.video.open_video``); raised when the iteration starts or when a frame fails.
            InvalidParameterError: a bad option, ``stride`` or ``max_frames`` below 1.
        """
        from inference.video import VideoLimits, open_video

        if stride < 1 or (max_frames is not None and max_frames < 1):
            raise InvalidParameterError(f"stride ({stride}) and max_frames ({max_frames}) must be at least 1")
        session = self.session(**options)
        limits = VideoLimits.from_settings(self.settings)
        with open_video(str(source) if isinstance(source, Path) else source, limits) as reader:
            for frame in reader.frames(stride=stride, max_frames=max_frames):
                yield session._frame(frame.image, frame.time_s, frame.index)

    def close(self) -> None:
        """Stop the pipeline's worker threads (none unless a batcher was given)."""
        self.pipeline.close()

    def __enter__(self) -> PoseEstimator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        det = self.pipeline.detector.name if self.pipeline.detector is not None else None
        return (
            f"PoseEstimator(pose={self.pipeline.pose.name!r}, detector={det!r}, keypoints={len(self.keypoint_names)})"
        )


class StreamSession:
    """Frames of one video or camera, given in order: the server's stream engine
    (:class:`~inference.stream.PoseStream`: detection interval, scene cuts, pose NMS, tracking, One-Euro smoothing).

    ``session(frame)`` takes what :class:`PoseEstimator` takes (BGR numpy by default) and returns :class:`Poses`
    with ``track_id`` per person. Frame times default to the wall clock since the first frame (the smoother's
    clock); pass ``time_s`` for recorded video.
    """

    def __init__(self, estimator: PoseEstimator, options: StreamOptions):
        self.estimator = estimator
        self.options = options
        self._stream = PoseStream(estimator.pipeline, options)
        self._count = 0
        self._t0: float | None = None
        self._last_time = float("-inf")

    def _frame(self, image_rgb: np.ndarray, time_s: float, index: int) -> Poses:
        out: FrameResult = self._stream.process(image_rgb, time_s, index)
        self._count = index + 1
        est = self.estimator
        return _poses(out.result, est.keypoint_names, est.pipeline.pose.name, out.track_ids, out.frame, out.time_s)

    def __call__(self, frame: Any, time_s: float | None = None, *, rgb: bool = False) -> Poses:
        """Pose of the next frame.

        Args:
            frame: as :meth:`PoseEstimator.__call__`'s ``image``.
            time_s: its presentation time in seconds (non-decreasing); None: seconds since the first frame.

        Raises:
            InvalidParameterError: ``time_s`` earlier than the previous frame's; the errors of
                :meth:`PoseEstimator.__call__`.
        """
        image = self.estimator._image(frame, rgb)
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        t = now - self._t0 if time_s is None else float(time_s)
        if t < self._last_time:
            raise InvalidParameterError(f"time_s {t} is earlier than the previous frame's ({self._last_time})")
        self._last_time = t
        return self._frame(image, t, self._count)

    @property
    def stats(self):
        """The stream's counters (``inference.stream.StreamStats``: frames, detector runs, scene cuts, tracks)."""
        return self._stream.stats
