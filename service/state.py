"""What the app holds across requests: settings, the pipeline once loaded, readiness, admission control,
API keys and the operators' metrics.

Models load in a background thread at start-up (:meth:`ServiceState.load`); ``/readyz`` answers 503 until
they are loaded and warmed up. Request handlers reach the state through the typed dependencies of
``service/deps.py``.
"""

from __future__ import annotations

import logging
import time

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

from core.errors import InferenceError
from core.settings import Settings
from inference.pipeline import PosePipeline
from service.admission import Admission

log = logging.getLogger("service")


class ServiceState:
    """Settings, the pipeline (None until loaded), the load error, admission control, API keys and metrics.

    Args:
        settings: the service settings.
        pipeline: an already-built pipeline (tests, evaluation); else :meth:`load` builds it from ``settings``.

    Raises:
        ValueError: the API key file cannot be read.
    """

    def __init__(self, settings: Settings, pipeline: PosePipeline | None = None):
        self.settings = settings
        self.pipeline = pipeline
        self.ready = False
        self.error: str | None = None
        self.api_keys = settings.api_key_set()
        self.admission = Admission(
            settings.max_inflight_requests,
            settings.max_inflight_pixels,
            settings.max_inflight_crops,
            settings.retry_after_s,
            settings.max_streams,
        )
        r = self.registry = CollectorRegistry()
        # prometheus_client's default collectors, on this app's registry: process_* (CPU, memory, open files),
        # python_info, python_gc_*
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        #: OpenTelemetry on (``service.observability.setup_tracing``): the routes write stage spans
        self.tracing = False
        self.requests = Counter("pose_requests_total", "POST /pose answers by status", ["status"], registry=r)
        deadline = settings.request_timeout_s
        buckets = sorted({0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, deadline / 2, deadline, 2 * deadline})
        self.latency = Histogram("pose_request_seconds", "POST /pose latency", buckets=buckets, registry=r)
        self.persons = Counter("pose_persons_total", "people returned", registry=r)
        self.rejections = Counter(
            "pose_rejections_total", "requests refused before any work, by reason", ["reason"], registry=r
        )
        self.deadline_expiries = Counter("pose_deadline_expired_total", "requests past their deadline", registry=r)
        self.disconnects = Counter("pose_client_disconnects_total", "clients gone before their answer", registry=r)
        self.batch_sizes = Histogram(
            "pose_batch_crops", "crops per pose-model batch", buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=r
        )
        self.detector_batch_sizes = Histogram(
            "pose_detector_batch_images", "images per detector batch", buckets=(1, 2, 4, 8, 16, 32), registry=r
        )
        self.inference_failures = Counter(
            "pose_inference_failures_total",
            "failed model calls (retries included) and people dropped for NaN / Inf keypoints, by model and kind "
            "(runtime, shape, range, non_finite, timeout)",
            ["model", "kind"],
            registry=r,
        )
        self.dropped_persons = Counter(
            "pose_dropped_persons_total", "people left out of answers for NaN / Inf keypoints", ["model"], registry=r
        )
        self.worker_restarts = Counter(
            "pose_batcher_restarts_total",
            "batcher loops that caught a fault outside the model call and went on",
            ["batcher"],
            registry=r,
        )
        self._restarts_seen: dict[str, int] = {}
        Gauge("pose_batcher_workers_stopped", "batcher worker threads that stopped (/healthz fails)",
              registry=r).set_function(lambda: len(self.stopped_workers()))  # fmt: skip
        Gauge("pose_model_consecutive_timeouts", "pose-model calls in a row that ran past the inference timeout",
              registry=r).set_function(lambda: self._batcher_attr("batcher", "consecutive_timeouts"))  # fmt: skip
        #: called once when a model-load failure should end the process (``exit_on_load_failure``; set by the server)
        self.on_fatal = None
        self.fatal = False
        a = self.admission
        self._video_metrics(r)
        Gauge("pose_inflight_requests", "admitted requests", registry=r).set_function(lambda: a.requests)
        Gauge("pose_inflight_pixels", "decoded pixels of admitted requests", registry=r).set_function(lambda: a.pixels)
        Gauge("pose_inflight_crops", "pose crops of admitted requests", registry=r).set_function(lambda: a.crops)
        Gauge("pose_queued_crops", "crops waiting for the pose model", registry=r).set_function(
            lambda: self._queued("batcher")
        )
        Gauge("pose_queued_images", "images waiting for the detector", registry=r).set_function(
            lambda: self._queued("detector_batcher")
        )

    def _video_metrics(self, r: CollectorRegistry) -> None:
        """The video and live-stream metrics (``service/video.py``, ``service/stream.py``) and the set of streams
        being served."""
        a = self.admission
        #: the PoseStream of every video / WebSocket stream being served (active tracks)
        self.live_streams: set = set()
        self.video_frames = Counter(
            "pose_video_frames_total",
            "video and stream frames processed, by source (video, stream)",
            ["source"],
            registry=r,
        )
        self.video_frames_dropped = Counter(
            "pose_video_frames_dropped_total",
            "live-stream frames dropped unprocessed because a newer one arrived first (latest-frame semantics)",
            ["source"],
            registry=r,
        )
        self.video_decode = Histogram(
            "pose_video_decode_seconds",
            "decode time of one video or stream frame",
            ["source"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=r,
        )
        Gauge("pose_active_streams", "videos and WebSocket streams being served", registry=r).set_function(
            lambda: a.streams
        )
        Gauge("pose_active_tracks", "live tracks of the streams being served", registry=r).set_function(
            lambda: sum(s.active_tracks for s in list(self.live_streams))
        )

    def _queued(self, which: str) -> int:
        batcher = getattr(self.pipeline, which, None) if self.pipeline is not None else None
        return batcher.queued_items if batcher is not None else 0

    def _batcher_attr(self, which: str, attr: str) -> int:
        batcher = getattr(self.pipeline, which, None) if self.pipeline is not None else None
        return int(getattr(batcher, attr)) if batcher is not None else 0

    def _batchers(self) -> list:
        p = self.pipeline
        return [b for b in (getattr(p, "batcher", None), getattr(p, "detector_batcher", None)) if b is not None]

    def stopped_workers(self) -> list[str]:
        """``"<batcher>: <reason>"`` for each batcher whose worker thread stopped while open (``/healthz`` fails)."""
        return [f"{b.name}: {b.stopped}" for b in self._batchers() if b.stopped is not None]

    def unready_reason(self) -> str | None:
        """Why a loaded service should not get traffic now: a stopped batcher worker, or a model whose last
        ``unready_after_timeouts`` calls all ran past the inference timeout; None when it may."""
        stopped = self.stopped_workers()
        if stopped:
            return "batcher worker stopped: " + "; ".join(stopped)
        n = self.settings.unready_after_timeouts
        for b in self._batchers():
            if b.consecutive_timeouts >= n:
                return (f"model {b.model}: its last {b.consecutive_timeouts} calls ran past the inference timeout of "
                        f"{b.run_timeout_s:g} s")  # fmt: skip
        return None

    def sync_restarts(self) -> None:
        """Bring ``pose_batcher_restarts_total`` up to the batchers' own counts (read at scrape time)."""
        for b in self._batchers():
            seen = self._restarts_seen.get(b.name, 0)
            if b.restarts > seen:
                self.worker_restarts.labels(b.name).inc(b.restarts - seen)
                self._restarts_seen[b.name] = b.restarts

    def _count_failure(self, model: str, exc: Exception) -> None:
        kind = getattr(exc, "kind", "runtime")
        self.inference_failures.labels(model, kind if kind in InferenceError.KINDS else "runtime").inc()

    def _count_dropped(self, n: int) -> None:
        model = self.pipeline.pose.name
        self.dropped_persons.labels(model).inc(n)
        self.inference_failures.labels(model, "non_finite").inc(n)

    def load(self) -> None:
        """Load (unless given) and warm up the models; sets ``ready`` or ``error``. Runs in a thread (a ``--workers``
        worker runs it before it takes connections, ``service.workers``); a no-op once ready."""
        if self.ready:
            return
        try:
            t0 = time.perf_counter()
            if self.pipeline is None:
                self.pipeline = PosePipeline.from_settings(self.settings)
            if self.pipeline.batcher is not None:
                self.pipeline.batcher.on_batch = self.batch_sizes.observe
            if self.pipeline.detector_batcher is not None:
                self.pipeline.detector_batcher.on_batch = self.detector_batch_sizes.observe
            for b in self._batchers():
                b.on_failure = lambda exc, model=b.model: self._count_failure(model, exc)
            self.pipeline.on_dropped = self._count_dropped
            if self.settings.warmup:
                self.pipeline.warmup()
            self.ready = True
            det = self.pipeline.detector
            log.info(
                "models ready in %.1f s: detector=%s (%s, %s) pose=%s (%s, %s)",
                time.perf_counter() - t0,
                det.name if det else None,
                ",".join(det.runtime.active_providers) if det else "-",
                det.runtime.precision if det else "-",
                self.pipeline.pose.name,
                ",".join(self.pipeline.pose.runtime.active_providers),
                self.pipeline.pose.runtime.precision,
            )
        except Exception as exc:  # reported by /readyz and the log; ends the process unless configured otherwise
            self.error = f"{type(exc).__name__}: {exc}"
            log.error("model loading failed: %s", self.error)
            if self.settings.exit_on_load_failure and self.on_fatal is not None:
                self.fatal = True
                self.on_fatal()

    def close(self) -> None:
        """Stop the batchers: the inference in flight is cancelled (or abandoned) and its requests get 503."""
        if self.pipeline is not None:
            self.pipeline.close()
