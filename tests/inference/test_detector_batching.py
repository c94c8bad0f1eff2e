"""The detector batched across concurrent requests (inference/pipeline.py, inference/batcher.py): images of several
requests in one call when the model's batch axis is dynamic, one by one for a fixed-batch model, the two models never
computing at once, and deadlines still dropping queued work at the detector stage."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
from PIL import Image

from core.errors import DeadlineExceededError
from service.admission import Admission
from tests.fakes import FakeDetectorRuntime, FakePoseRuntime, Overlap, fake_pipeline, wait_until


def _jpeg(shade: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (640, 480), (shade, 30, 200)).save(buf, format="JPEG")
    return buf.getvalue()


def _concurrently(pipe, payloads: list[bytes]):
    results, errors = [None] * len(payloads), []

    def call(i):
        try:
            results[i] = pipe.run(payloads[i])
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(payloads))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not errors, errors
    return results


def test_a_dynamic_batch_detector_runs_the_images_of_concurrent_requests_together():
    det = FakeDetectorRuntime(batch=None, delay=0.2)  # the others arrive while the first call runs
    pipe = fake_pipeline(detector_runtime=det, detector_batch_size=4)
    try:
        assert pipe.detector.batch_size == 4 and pipe.detector_batcher.max_batch_size == 4
        payloads = [_jpeg(40 * i) for i in range(6)]
        batched = _concurrently(pipe, payloads)
        assert max(det.batch_sizes) > 1 and max(det.batch_sizes) <= 4 and sum(det.batch_sizes) == 6
        alone = fake_pipeline(batching=False)
        for data, got in zip(payloads, batched):  # batching changes nothing in the answers
            want = alone.run(data)
            np.testing.assert_array_equal(got.bboxes, want.bboxes)
            np.testing.assert_array_equal(got.keypoints, want.keypoints)
    finally:
        pipe.close()


def test_a_fixed_batch_detector_is_fed_one_image_at_a_time():
    det = FakeDetectorRuntime(batch=1, delay=0.02)
    pipe = fake_pipeline(detector_runtime=det, detector_batch_size=8)
    try:
        assert pipe.detector.batch_size == 1
        _concurrently(pipe, [_jpeg(10 * i) for i in range(4)])
        assert det.batch_sizes == [1, 1, 1, 1]
    finally:
        pipe.close()


def test_the_detector_and_the_pose_model_never_compute_at_once():
    overlap = Overlap()
    det = FakeDetectorRuntime(batch=None, delay=0.02, overlap=overlap)
    pipe = fake_pipeline(detector_runtime=det, detector_batch_size=2, delay=0.02, overlap=overlap)
    try:
        _concurrently(pipe, [_jpeg(20 * i) for i in range(6)])
        # two images per detector call: at least 3 of them, and every crop ran, however a loaded machine merged the
        # pose batches
        assert det.calls >= 3 and sum(pipe.pose.runtime.batch_sizes) == 6
        assert overlap.max_active == 1
    finally:
        pipe.close()


def test_a_request_past_its_deadline_at_the_detector_stage_is_dropped_before_it_runs():
    det = FakeDetectorRuntime(batch=None, delay=0.3)
    pipe = fake_pipeline(detector_runtime=det, detector_batch_size=1)
    admission = Admission(8, 10**9, 1000)
    try:
        busy = threading.Thread(target=pipe.run, args=(_jpeg(1),))
        busy.start()
        wait_until(lambda: det.calls == 1)  # the detector is now busy with the first image for 0.3 s
        ctx = admission.admit(0.1)  # this request's deadline passes while its image waits
        with pytest.raises(DeadlineExceededError):
            pipe.run(_jpeg(2), ctx=ctx)
        busy.join(5)
        ctx.release()
        assert det.calls == 1 and pipe.detector_batcher.dropped_crops == 1
        assert admission.requests == 0 and admission.pixels == 0  # the budget came back
        assert isinstance(pipe.pose.runtime, FakePoseRuntime) and len(pipe.pose.runtime.batch_sizes) == 1
    finally:
        pipe.close()


def test_on_a_gpu_the_two_models_may_overlap():
    from inference.pipeline import make_batchers

    pipe = fake_pipeline(batching=False)
    assert not pipe.pose.runtime.on_gpu and not pipe.detector.runtime.on_gpu
    cpu_pose, cpu_det = make_batchers(pipe.pose, pipe.detector, 8, 1.0)
    assert cpu_pose.gate is not None and cpu_pose.gate is cpu_det.gate
    pipe.pose.runtime.on_gpu = True
    gpu_pose, gpu_det = make_batchers(pipe.pose, pipe.detector, 8, 1.0)
    assert gpu_pose.gate is None and gpu_det.gate is None
    for b in (cpu_pose, cpu_det, gpu_pose, gpu_det):
        b.close()
