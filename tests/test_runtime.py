import numpy as np
import pytest

from service.errors import InferenceError, ModelLoadError, ProviderFallbackError
from service.runtime import OrtRuntime, create_runtime, resolve_providers
from service.settings import Settings


def test_auto_providers_never_empty_and_cpu_last():
    chosen, explicit = resolve_providers(None, ["CPUExecutionProvider"])
    assert chosen == ["CPUExecutionProvider"] and not explicit
    chosen, _ = resolve_providers(None, ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert chosen == ["CUDAExecutionProvider", "CPUExecutionProvider"]


def test_unknown_provider_name_is_rejected():
    with pytest.raises(ModelLoadError, match="unknown execution provider"):
        resolve_providers(["CUDAProvider"])


def test_runtime_reports_shapes_and_active_providers(yolo_onnx):
    rt = OrtRuntime(yolo_onnx)
    assert rt.input_names == ["images"] and rt.input_shapes[0] == [1, 3, 640, 640]
    assert rt.input_dtypes[0] == np.float32
    assert rt.active_providers[-1] == "CPUExecutionProvider"
    assert rt.describe()["active_providers"] == rt.active_providers


def test_gpu_provider_silently_falling_back_is_an_error(yolo_onnx):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("CUDA is available here: no fallback to observe")
    with pytest.raises(ProviderFallbackError, match="CUDAExecutionProvider"):
        OrtRuntime(yolo_onnx, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    rt = OrtRuntime(yolo_onnx, providers=["CUDAExecutionProvider", "CPUExecutionProvider"], allow_fallback=True)
    assert rt.active_providers == ["CPUExecutionProvider"]


def test_missing_and_corrupt_model_files(tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        OrtRuntime(tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage")
    with pytest.raises(ModelLoadError, match="cannot load"):
        OrtRuntime(bad)
    with pytest.raises(ModelLoadError, match="cannot load"):
        create_runtime(bad, Settings())


def test_create_runtime_passes_providers_and_threads(yolo_onnx):
    rt = create_runtime(yolo_onnx, Settings(providers=["CPUExecutionProvider"], intra_op_threads=1))
    assert rt.active_providers == ["CPUExecutionProvider"]
    assert rt.session.get_session_options().intra_op_num_threads == 1


def test_wrong_feed_is_an_inference_error(yolo_onnx):
    rt = OrtRuntime(yolo_onnx)
    with pytest.raises(InferenceError, match="yolov8n.onnx"):
        rt.run({"images": np.zeros((1, 3, 32, 32), np.float32)})
