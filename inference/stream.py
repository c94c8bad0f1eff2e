"""Pose on video: one :class:`PoseStream` per video or live stream, frames through the shared pipeline.

A stream is a sequence of frames of one source (a video upload, a WebSocket session, a file of ``pose-predict``). Each
frame goes through the same :class:`~inference.pipeline.PosePipeline` as a still image, so the frames of concurrent
streams meet in the detector's and the pose model's batchers (cross-stream batching) and admission control counts
their crops. On top of the pipeline a stream keeps what only a sequence has:

* **detection interval** (``det_interval`` N): the detector runs on every N-th frame; in between, each person's box
  comes from its previous keypoints (:func:`inference.tracking.bboxes_from_keypoints`), as MMDeploy's ``PoseTracker``
  (``det_interval``) and rtmlib's ``PoseTracker`` (``det_frequency``) do. The detector runs at once, on the same
  frame, when a person is lost on a propagated box (fewer than 3 confident keypoints left) and on a scene cut; a
  person seen in part (too few keypoints for a box of their own) keeps the last frame's box;
* **scene cuts** (:class:`inference.tracking.SceneCutDetector`): a cut ends every track and runs the detector;
* **tracking** (:class:`inference.tracking.PoseTracker`): stable ``track_id`` per person, by OKS (or IoU)
  association as MMPose 0.x did, with a global assignment;
* **smoothing** (:class:`inference.smoothing.PoseSmoother`): a One-Euro filter per track on keypoints and boxes,
  time from the frames' timestamps, fresh for a new track.

The answer of a frame is :class:`FrameResult`. HTTP-free and torch-free: the service's video and WebSocket routes
and ``pose-predict`` drive it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from core.settings import Settings
from inference.context import RequestContext
from inference.pipeline import PosePipeline, PoseResult
from inference.smoothing import PoseSmoother
from inference.tracking import PoseTracker, SceneCutDetector, bboxes_from_keypoints
from models.keypoints import oks_nms
from models.scoring import person_scores

#: Keypoints with at least this score count as found (boxes from keypoints; a propagated person with too few is lost).
KPT_SCORE_THR = 0.3
#: A person followed on a propagated box with fewer found keypoints than this is lost (the detector runs at once).
MIN_KEYPOINTS = 3


@dataclass(frozen=True)
class StreamOptions:
    """How a stream is processed (defaults: the settings'; a request's query options override some).

    Attributes:
        track: report a ``track_id`` per person (and keep tracks across frames).
        smooth: One-Euro smoothing of each track's keypoints and box (needs ``track``: ignored without it).
        det_interval: the detector runs every N-th frame (1: every frame).
        pose_nms_thr: duplicate poses (OKS above this with a higher-scoring person) are dropped
            (:func:`models.keypoints.oks_nms`; 1: none).
        track_method, track_min_similarity, track_max_missed: :class:`inference.tracking.PoseTracker`'s.
        smooth_min_cutoff, smooth_beta, smooth_d_cutoff: :class:`inference.smoothing.PoseSmoother`'s (Hz, per
            pixel/s, Hz).
        scene_cut_threshold: :class:`inference.tracking.SceneCutDetector`'s.
    """

    track: bool = True
    smooth: bool = True
    det_interval: int = 1
    pose_nms_thr: float = 0.5
    track_method: str = "oks"
    track_min_similarity: float = 0.3
    track_max_missed: int = 30
    smooth_min_cutoff: float = 1.0
    smooth_beta: float = 0.05
    smooth_d_cutoff: float = 1.0
    scene_cut_threshold: float = 27.0

    @classmethod
    def from_settings(cls, settings: Settings, **overrides) -> StreamOptions:
        """The settings' options, with ``overrides`` (``None`` values ignored: the setting stays).

        Raises:
            ValueError: ``det_interval`` below 1.
        """
        values = {name: getattr(settings, name) for name in cls.__dataclass_fields__ if hasattr(settings, name)}
        values.update({k: v for k, v in overrides.items() if v is not None})
        options = cls(**values)
        if options.det_interval < 1:
            raise ValueError(f"det_interval must be >= 1, got {options.det_interval}")
        return options

    @property
    def smoothing(self) -> bool:
        """Whether smoothing applies (it needs tracks)."""
        return self.track and self.smooth


@dataclass
class FrameResult:
    """One processed frame of a stream.

    Attributes:
        frame: the frame's index in its source (decode order, 0-based; for a live stream, the server's count of
            frames received).
        time_s: the frame's presentation time (seconds from the stream start).
        result: the pipeline's :class:`~inference.pipeline.PoseResult` (bboxes, keypoints: smoothed when smoothing is
            on; original-frame pixels).
        track_ids: int64 [N] per person, or None when tracking is off.
        detected: the detector ran on this frame (else the boxes came from the previous keypoints).
        scene_cut: this frame starts a new scene (tracks ended).
    """

    frame: int
    time_s: float
    result: PoseResult
    track_ids: np.ndarray | None
    detected: bool
    scene_cut: bool


@dataclass
class StreamStats:
    """Counts and summed stage times (ms) of a stream, for its summary and the metrics."""

    frames: int = 0
    detector_runs: int = 0
    scene_cuts: int = 0
    lost_redetections: int = 0
    duplicates: int = 0
    persons: int = 0
    dropped_persons: int = 0
    track_ids: set[int] = field(default_factory=set)
    timings_ms: dict[str, float] = field(default_factory=dict)

    def add_time(self, stage: str, ms: float) -> None:
        self.timings_ms[stage] = self.timings_ms.get(stage, 0.0) + float(ms)


class PoseStream:
    """The state of one video or live stream over the shared pipeline: detection interval, scene cuts, tracks,
    smoothing. Frames must be given in order, one at a time (:meth:`process` is not re-entrant); many streams may run
    at once on one pipeline (their frames share its batchers).

    Args:
        pipeline: the shared pipeline (needs a detector).
        options: :class:`StreamOptions`.
    """

    def __init__(self, pipeline: PosePipeline, options: StreamOptions | None = None):
        self.pipeline = pipeline
        self.options = options or StreamOptions()
        o = self.options
        self.tracker = PoseTracker(method=o.track_method, min_similarity=o.track_min_similarity,
                                   max_missed=o.track_max_missed)  # fmt: skip
        self.smoother = PoseSmoother(min_cutoff=o.smooth_min_cutoff, beta=o.smooth_beta, d_cutoff=o.smooth_d_cutoff)
        self.cuts = SceneCutDetector(threshold=o.scene_cut_threshold)
        self.stats = StreamStats()
        self._since_detect = self.options.det_interval  # the first frame runs the detector
        #: the last frame's raw (bboxes [N, 4], bbox_scores [N], keypoints [N, K, 3])
        self._prev: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    @property
    def active_tracks(self) -> int:
        """Tracks alive now (0 with tracking off)."""
        return len(self.tracker.tracks) if self.options.track else 0

    def process(self, image: np.ndarray, time_s: float, frame: int, ctx: RequestContext | None = None) -> FrameResult:
        """Pose of one frame, with track IDs and smoothing as the options say.

        Args:
            image: uint8 [H, W, 3] RGB frame.
            time_s: its presentation time, seconds (the smoother's clock; non-decreasing).
            frame: its index in the source.
            ctx: the stream's admitted request (deadline, cancellation, crop budget: the crops of this frame are given
                back when it is done); None: unbounded.

        Returns:
            :class:`FrameResult`.

        Raises:
            what :meth:`PosePipeline.predict` raises (InvalidParameterError without a detector, OverloadedError,
            DeadlineExceededError, ClientDisconnectedError, InferenceError).
        """
        ctx = ctx or RequestContext.unbounded()
        o, stats = self.options, self.stats
        t = time.perf_counter()
        cut = self.cuts.update(image) if (o.track or o.det_interval > 1) else False
        stats.add_time("scene_cut", (time.perf_counter() - t) * 1000.0)
        if cut:
            stats.scene_cuts += 1
            self.tracker.reset()
            self.smoother.reset()
            self._prev = None
        try:
            result, detected = self._pose(image, ctx, force_detect=cut)
        finally:
            ctx.return_budget(pixels=0)  # this frame's crops
        result = self._dedup(result)
        self._prev = (result.bboxes, result.bbox_scores, result.keypoints)
        track_ids = None
        if o.track:
            t = time.perf_counter()
            track_ids = self.tracker.update(result.bboxes, result.keypoints, result.scores).astype(np.int64)
            stats.add_time("track", (time.perf_counter() - t) * 1000.0)
            stats.track_ids.update(int(i) for i in track_ids)
            if o.smoothing and len(track_ids):
                t = time.perf_counter()
                bboxes, keypoints = self.smoother(track_ids, result.bboxes, result.keypoints, float(time_s))
                result = replace(result, bboxes=bboxes.astype(np.float32), keypoints=keypoints.astype(np.float32))
                stats.add_time("smooth", (time.perf_counter() - t) * 1000.0)
        stats.frames += 1
        stats.persons += len(result.scores)
        stats.dropped_persons += result.dropped
        for stage in ("detect", "crop", "pose"):
            if stage in result.timings_ms:
                stats.add_time(stage, result.timings_ms[stage])
        return FrameResult(int(frame), float(time_s), result, track_ids, detected, cut)

    def _dedup(self, result: PoseResult) -> PoseResult:
        """Drop duplicate poses (:func:`models.keypoints.oks_nms` at ``pose_nms_thr``): a box around part of a person
        already found gives that person's keypoints again, which would take the person's track."""
        if len(result.scores) < 2 or self.options.pose_nms_thr >= 1.0:
            return result
        b = result.bboxes
        areas = (b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0)
        keep = np.sort(oks_nms(result.keypoints, result.scores, areas, self.options.pose_nms_thr))
        if len(keep) == len(result.scores):
            return result
        self.stats.duplicates += len(result.scores) - len(keep)
        return replace(result, bboxes=b[keep], bbox_scores=result.bbox_scores[keep], centers=result.centers[keep],
                       scales=result.scales[keep], keypoints=result.keypoints[keep], scores=result.scores[keep])  # fmt: skip

    def _pose(self, image: np.ndarray, ctx: RequestContext, force_detect: bool) -> tuple[PoseResult, bool]:
        """The pipeline on one frame: on propagated boxes when the interval allows and every person can be followed,
        else (or when a person is lost on its propagated box) with the detector."""
        o = self.options
        propagate = not force_detect and o.det_interval > 1 and self._since_detect < o.det_interval
        if propagate and self._prev is not None:
            prev_boxes, bbox_scores, keypoints = self._prev
            h, w = image.shape[:2]
            # a person seen in part (too few keypoints for a box of their own) keeps the last frame's box
            boxes, valid = bboxes_from_keypoints(keypoints, KPT_SCORE_THR, (w, h))
            boxes = np.where(valid[:, None], boxes, prev_boxes).astype(np.float32)
            result = self._on_boxes(image, boxes.reshape(-1, 4), bbox_scores, ctx)
            found = (result.keypoints[..., 2] >= KPT_SCORE_THR).sum(-1)
            if result.dropped == 0 and (found >= MIN_KEYPOINTS).all():
                self._since_detect += 1
                return result, False
            self.stats.lost_redetections += 1
        elif propagate:  # nobody was found on the last detection: wait for the next one
            self._since_detect += 1
            return self._on_boxes(image, np.zeros((0, 4), np.float32), np.zeros(0, np.float32), ctx), False
        result = self.pipeline.predict(image, None, ctx)
        self.stats.detector_runs += 1
        self._since_detect = 1
        return result, True

    def _on_boxes(self, image: np.ndarray, boxes: np.ndarray, bbox_scores: np.ndarray, ctx) -> PoseResult:
        """The pose model on propagated boxes; the persons keep their detector scores (person score recomputed)."""
        result = self.pipeline.predict(image, boxes, ctx)
        if result.dropped:  # the pipeline left some out: their detector scores cannot be matched, keep 1.0
            return result
        bbox_scores = np.asarray(bbox_scores, np.float32)
        scores = person_scores(bbox_scores, result.keypoints[..., 2]).astype(np.float32)
        return replace(result, bbox_scores=bbox_scores, scores=scores, detector=self.pipeline.detector.name)

    def summary(self) -> dict:
        """The stream's figures: ``frames``, ``tracks`` (distinct track IDs), ``detector_runs``, ``scene_cuts``,
        ``lost_redetections`` (frames the detector ran at once for a lost person), ``duplicates`` (poses dropped by the
        pose NMS), ``persons``, ``dropped_persons``
        and ``timings_ms`` (summed per stage: scene_cut, detect, crop, pose, track, smooth)."""
        s = self.stats
        return {
            "frames": s.frames,
            "tracks": len(s.track_ids) if self.options.track else None,
            "detector_runs": s.detector_runs,
            "scene_cuts": s.scene_cuts,
            "lost_redetections": s.lost_redetections,
            "duplicates": s.duplicates,
            "persons": s.persons,
            "dropped_persons": s.dropped_persons,
            "timings_ms": {k: round(v, 3) for k, v in s.timings_ms.items()},
        }
