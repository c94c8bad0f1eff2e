from pathlib import Path

import numpy as np
import pytest

from core.errors import InferenceError, ModelLoadError, ProviderFallbackError
from core.settings import Settings
from inference.runtime import OrtRuntime, create_runtime, resolve_providers


def test_auto_providers_never_empty_and_cpu_last():
    chosen, explicit = resolve_providers(None, ["CPUExecutionProvider"])
    assert chosen == ["CPUExecutionProvider"] and not explicit
    chosen, _ = resolve_providers(None, ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert chosen == ["CUDAExecutionProvider", "CPUExecutionProvider"]


def test_unknown_provider_name_is_rejected():
    with pytest.raises(ModelLoadError, match="unknown execution provider"):
        resolve_providers(["CUDAProvider"])


@pytest.mark.filterwarnings("ignore:Specified provider 'DmlExecutionProvider' is not in available provider names")
def test_runtime_reports_shapes_and_active_providers(yolo_onnx):
    rt = OrtRuntime(yolo_onnx)
    assert rt.input_names == ["images"] and rt.input_shapes[0] == [1, 3, 640, 640]
    assert rt.input_dtypes[0] == np.float32
    assert rt.active_providers[-1] == "CPUExecutionProvider"
    d = rt.describe()
    assert d["active_providers"] == rt.session.get_providers()  # what the session runs on, read from onnxruntime
    assert d["model_file"] == yolo_onnx.name and d["inputs"] == {"images": [1, 3, 640, 640]}
    # requested and active differ when a provider is not there: DirectML is Windows-only, absent on every
    # machine that runs these tests (CPU or CUDA onnxruntime), so this holds on both
    dml = OrtRuntime(yolo_onnx, providers=["DmlExecutionProvider", "CPUExecutionProvider"], allow_fallback=True)
    d = dml.describe()
    assert d["requested_providers"] == ["DmlExecutionProvider", "CPUExecutionProvider"]
    assert d["active_providers"] == ["CPUExecutionProvider"] == dml.active_providers


def test_gpu_provider_silently_falling_back_is_an_error(yolo_onnx):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("CUDA is available here: no fallback to observe")
    with pytest.raises(ProviderFallbackError, match="CUDAExecutionProvider"):
        OrtRuntime(yolo_onnx, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    rt = OrtRuntime(yolo_onnx, providers=["CUDAExecutionProvider", "CPUExecutionProvider"], allow_fallback=True)
    assert rt.active_providers == ["CPUExecutionProvider"]


@pytest.mark.filterwarnings("ignore:Specified provider 'CUDAExecutionProvider' is not in available provider names")
def test_default_gpu_provider_that_does_not_start_fails_with_the_reason(yolo_onnx, monkeypatch):
    """Issue 21, defect 4: onnxruntime-gpu always lists the CUDA provider, so with no providers named the CUDA EP is
    the default choice; when it does not start (no CUDA 12 / cuDNN 9, no GPU) the session silently runs on the CPU.
    That is now a ProviderFallbackError with the loader's reason, unless POSE_ALLOW_PROVIDER_FALLBACK.

    Mocked: only ``get_available_providers`` (what onnxruntime-gpu would list; no GPU package can be installed here);
    the session is real, and onnxruntime's CPU package falls back exactly as the GPU package does without CUDA."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu is installed: its real fallback is covered by the test above")
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert resolve_providers(None) == (["CUDAExecutionProvider", "CPUExecutionProvider"], False)
    with pytest.raises(ProviderFallbackError, match="chosen by default") as err:
        OrtRuntime(yolo_onnx)
    # the reason, in the loader's words (here: the CPU package has no CUDA provider library), and what to run
    assert "libonnxruntime_providers_cuda.so" in str(err.value)
    assert "POSE_PROVIDERS=CPUExecutionProvider" in str(err.value) and "POSE_ALLOW_PROVIDER_FALLBACK=1" in str(
        err.value
    )
    with pytest.raises(ProviderFallbackError):
        create_runtime(yolo_onnx, Settings())
    rt = create_runtime(yolo_onnx, Settings(allow_provider_fallback=True))
    assert rt.active_providers == ["CPUExecutionProvider"] and not rt.on_gpu


def test_provider_load_error_names_the_missing_library(tmp_path):
    """The reason given by ProviderFallbackError: the dynamic loader's message for the provider library."""
    from inference.cuda_stack import provider_load_error

    assert provider_load_error("CPUExecutionProvider") is None
    assert "has no libonnxruntime_providers_cuda.so" in provider_load_error("CUDAExecutionProvider", tmp_path)
    (tmp_path / "libonnxruntime_providers_cuda.so").write_bytes(b"not an ELF file")
    assert "does not load" in provider_load_error("CUDAExecutionProvider", tmp_path)


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


@pytest.mark.parametrize("spinning", [False, True])
def test_create_runtime_passes_spinning(yolo_onnx, spinning):
    # off by default in the service (the spin takes the cores of decoding and cropping); on: onnxruntime's default
    rt = create_runtime(yolo_onnx, Settings(providers=["CPUExecutionProvider"], intra_op_spinning=spinning))
    entry = rt.session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning")
    assert entry == ("1" if spinning else "0")
    assert Settings().intra_op_spinning is False


def test_wrong_feed_is_an_inference_error(yolo_onnx):
    rt = OrtRuntime(yolo_onnx)
    with pytest.raises(InferenceError, match="yolov8n.onnx"):
        rt.run({"images": np.zeros((1, 3, 32, 32), np.float32)})


# ------------------------------------------------------------------------------------------------------------
# GPU provider options (issue 11, item 7)

CUDA, TRT, CPU = "CUDAExecutionProvider", "TensorrtExecutionProvider", "CPUExecutionProvider"


def test_gpu_provider_options_come_from_the_settings(tmp_path):
    from inference.runtime import provider_options

    s = Settings(cache_dir=tmp_path, device=1, gpu_mem_limit=2 << 30)
    opts = provider_options(s, [TRT, CUDA, CPU], [("crops", [None, 256, 192, 3])], batch_size=32)
    assert set(opts) == {TRT, CUDA}  # the CPU provider gets none
    assert opts[CUDA] == {
        "device_id": "1",
        "cudnn_conv_algo_search": "HEURISTIC",  # not onnxruntime's EXHAUSTIVE: no re-tuning per batch size
        "arena_extend_strategy": "kNextPowerOfTwo",
        "use_tf32": "0",  # float32 means float32, as on the CPU
        "gpu_mem_limit": str(2 << 30),
    }
    trt = opts[TRT]
    assert trt["device_id"] == "1" and trt["trt_fp16_enable"] == "True"
    assert trt["trt_engine_cache_enable"] == trt["trt_timing_cache_enable"] == "True"
    cache = trt["trt_engine_cache_path"]
    assert cache == trt["trt_timing_cache_path"] and cache.startswith(str(tmp_path / "engines" / "onnxruntime-trt"))
    assert (trt["trt_profile_min_shapes"], trt["trt_profile_opt_shapes"], trt["trt_profile_max_shapes"]) == (
        "crops:1x256x192x3",
        "crops:8x256x192x3",
        "crops:32x256x192x3",
    )
    s = Settings(cache_dir=tmp_path, trt_precision="fp32", trt_opt_batch_size=16, cudnn_conv_algo_search="EXHAUSTIVE")
    opts = provider_options(s, [TRT, CUDA], [("images", [None, 3, 640, 640])], batch_size=4)
    assert opts[TRT]["trt_fp16_enable"] == "False" and opts[TRT]["trt_profile_opt_shapes"] == "images:4x3x640x640"
    assert opts[CUDA]["cudnn_conv_algo_search"] == "EXHAUSTIVE" and "gpu_mem_limit" not in opts[CUDA]
    assert provider_options(Settings(gpu_tf32=True), [CUDA])[CUDA]["use_tf32"] == "1"
    assert provider_options(s, [CPU]) == {}
    # a fixed-shape model needs no profile; another dynamic axis cannot have one
    assert "trt_profile_min_shapes" not in provider_options(s, [TRT], [("x", [1, 3, 8, 8])])[TRT]
    with pytest.raises(ModelLoadError, match="besides batch"):
        provider_options(s, [TRT], [("x", [None, 3, None, 8])])


def test_provider_options_reach_the_session(monkeypatch, tmp_path):
    """create_runtime hands the options of the settings to onnxruntime with the providers, as (name, options)
    pairs; the TensorRT EP's profile names the model's real input, probed from the file."""
    import onnxruntime as ort

    from inference import runtime as rt_module
    from tests.graphs import tiny_pose_onnx

    real, calls = ort.InferenceSession, []

    def recording_session(path, sess_options=None, providers=None, **kw):
        """Records the providers, then opens a real CPU session (no GPU provider here): all that follows is
        onnxruntime's own."""
        calls.append(providers)
        return real(path, sess_options=sess_options, providers=[CPU])

    monkeypatch.setattr(rt_module.ort, "InferenceSession", recording_session)
    model = tiny_pose_onnx(tmp_path / "pose.onnx", w=192, h=256)
    s = Settings(cache_dir=tmp_path, providers=[TRT, CUDA, CPU], allow_provider_fallback=True, device=0)
    rt = create_runtime(model, s, batch_size=16)
    passed = calls[-1]
    assert [name for name, _ in passed] == [TRT, CUDA, CPU]
    trt, cuda, cpu = (opts for _, opts in passed)
    assert cuda["cudnn_conv_algo_search"] == "HEURISTIC" and cuda["device_id"] == "0" and cpu == {}
    assert trt["trt_profile_max_shapes"] == "crops:16x256x192x3"
    assert Path(trt["trt_engine_cache_path"]).is_dir()  # created for the EP
    assert rt.active_providers == [CPU] and rt.batch_profile is None  # fell back (allowed): no TensorRT profile
    assert rt.describe()["provider_options"] == {CPU: {}}  # what onnxruntime reports it applied


def test_provider_options_are_applied_on_a_gpu(yolo_onnx):
    """Where onnxruntime-gpu and a GPU are present, onnxruntime reports our CUDA options back."""
    import onnxruntime as ort

    if CUDA not in ort.get_available_providers():
        pytest.skip("onnxruntime has no CUDA provider here (CPU-only build)")
    rt = create_runtime(yolo_onnx, Settings(providers=[CUDA, CPU], allow_provider_fallback=True, device=0))
    if CUDA not in rt.active_providers:
        pytest.skip("the CUDA provider did not start (no GPU or CUDA libraries)")
    applied = rt.session.get_provider_options()[CUDA]
    assert applied["cudnn_conv_algo_search"] == "HEURISTIC" and applied["device_id"] == "0"
    assert applied["use_tf32"] == "0"
