"""The runtime interface (inference/runtime_base.py): the checks written once (model file, feeds), the facts every
runtime states (precision, on_gpu, max batch, describe's shared keys), and what the onnxruntime and TensorRT
runtimes set them to. OpenVINO's are in tests/inference/test_runtime_ov.py."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from core.errors import InferenceError, ModelLoadError
from core.precision import RUNTIME_PRECISIONS
from inference.runtime_base import Runtime

CUDA, TRT, CPU = "CUDAExecutionProvider", "TensorrtExecutionProvider", "CPUExecutionProvider"
SHARED_KEYS = {
    "backend",
    "model_file",
    "active_providers",
    "inputs",
    "outputs",
    "precision",
    "on_gpu",
    "max_batch_size",
}


class Tiny(Runtime):
    """The smallest runtime: one dynamic-batch uint8 input, echoes it."""

    backend = "tiny"
    input_names, input_shapes, input_dtypes = ["x"], [[None, 2, 3]], [np.dtype(np.uint8)]
    output_names, output_shapes = ["y"], [[None, 2, 3]]
    active_providers = ["Tiny"]

    def run(self, feeds):
        return [self.check_feeds(feeds)["x"].copy()]


def test_the_interface_is_abstract_and_its_defaults_are_a_cpu_runtime_without_limits(tmp_path):
    with pytest.raises(TypeError):
        Runtime(tmp_path)  # type: ignore[abstract]
    (tmp_path / "m.bin").write_bytes(b"x")
    rt = Tiny(tmp_path / "m.bin")
    assert (rt.precision, rt.on_gpu, rt.batch_profile, rt.max_batch_size, rt.tunes_per_shape) == (
        "fp32",
        False,
        None,
        None,
        False,
    )
    assert rt.cancel() == 0  # cannot stop a call: says so
    rt.close()  # nothing to free
    assert rt.describe() == {
        "backend": "tiny",
        "model_file": "m.bin",
        "active_providers": ["Tiny"],
        "inputs": {"x": [None, 2, 3]},
        "outputs": {"y": [None, 2, 3]},
        "precision": "fp32",
        "on_gpu": False,
        "max_batch_size": None,
    }
    json.dumps(rt.describe())  # JSON-able


def test_the_model_file_check(monkeypatch, tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        Tiny(tmp_path / "nope.onnx")
    with pytest.raises(ModelLoadError, match="not found"):
        Tiny(tmp_path)  # a folder
    locked = tmp_path / "locked.onnx"
    locked.write_bytes(b"x")
    assert Tiny(locked).model_path == locked
    # as a user without read permission sees it (root reads every file, so the mode alone cannot show it)
    monkeypatch.setattr(os, "access", lambda path, mode: not (path == locked and mode == os.R_OK))
    with pytest.raises(ModelLoadError, match="not readable"):
        Tiny(locked)


def test_feed_check(tmp_path):
    (tmp_path / "m.bin").write_bytes(b"x")
    rt = Tiny(tmp_path / "m.bin")
    x = np.ones((4, 2, 3), np.uint8)
    with pytest.raises(InferenceError, match="must be uint8, got int64"):  # a list becomes an array, then is checked
        rt.check_feeds({"x": x.tolist()})
    checked = rt.check_feeds({"x": x, "ignored": 1})
    assert list(checked) == ["x"] and checked["x"] is x
    with pytest.raises(InferenceError, match=r"m.bin: missing input\(s\) \['x'\]"):
        rt.run({"y": x})
    with pytest.raises(InferenceError, match="'x' must be uint8, got float32"):
        rt.run({"x": x.astype(np.float32)})
    with pytest.raises(InferenceError, match=r"shape \[4, 3, 3\], the model takes \[None, 2, 3\]"):
        rt.run({"x": np.ones((4, 3, 3), np.uint8)})
    with pytest.raises(InferenceError, match=r"shape \[2, 3\]"):
        rt.run({"x": np.ones((2, 3), np.uint8)})
    rt.batch_profile = (1, 2, 4)
    assert rt.max_batch_size == 4 and rt.run({"x": x})[0].shape == (4, 2, 3)
    with pytest.raises(InferenceError, match=r"batch of 5, outside the engine's profile \(max batch 4\)"):
        rt.run({"x": np.ones((5, 2, 3), np.uint8)})


def test_onnxruntime_states_precision_gpu_and_shape_tuning_from_its_active_providers(monkeypatch, yolo_onnx):
    """onnxruntime's TensorRT EP with fp16 computes in fp16 on the GPU; its CUDA EP tunes kernels per shape; the CPU
    provider is fp32 on the CPU. The session is real (CPU); only the providers it reports are changed."""
    import onnxruntime as ort

    from inference import runtime as rt_module

    real = ort.InferenceSession
    reported: dict = {}

    class Reporting:
        def __init__(self, path, sess_options=None, providers=None, **kw):
            self._s = real(path, sess_options=sess_options, providers=[CPU])

        def __getattr__(self, name):
            return getattr(self._s, name)

        def get_providers(self):
            return list(reported)

        def get_provider_options(self):
            return reported

    monkeypatch.setattr(rt_module.ort, "InferenceSession", Reporting)
    cases = [
        ({TRT: {"trt_fp16_enable": "True"}, CUDA: {}, CPU: {}}, ("fp16", True, True, 16)),
        ({TRT: {"trt_fp16_enable": "0"}, CPU: {}}, ("fp32", True, False, 16)),
        ({CUDA: {}, CPU: {}}, ("fp32", True, True, None)),
        ({CPU: {}}, ("fp32", False, False, None)),
    ]
    for providers, want in cases:
        reported.clear()
        reported.update(providers)
        rt = rt_module.OrtRuntime(yolo_onnx, batch_profile=(1, 8, 16))
        assert (rt.precision, rt.on_gpu, rt.tunes_per_shape, rt.max_batch_size) == want, providers
        facts = rt.describe()
        assert (facts["precision"], facts["on_gpu"], facts["max_batch_size"]) == (want[0], want[1], want[3])


def test_onnxruntime_describe_keeps_its_keys(yolo_onnx):
    from inference.runtime import OrtRuntime

    rt = OrtRuntime(yolo_onnx, [CPU])
    facts = rt.describe()
    assert set(facts) == SHARED_KEYS | {"requested_providers", "provider_options"}
    assert facts["backend"] == "onnxruntime" and facts["model_file"] == "yolov8n.onnx"
    assert facts["requested_providers"] == [CPU] and facts["provider_options"] == {CPU: {}}
    assert facts["inputs"] == {"images": [1, 3, 640, 640]} and facts["precision"] in RUNTIME_PRECISIONS


def test_tensorrt_states_the_sidecar_precision_and_the_profile(monkeypatch, tmp_path):
    from core.cache import sidecar_path
    from inference.runtime_trt import TrtRuntime
    from tests import fake_tensorrt

    fake_tensorrt.install(monkeypatch)
    engine = fake_tensorrt.write_engine(
        tmp_path / "m.engine",
        inputs=[{"name": "x", "dtype": "UINT8", "shape": [-1, 4], "profile": [[1, 4], [2, 4], [6, 4]]}],
        outputs=[{"name": "y", "dtype": "FLOAT", "shape": [-1, 17, 2]}],
    )
    rt = TrtRuntime(engine)
    assert (rt.on_gpu, rt.precision, rt.batch_profile, rt.max_batch_size) == (True, "fp32", (1, 2, 6), 6)
    facts = rt.describe()
    assert set(facts) == SHARED_KEYS | {"gpu", "device", "tensorrt_version", "tf32", "profiles", "batch_profile"}
    assert facts["precision"] is None and facts["max_batch_size"] == 6  # no sidecar: /v1/models says so, as before
    with pytest.raises(InferenceError, match="outside the engine's profile"):
        rt.run({"x": np.zeros((7, 4), np.uint8)})
    rt.close()
    sidecar_path(engine).write_text(json.dumps({"precision": "fp16", "tf32": True}))
    rt = TrtRuntime(engine)
    assert rt.precision == rt.describe()["precision"] == "fp16"
    rt.close()


def test_the_pipeline_states_what_its_runtimes_compute_in():
    from tests.fakes import fake_pipeline

    pipe = fake_pipeline(batching=False)
    pipe.pose.runtime.precision, pipe.detector.runtime.precision = "bf16", "int8"
    facts = pipe.describe()
    assert (facts["pose"]["precision"], facts["detector"]["precision"]) == ("bf16", "int8")
