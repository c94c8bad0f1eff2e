"""Fast stand-ins for the two models behind the real runtime interface (``inference.runtime_base.Runtime``), so the
request flow (parsing, pipeline, batcher, encoding, errors) runs in-process in milliseconds."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from inference.person_detector import PersonDetector
from inference.pipeline import PosePipeline, make_batchers
from inference.pose_estimator import PoseEstimator
from inference.runtime_base import Runtime
from models.card import card_for_config
from models.zoo import get_config

#: The fake detector's person, xyxy in letterboxed 640x640 input pixels, and its score.
DETECTED_BOX = (100.0, 150.0, 300.0, 500.0)
DETECTED_SCORE = 0.9


class Overlap:
    """Counts the fake runtimes computing at the same moment (``max_active``: the most at once)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.active = self.max_active = 0

    def __enter__(self):
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)

    def __exit__(self, *exc):
        with self.lock:
            self.active -= 1


class FakeDetectorRuntime(Runtime):
    """An NMS-ed YOLO export ([B, M, 6]: x1, y1, x2, y2, score, class) that finds one person and one car per image.

    Args:
        batch: the model's batch axis (1: fixed, as the test asset; None: dynamic, as ``pose-export detector``).
        delay: seconds each call sleeps. overlap: an :class:`Overlap` shared with other fakes.
    """

    model_path = Path("fake_detector.onnx")
    input_names, input_dtypes = ["images"], [np.dtype(np.float32)]
    output_names = ["output0"]
    active_providers = ["FakeProvider"]

    def __init__(self, batch: int | None = 1, delay: float = 0.0, overlap: Overlap | None = None):
        self.input_shapes, self.output_shapes = [[batch, 3, 640, 640]], [[batch, 2, 6]]
        self.delay, self.overlap = delay, overlap or Overlap()
        self.calls = 0
        self.batch_sizes: list[int] = []

    def run(self, feeds):
        with self.overlap:
            x = feeds["images"]
            self.calls += 1
            self.batch_sizes.append(len(x))
            assert x.shape[1:] == (3, 640, 640) and (self.input_shapes[0][0] is None or len(x) == 1)
            if self.delay:
                threading.Event().wait(self.delay)
            one = [[*DETECTED_BOX, DETECTED_SCORE, 0], [400, 400, 500, 450, 0.8, 2]]
            return [np.array([one] * len(x), np.float32)]

    def describe(self):
        return {"backend": "fake", "active_providers": self.active_providers}


class FakePoseRuntime(Runtime):
    """The integral-model contract (uint8 crops [B, 256, 256, 3] -> normalised coords [B, 17, 2]): keypoint k sits
    at x = mean red level / 255 and y = k / K of the crop, so answers depend on the image. With ``k=16, scores=True``
    it is an MPII RLE model's ([B, 16, 3]: x, y normalised, score 0.8).

    Args:
        delay: seconds each call sleeps (overload tests). fail: raise this exception on every call.
        k: keypoints. scores: add the score channel.
    """

    model_path = Path("fake_pose.onnx")
    input_names, input_shapes, input_dtypes = ["crops"], [[None, 256, 256, 3]], [np.dtype(np.uint8)]
    output_names = ["coords"]
    active_providers = ["FakeProvider"]

    def __init__(
        self,
        delay: float = 0.0,
        fail: Exception | None = None,
        overlap: Overlap | None = None,
        k: int = 17,
        scores: bool = False,
    ):
        self.delay, self.fail, self.overlap = delay, fail, overlap or Overlap()
        self.k, self.scores = k, scores
        self.output_shapes = [[None, k, 3 if scores else 2]]
        self.batch_sizes: list[int] = []
        self.lock = threading.Lock()

    def run(self, feeds):
        with self.overlap:
            return self._run(feeds)

    def _run(self, feeds):
        crops = feeds["crops"]
        with self.lock:
            self.batch_sizes.append(len(crops))
        if self.fail is not None:
            raise self.fail
        if self.delay:
            threading.Event().wait(self.delay)
        x = crops[..., 0].reshape(len(crops), -1).mean(axis=1) / 255.0
        out = np.full((len(crops), self.k, 3 if self.scores else 2), 0.8, np.float32)
        out[..., 0] = x[:, None]
        out[..., 1] = np.arange(self.k) / self.k
        return [out]

    def describe(self):
        return {"backend": "fake", "active_providers": self.active_providers}


def fake_pipeline(
    detector: bool = True,
    batching: bool = True,
    max_upload_bytes: int = 3_000_000,
    max_image_pixels: int = 20_000_000,
    detector_runtime: FakeDetectorRuntime | None = None,
    detector_batch_size: int = 1,
    config: str = "ipr_res50",
    **pose_kwargs,
) -> PosePipeline:
    """The real :class:`PosePipeline` (detector post-processing, crops, card decode, batchers) over fake runtimes; the
    pose card is that of zoo ``config`` at 256x256 (``td-reg_res50_rle_mpii`` with ``k=16, scores=True``: MPII)."""
    card = card_for_config(get_config(config).replace(input_size=(256, 256)), name="fake_pose")
    pose = PoseEstimator(card, FakePoseRuntime(**pose_kwargs))
    det_rt = detector_runtime or FakeDetectorRuntime()
    det = PersonDetector(det_rt, name="fake_det", max_batch_size=detector_batch_size) if detector else None
    batcher, det_batcher = make_batchers(pose, det, 32, 2.0) if batching else (None, None)
    return PosePipeline(det, pose, batcher, max_upload_bytes, max_image_pixels, detector_batcher=det_batcher)


class ThreadedServer:
    """``pose-serve``'s uvicorn configuration (``service.server.uvicorn_config``) serving ``app`` on a free
    127.0.0.1 port in a background thread: real sockets and the real protocol, fake models."""

    def __init__(self, app, settings):
        import uvicorn

        from service.launcher import free_port
        from service.server import uvicorn_config

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn_config(app, settings.model_copy(update={"port": self.port, "log_level": "warning"}))
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="test-uvicorn", daemon=True)

    def __enter__(self) -> ThreadedServer:
        import time

        import httpx

        self.thread.start()
        for _ in range(500):
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.01)
        raise TimeoutError("the threaded server did not become ready")

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def wait_until(condition, timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``condition()`` until it is true (tests that need another thread to have reached a point, instead of a
    fixed sleep that a loaded machine can outrun).

    Raises:
        TimeoutError: still false after ``timeout`` seconds.
    """
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError(f"{what} not reached within {timeout:g} s")
        time.sleep(0.002)
