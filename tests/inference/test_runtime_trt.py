"""The TensorRT runtime and engine builder against fake ``tensorrt`` / ``cuda.bindings.runtime`` modules
(tests/fake_tensorrt.py), so their logic runs where no GPU is: the device is selected in the thread that runs,
every tensor-address return is checked, types numpy lacks are a load error naming the tensor, host copies go
through page-locked buffers, fp32 engines are built without TF32, and the pose batch never exceeds the
engine's profile. The real TensorRT path is tests/export/test_tensorrt.py (skips without TensorRT)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from core.cache import CacheLayout
from core.errors import InferenceError, ModelLoadError
from tests import fake_tensorrt
from tests.graphs import tiny_pose_onnx


@pytest.fixture
def fake(monkeypatch):
    trt, _ = fake_tensorrt.install(monkeypatch)
    return trt


def _engine(tmp_path, name="m.engine", out_dtype="FLOAT", max_batch=8, in_dtype="UINT8"):
    return fake_tensorrt.write_engine(
        tmp_path / name,
        inputs=[
            {
                "name": "crops",
                "dtype": in_dtype,
                "shape": [-1, 4, 4, 3],
                "profile": [[1, 4, 4, 3], [2, 4, 4, 3], [max_batch, 4, 4, 3]],
            }
        ],
        outputs=[{"name": "coords", "dtype": out_dtype, "shape": [-1, 17, 2]}],
    )


def _run_in_thread(rt, feeds):
    result = {}

    def target():
        try:
            result["out"] = rt.run(feeds)
        except Exception as exc:  # handed to the test thread
            result["exc"] = exc

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if "exc" in result:
        raise result["exc"]
    return result["out"]


def test_run_selects_the_device_in_the_calling_thread_and_copies_through_pinned_buffers(fake, tmp_path):
    from inference.runtime_trt import TrtRuntime

    rt = TrtRuntime(_engine(tmp_path), device=1)
    assert (rt.input_names, rt.output_names) == (["crops"], ["coords"])
    assert rt.input_shapes == [[None, 4, 4, 3]] and rt.input_dtypes == [np.dtype(np.uint8)]
    assert rt.batch_profile == (1, 2, 8) and rt.max_batch_size == 8
    x = np.arange(3 * 48, dtype=np.uint8).reshape(3, 4, 4, 3)
    # a new thread starts on device 0, as CUDA threads do: run() must select device 1 itself
    (out,) = _run_in_thread(rt, {"crops": x})
    assert rt.context.executed_on_devices == [1]
    # the fake engine writes each sample's mean: the right bytes went to the right device addresses and back
    np.testing.assert_allclose(out, np.broadcast_to(x.reshape(3, -1).mean(axis=1)[:, None, None], (3, 17, 2)))
    assert fake_tensorrt.copies == [("cudaMemcpyHostToDevice", True), ("cudaMemcpyDeviceToHost", True)]
    # the result is the caller's: the next run reuses the pinned buffer without changing it
    (again,) = rt.run({"crops": np.zeros((3, 4, 4, 3), np.uint8)})
    assert again.max() == 0 and out.max() > 0
    with pytest.raises(InferenceError, match="outside the engine's profile"):
        rt.run({"crops": np.zeros((9, 4, 4, 3), np.uint8)})
    with pytest.raises(InferenceError, match="must be uint8"):
        rt.run({"crops": np.zeros((1, 4, 4, 3), np.float32)})
    d = rt.describe()
    assert d["device"] == 1 and d["batch_profile"] == [1, 2, 8] and d["gpu"] == "Fake GPU 1"
    device_ptrs = [p for p, _ in rt._device_buffers.values()]
    host_ptrs = [p for p, _ in rt._host_buffers.values()]
    assert len(device_ptrs) == len(host_ptrs) == 2  # one of each per tensor
    rt.close()
    assert not set(device_ptrs) & set(fake_tensorrt.device_memory)  # all freed
    assert not set(host_ptrs) & set(fake_tensorrt.pinned_memory)


def test_a_rejected_tensor_address_is_an_inference_error_naming_the_tensor(fake, tmp_path):
    from inference.runtime_trt import TrtRuntime

    rt = TrtRuntime(_engine(tmp_path))
    rt.context.reject_addresses.add("coords")
    with pytest.raises(InferenceError, match="'coords'"):
        rt.run({"crops": np.zeros((1, 4, 4, 3), np.uint8)})


@pytest.mark.parametrize("dtype", ["BF16", "FP8"])
def test_io_types_numpy_lacks_are_a_load_error_naming_the_tensor(fake, tmp_path, dtype):
    from inference.runtime_trt import TrtRuntime

    with pytest.raises(ModelLoadError, match=rf"'coords'.*{dtype}"):
        TrtRuntime(_engine(tmp_path, out_dtype=dtype))


def test_bad_device_and_foreign_engine_are_load_errors(fake, tmp_path):
    from inference.runtime_trt import TrtRuntime

    with pytest.raises(ModelLoadError, match="device 5"):
        TrtRuntime(_engine(tmp_path), device=5)
    foreign = tmp_path / "other.engine"
    foreign.write_bytes(b"\x00 not an engine for this TensorRT")
    with pytest.raises(ModelLoadError, match="cannot deserialize"):
        TrtRuntime(foreign)


def test_fp32_engines_are_built_without_tf32_and_the_sidecar_says_so(fake, tmp_path):
    import json

    from core.cache import sidecar_path
    from export.tensorrt import EngineCache, EngineSpec, build_engine
    from inference.runtime_trt import read_sidecar

    onnx_path = tiny_pose_onnx(tmp_path / "pose.onnx")
    fp32 = build_engine(onnx_path, tmp_path / "pose.engine", EngineSpec("fp32", (1, 2, 4)))
    assert json.loads(fp32.read_bytes())["built_with"]["flags"] == []  # TF32 (on by default) cleared
    meta = read_sidecar(fp32)
    assert sidecar_path(fp32).name == "pose.engine.json"  # not pose.json, a card's name
    assert (meta["precision"], meta["tf32"], meta["fp16"], meta["profile"]) == ("fp32", False, False, [1, 2, 4])
    assert (
        meta["gpu"] == "Fake GPU 0" and meta["tensorrt_version"] == fake.__version__ and len(meta["onnx_sha256"]) == 64
    )
    fp16 = EngineCache(CacheLayout(tmp_path)).get_or_build(onnx_path, EngineSpec("fp16", (1, 8, 32)))
    assert json.loads(fp16.read_bytes())["built_with"]["flags"] == ["FP16", "TF32"]
    assert (read_sidecar(fp16)["fp16"], read_sidecar(fp16)["tf32"]) == (True, True)


def test_the_pose_batch_is_clamped_to_the_engine_profile(fake, tmp_path, caplog):
    """Issue 11, item 4: settings ask for batches of 32, the only cached engine runs at most 4: the estimator and
    the batcher cap there, and 11 crops run as 4 + 4 + 3 (each within the profile)."""
    from core.settings import Settings
    from export.tensorrt import EngineCache, EngineSpec
    from inference.pipeline import PosePipeline
    from models.card import InputSpec, ModelCard, OutputSpec

    onnx_path = tiny_pose_onnx(tmp_path / "pose.onnx")
    EngineCache(CacheLayout(tmp_path / "cache")).get_or_build(onnx_path, EngineSpec("fp32", (1, 2, 4)))
    card = ModelCard(
        name="tiny",
        model_file=str(onnx_path),
        input=InputSpec(name="crops", width=4, height=4, layout="NHWC", dtype="uint8", color="RGB"),
        output=OutputSpec(name="coords", kind="keypoints", coord_order="xy", coord_units="normalized"),
    ).save(tmp_path / "pose.json")
    settings = Settings(runtime="tensorrt", cache_dir=tmp_path / "cache", pose_model=card, max_batch_size=32)
    pipe = PosePipeline.from_settings(settings)
    try:
        assert pipe.pose.runtime.max_batch_size == 4 and pipe.pose.batch_size == 4
        assert pipe.batcher.max_batch_size == 4 and "capped" in caplog.text
        calls = []
        real_run = pipe.pose.runtime.run
        pipe.pose.runtime.run = lambda feeds: calls.append(len(feeds["crops"])) or real_run(feeds)
        kpts = pipe.pose.predict_crops(np.full((11, 4, 4, 3), 2, np.uint8))
        assert calls == [4, 4, 3] and kpts.shape == (11, 17, 3)
        # every keypoint is the crop's mean (2) read as a normalised coordinate (2 crop widths: within the output
        # range check of 4 crop sizes), decoded by the card
        raw = np.full((11, 17, 2), 2.0, np.float32)
        np.testing.assert_allclose(kpts, pipe.pose.card.decode(raw), rtol=1e-6)
        assert pipe.pose.warmup_batch_sizes("auto") == [1, 2, 4]  # the profile's min / opt / max
    finally:
        pipe.close()


def test_version_compatible_engines_say_where_they_load(fake, tmp_path):
    """Issue 21, defect 5: a plan loads only with the TensorRT that built it, unless built version-compatible (then
    the runtime must allow its lean runtime's host code). The sidecar (copied into Triton repositories as engine.json)
    says which. TensorRT is faked (tests/fake_tensorrt.py: no GPU here); its Runtime refuses a version-compatible plan
    unless ``engine_host_code_allowed``, as TensorRT's docs say."""
    from export.tensorrt import EngineCache, EngineSpec, build_engine
    from inference.runtime_trt import TrtRuntime, read_sidecar

    onnx_path = tiny_pose_onnx(tmp_path / "pose.onnx")
    plain = build_engine(onnx_path, tmp_path / "plain.engine", EngineSpec("fp16", (1, 2, 4)))
    meta = read_sidecar(plain)
    assert meta["version_compatible"] is False and f"TensorRT {fake.__version__} exactly" in meta["loads_with"]
    assert "Triton: the release whose TensorRT is" in meta["loads_with"]
    vc = EngineCache(CacheLayout(tmp_path)).get_or_build(
        onnx_path, EngineSpec("fp16", (1, 2, 4), version_compatible=True)
    )
    assert vc.name.endswith("-vc.engine")
    meta = read_sidecar(vc)
    assert meta["version_compatible"] is True and "version-compatible=true" in meta["loads_with"]
    rt = TrtRuntime(vc)
    assert rt._runtime.engine_host_code_allowed and rt.run({"crops": np.zeros((2, 4, 4, 3), np.uint8)})[0].shape[0] == 2
    assert not TrtRuntime(plain)._runtime.engine_host_code_allowed


def test_the_engine_cache_keeps_tensorrt_timing_cache(fake, tmp_path):
    """Issue 21, item 6: the second engine built on a GPU / TensorRT version reuses the first build's kernel timings
    (TensorRT's timing cache, a file beside the engines). TensorRT is faked (no GPU here)."""
    from export.tensorrt import EngineCache, EngineSpec
    from inference.runtime_trt import read_sidecar

    onnx_path = tiny_pose_onnx(tmp_path / "pose.onnx")
    cache = EngineCache(CacheLayout(tmp_path))
    fp32 = cache.get_or_build(onnx_path, EngineSpec("fp32", (1, 2, 4)))
    timing = fp32.parent / "timing.cache"
    assert timing.read_bytes().count(b"timings") == 1 and read_sidecar(fp32)["timing_cache_reused"] is False
    fp16 = cache.get_or_build(onnx_path, EngineSpec("fp16", (1, 2, 4)))
    assert read_sidecar(fp16)["timing_cache_reused"] is True and timing.read_bytes().count(b"timings") == 2


def test_a_missing_engine_names_commands_that_run_where_the_server_runs(fake, tmp_path):
    """Issue 21, defect 1: the message names `pose-export engine` (torch-free: the tensorrt extra, the GPU image built
    with WITH_TENSORRT=1) and the compose one-shot, not a command only the export image could run. TensorRT faked."""
    from inference.runtime_trt import TrtRuntime

    onnx_path = tiny_pose_onnx(tmp_path / "pose.onnx")
    with pytest.raises(ModelLoadError, match="no TensorRT engine cached") as err:
        TrtRuntime(onnx_path, cache=CacheLayout(tmp_path / "cache"))
    msg = str(err.value)
    assert f"pose-export engine {onnx_path}" in msg and "run --rm engines" in msg and "POSE_BUILD_ENGINES" in msg
