"""What the app holds across requests: settings, the pipeline once loaded, readiness, metrics.

Models load in a background thread at start-up (:meth:`ServiceState.load`); ``/readyz`` answers 503
until they are loaded and warmed up. Request handlers reach the state through the typed dependencies of
``service/deps.py``.
"""

from __future__ import annotations

import logging
import time

from prometheus_client import CollectorRegistry, Counter, Histogram

from service.pipeline import PosePipeline
from service.settings import Settings

log = logging.getLogger("service")


class ServiceState:
    """Settings, the pipeline (None until loaded), the load error and the Prometheus metrics.

    Args:
        settings: the service settings.
        pipeline: an already-built pipeline (tests, evaluation); else :meth:`load` builds it from ``settings``.
    """

    def __init__(self, settings: Settings, pipeline: PosePipeline | None = None):
        self.settings = settings
        self.pipeline = pipeline
        self.ready = False
        self.error: str | None = None
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "pose_requests_total", "POST /pose requests by status", ["status"], registry=self.registry
        )
        self.latency = Histogram("pose_request_seconds", "POST /pose latency", registry=self.registry)
        self.persons = Counter("pose_persons_total", "people returned", registry=self.registry)

    def load(self) -> None:
        """Load (unless given) and warm up the models; sets ``ready`` or ``error``. Runs in a thread."""
        try:
            t0 = time.perf_counter()
            if self.pipeline is None:
                self.pipeline = PosePipeline.from_settings(self.settings)
            if self.settings.warmup:
                self.pipeline.warmup()
            self.ready = True
            log.info(
                "models ready in %.1f s: detector=%s pose=%s providers=%s",
                time.perf_counter() - t0,
                self.pipeline.detector.name if self.pipeline.detector else None,
                self.pipeline.pose.name,
                self.pipeline.pose.runtime.active_providers,
            )
        except Exception as exc:  # reported by /readyz and the log
            self.error = f"{type(exc).__name__}: {exc}"
            log.error("model loading failed: %s", self.error)

    def close(self) -> None:
        if self.pipeline is not None:
            self.pipeline.close()
