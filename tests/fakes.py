"""Fast stand-ins for the two models behind the real runtime interface (``service/runtime.py``), so the
request flow (parsing, pipeline, batcher, encoding, errors) runs in-process in milliseconds."""

from __future__ import annotations

import threading

import numpy as np

from models.card import card_for_config
from models.zoo import get_config
from service.batcher import CropBatcher
from service.detector import PersonDetector
from service.pipeline import PosePipeline
from service.pose import PoseEstimator

#: The fake detector's person, xyxy in letterboxed 640x640 input pixels, and its score.
DETECTED_BOX = (100.0, 150.0, 300.0, 500.0)
DETECTED_SCORE = 0.9


class FakeDetectorRuntime:
    """An NMS-ed YOLO export ([1, M, 6]: x1, y1, x2, y2, score, class) that finds one person and one car."""

    input_names, input_shapes, input_dtypes = ["images"], [[1, 3, 640, 640]], [np.dtype(np.float32)]
    output_names, output_shapes = ["output0"], [[1, 2, 6]]
    active_providers = ["FakeProvider"]

    def __init__(self):
        self.calls = 0

    def run(self, feeds):
        self.calls += 1
        assert feeds["images"].shape == (1, 3, 640, 640)
        return [np.array([[[*DETECTED_BOX, DETECTED_SCORE, 0], [400, 400, 500, 450, 0.8, 2]]], np.float32)]

    def describe(self):
        return {"backend": "fake", "active_providers": self.active_providers}


class FakePoseRuntime:
    """The integral-model contract (uint8 crops [B, 256, 256, 3] -> normalised coords [B, 17, 2]): keypoint k sits
    at x = mean red level / 255 and y = k / K of the crop, so answers depend on the image. With ``k=16, scores=True``
    it is an MPII RLE model's ([B, 16, 3]: x, y normalised, score 0.8).

    Args:
        delay: seconds each call sleeps (overload tests). fail: raise this exception on every call.
        k: keypoints. scores: add the score channel.
    """

    input_names, input_shapes, input_dtypes = ["crops"], [[None, 256, 256, 3]], [np.dtype(np.uint8)]
    output_names = ["coords"]
    active_providers = ["FakeProvider"]

    def __init__(self, delay: float = 0.0, fail: Exception | None = None, k: int = 17, scores: bool = False):
        self.delay, self.fail = delay, fail
        self.k, self.scores = k, scores
        self.output_shapes = [[None, k, 3 if scores else 2]]
        self.batch_sizes: list[int] = []
        self.lock = threading.Lock()

    def run(self, feeds):
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
    config: str = "ipr_res50",
    **pose_kwargs,
) -> PosePipeline:
    """The real :class:`PosePipeline` (detector post-processing, crops, card decode, batcher) over fake runtimes; the
    pose card is that of zoo ``config`` at 256x256 (``td-reg_res50_rle_mpii`` with ``k=16, scores=True``: MPII)."""
    card = card_for_config(get_config(config).replace(input_size=(256, 256)), name="fake_pose")
    pose = PoseEstimator(card, FakePoseRuntime(**pose_kwargs))
    det = PersonDetector(FakeDetectorRuntime(), name="fake_det") if detector else None
    batcher = CropBatcher(pose.predict_crops, 32, 2.0) if batching else None
    return PosePipeline(det, pose, batcher, max_upload_bytes, max_image_pixels)


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
