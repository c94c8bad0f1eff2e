"""Reading a running server's Prometheus metrics in tests."""

from __future__ import annotations

import time

import httpx


def metric(url: str, name: str) -> float:
    """The sum of the samples of ``GET {url}/metrics`` whose line starts with ``name`` (a metric name, with labels
    to pick one series: ``'pose_video_frames_total{source="video"}'``)."""
    text = httpx.get(url + "/metrics").text
    return sum(float(x.split()[-1]) for x in text.splitlines() if x.startswith(name) and not x.startswith("#"))


def wait_no_streams(url: str, timeout_s: float = 20.0) -> float:
    """Poll ``pose_active_streams`` until it reads 0 or ``timeout_s`` passes; returns the last value read."""
    deadline = time.monotonic() + timeout_s
    while (n := metric(url, "pose_active_streams")) and time.monotonic() < deadline:
        time.sleep(0.1)
    return n
