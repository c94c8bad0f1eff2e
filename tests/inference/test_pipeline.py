"""The served pipeline (inference/pipeline.py) directly: stages, timings, boxes, centers/scales, errors."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from core.errors import ImageDecodeError, InvalidParameterError, ModelLoadError, PayloadTooLargeError
from core.settings import Settings
from inference.pipeline import PosePipeline
from models.geometry import bbox_to_center_scale
from tests.fakes import DETECTED_BOX, fake_pipeline


def _jpeg(w=640, h=480) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (120, 30, 200)).save(buf, format="JPEG")
    return buf.getvalue()


def test_run_decodes_detects_crops_and_maps_back_with_one_total():
    pipe = fake_pipeline(batching=False)
    r = pipe.run(_jpeg(640, 480))
    assert (r.width, r.height) == (640, 480) and r.detector == "fake_det"
    assert list(r.timings_ms) == ["decode", "detect", "crop", "pose", "total"]
    assert r.timings_ms["total"] >= sum(v for k, v in r.timings_ms.items() if k != "total") - 0.05
    x1, y1, x2, y2 = DETECTED_BOX
    np.testing.assert_allclose(r.bboxes, [[x1, y1 - 80, x2, y2 - 80]])
    c, s = bbox_to_center_scale(r.bboxes, (256, 256))
    np.testing.assert_allclose(r.centers, c)
    np.testing.assert_allclose(r.scales, s)
    assert r.keypoints.shape == (1, 17, 3) and r.scores.tolist() == pytest.approx([0.9])
    # the fake puts keypoint k at y = k / 17 of the crop: mapped back into the image's crop box
    top = r.centers[0, 1] - r.scales[0, 1] / 2
    np.testing.assert_allclose(r.keypoints[0, :, 1], top + np.arange(17) / 17 * r.scales[0, 1], rtol=1e-5)


def test_predict_with_caller_boxes_skips_the_detector_and_batches_through_the_batcher():
    pipe = fake_pipeline()
    try:
        image = np.full((300, 400, 3), 200, np.uint8)
        r = pipe.predict(image, [[10, 20, 110, 220], [200, 50, 260, 290]])
        assert r.detector is None and "detect" not in r.timings_ms and "decode" not in r.timings_ms
        assert pipe.detector.runtime.calls == 0
        np.testing.assert_allclose(r.bbox_scores, [1, 1])
        assert r.keypoints.shape == (2, 17, 3) and pipe.batcher.batches_run == 1
        empty = pipe.predict(image, [])
        assert empty.keypoints.shape == (0, 17, 3) and empty.scores.shape == (0,)
    finally:
        pipe.close()


def test_errors_name_the_problem():
    pipe = fake_pipeline(detector=False, batching=False, max_upload_bytes=10_000, max_image_pixels=100_000)
    image = np.zeros((100, 100, 3), np.uint8)
    with pytest.raises(InvalidParameterError, match="no detector"):
        pipe.predict(image)
    with pytest.raises(InvalidParameterError, match="empty"):
        pipe.predict(image, [[5, 5, 5, 50]])
    with pytest.raises(InvalidParameterError, match="shape"):
        pipe.predict(image, [[1, 2, 3]])
    with pytest.raises(ImageDecodeError):
        pipe.run(b"not an image", np.zeros((0, 4)))
    with pytest.raises(PayloadTooLargeError, match="pixels"):
        pipe.run(_jpeg(400, 300), np.zeros((0, 4)))  # 120,000 px > 100,000


def test_from_settings_opens_both_models_with_the_same_runtime_settings(yolo_onnx, movenet_card):
    settings = Settings(
        detector_model=yolo_onnx, pose_model=movenet_card, providers=["CPUExecutionProvider"], intra_op_threads=1
    )
    pipe = PosePipeline.from_settings(settings, batching=False)
    assert pipe.batcher is None and pipe.detector.name == "yolov8n" and pipe.pose.name == "movenet_thunder"
    for rt in (pipe.detector.runtime, pipe.pose.runtime):
        assert rt.session.get_session_options().intra_op_num_threads == 1
        assert rt.active_providers == ["CPUExecutionProvider"]
    with pytest.raises(ModelLoadError, match="no pose model"):
        PosePipeline.from_settings(Settings(pose_model=None))


def test_from_settings_sets_opencv_threads(movenet_card):
    # process-wide: restored afterwards so the rest of the suite keeps OpenCV's default
    import cv2

    before = cv2.getNumThreads()
    try:
        PosePipeline.from_settings(Settings(pose_model=movenet_card, detector_model=None), batching=False)
        assert cv2.getNumThreads() == 1  # the default: requests, not warps, run in parallel
        cv2.setNumThreads(3)
        PosePipeline.from_settings(Settings(pose_model=movenet_card, detector_model=None, opencv_threads=0))
        assert cv2.getNumThreads() == 3  # 0: left as it is
    finally:
        cv2.setNumThreads(before)


def test_warmup_runs_every_batch_size_the_cuda_provider_would_tune_for():
    """Issue 11, item 7: on onnxruntime's CUDA EP every batch size 1..max gets its first run before /readyz; on a
    TensorRT profile its min / opt / max; on CPU one."""
    pipe = fake_pipeline(batching=False)
    runtime = pipe.pose.runtime
    assert pipe.warmup() == [1]  # the fake runs like a CPU runtime
    assert runtime.batch_sizes == [1, 1] and pipe.detector.runtime.calls == 1  # + the whole path on one box
    runtime.batch_sizes.clear()
    runtime.tunes_per_shape = True  # onnxruntime's CUDA EP
    assert pipe.warmup() == list(range(1, 33))
    assert runtime.batch_sizes == [*range(1, 33), 1]
    runtime.batch_profile = (1, 8, 16)  # a TensorRT runtime or EP
    assert pipe.pose.warmup_batch_sizes() == [1, 8, 16]
    assert pipe.pose.warmup_batch_sizes("all") == list(range(1, 33)) and pipe.pose.warmup_batch_sizes("one") == [1]
    with pytest.raises(ValueError, match="warm-up mode"):
        pipe.pose.warmup_batch_sizes("most")


def test_warmup_mode_comes_from_the_settings(movenet_card):
    settings = Settings(pose_model=movenet_card, providers=["CPUExecutionProvider"], warmup_batch_sizes="all")
    pipe = PosePipeline.from_settings(settings, batching=False)
    assert pipe.warmup_batch_sizes == "all"
    assert pipe.warmup() == [1]  # MoveNet's batch is fixed at 1: nothing else to warm
