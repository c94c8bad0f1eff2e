"""TensorRT: the engine cache keying (runs everywhere) and a real build + run (skips without TensorRT)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from core.cache import CacheLayout, check_profile, sidecar_path, slug
from core.errors import ModelLoadError
from core.hashing import sha256_file
from inference.runtime_trt import find_cached_engine


def _onnx(tmp_path, content=b"onnx-bytes"):
    p = tmp_path / "pose.onnx"
    p.write_bytes(content)
    return p


def test_cache_path_is_keyed_by_gpu_tensorrt_version_onnx_hash_precision_and_profile(tmp_path):
    onnx_path = _onnx(tmp_path)
    sha = sha256_file(onnx_path)
    cache = CacheLayout(tmp_path)
    base = cache.engine_path(onnx_path, sha, "fp16", (1, 8, 32), "NVIDIA H100 80GB HBM3", "10.9.0.34")
    assert base.parent == tmp_path / "engines" / "nvidia-h100-80gb-hbm3" / "trt-10.9.0.34"
    assert base.name == f"pose-{sha[:16]}-fp16-b1-8-32.engine"
    variants = [
        cache.engine_path(onnx_path, sha, "fp16", (1, 8, 32), "NVIDIA A10G", "10.9.0.34"),
        cache.engine_path(onnx_path, sha, "fp16", (1, 8, 32), "NVIDIA H100 80GB HBM3", "10.13.0"),
        cache.engine_path(onnx_path, "f" * 64, "fp16", (1, 8, 32), "NVIDIA H100 80GB HBM3", "10.9.0.34"),
        cache.engine_path(onnx_path, sha, "fp32", (1, 8, 32), "NVIDIA H100 80GB HBM3", "10.9.0.34"),
        cache.engine_path(onnx_path, sha, "fp16", (1, 16, 64), "NVIDIA H100 80GB HBM3", "10.9.0.34"),
    ]
    assert len({base, *variants}) == 6


def test_profile_and_precision_are_validated(tmp_path):
    assert check_profile([1, 4, 8]) == (1, 4, 8)
    for bad in [(0, 1, 2), (4, 2, 8), (1, 8, 4), (1, 2)]:
        with pytest.raises(ValueError, match="profile"):
            check_profile(bad)
    with pytest.raises(ValueError, match="int8"):
        CacheLayout(tmp_path).engine_path("m.onnx", "0" * 64, "int8", (1, 1, 1), "gpu", "10")
    assert slug("  NVIDIA GeForce RTX 4090 ") == "nvidia-geforce-rtx-4090" and slug("") == "unknown"


def test_find_cached_engine_prefers_an_engine_whose_profile_covers_the_batch(tmp_path):
    """Issue 11, item 4: the service's batch size picks the engine; the full hash, precision, GPU and TensorRT
    version must match; an engine that cannot run one crop (profile min > 1) is never taken."""
    onnx_path = _onnx(tmp_path)
    sha = sha256_file(onnx_path)
    root = CacheLayout(tmp_path / "cache")

    def put(precision, profile, meta_sha=sha):
        p = root.engine_path(onnx_path, sha, precision, profile, "GPU X", "10.9")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"engine")
        sidecar_path(p).write_text(
            json.dumps({"onnx_sha256": meta_sha, "precision": precision, "profile": list(profile)})
        )
        return p

    assert find_cached_engine(onnx_path, "GPU X", "10.9", root) is None
    fp32 = put("fp32", (1, 4, 8))
    assert sidecar_path(fp32).name == fp32.name + ".json"  # never a card's <stem>.json
    assert find_cached_engine(onnx_path, "GPU X", "10.9", root) == fp32
    fp16 = put("fp16", (1, 8, 32))
    assert find_cached_engine(onnx_path, "GPU X", "10.9", root) == fp16  # fp16 preferred
    assert find_cached_engine(onnx_path, "GPU X", "10.9", root, precision="fp32") == fp32
    # nothing fp32 covers 16: the largest fp32 engine, which the pose estimator then clamps to
    assert find_cached_engine(onnx_path, "GPU X", "10.9", root, precision="fp32", batch_size=16) == fp32
    wide = put("fp32", (1, 8, 64))
    assert find_cached_engine(onnx_path, "GPU X", "10.9", root, batch_size=32) == fp16  # covers, fp16
    assert find_cached_engine(onnx_path, "GPU X", "10.9", root, batch_size=48) == wide  # only it covers 48
    assert find_cached_engine(onnx_path, "GPU X", "10.9", root, batch_size=100) == wide  # largest max
    put("fp16", (2, 64, 128))  # min 2: one crop could not run
    assert find_cached_engine(onnx_path, "GPU X", "10.9", root, batch_size=100) == wide
    put("fp16", (1, 8, 256), meta_sha="0" * 64)  # sidecar of another ONNX file
    assert find_cached_engine(onnx_path, "GPU X", "10.9", root, batch_size=100) == wide
    assert find_cached_engine(onnx_path, "GPU Y", "10.9", root) is None  # other GPU
    assert find_cached_engine(onnx_path, "GPU X", "10.10", root) is None  # other TensorRT
    onnx_path.write_bytes(b"changed model")  # other ONNX contents
    assert find_cached_engine(onnx_path, "GPU X", "10.9", root) is None


def test_engine_spec_validation():
    from export.tensorrt import EngineSpec

    assert EngineSpec("fp32", (1, 2, 4)).profile == (1, 2, 4)
    with pytest.raises(ValueError, match="int8"):
        EngineSpec("int8")
    with pytest.raises(ValueError, match="profile"):
        EngineSpec("fp16", (8, 1, 4))


def test_without_tensorrt_the_runtime_and_builder_fail_clearly(tmp_path, monkeypatch):
    try:
        import tensorrt  # noqa: F401

        pytest.skip("TensorRT is installed: the missing-dependency path cannot be exercised")
    except ImportError:
        pass
    from core.settings import Settings
    from export.tensorrt import EngineBuildError, EngineCache, build_engine
    from inference.runtime import create_runtime

    onnx_path = _onnx(tmp_path)
    with pytest.raises(ModelLoadError, match="TensorRT"):
        create_runtime(onnx_path, Settings(runtime="tensorrt", cache_dir=tmp_path))
    with pytest.raises(EngineBuildError, match="TensorRT is not importable"):
        build_engine(onnx_path, tmp_path / "x.engine")
    with pytest.raises(EngineBuildError, match="TensorRT is not importable"):
        EngineCache(CacheLayout(tmp_path)).get_or_build(onnx_path)


def test_runtime_trt_module_is_torch_free():
    import subprocess

    code = "import sys, inference.runtime_trt, inference.default_models; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.fixture(scope="module")
def trt():
    return pytest.importorskip("tensorrt", reason="TensorRT is not installed (GPU machines only)")


def test_engine_build_and_trt_runtime_match_onnxruntime(trt, tmp_path):
    """GPU only: a small dynamic-batch ONNX -> fp32 engine (cached) -> TrtRuntime == onnxruntime."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from export.tensorrt import EngineCache, EngineSpec, compare_engine_to_onnx
    from inference.runtime_trt import TrtRuntime

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4, 8, 8])
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 3, 3, 3], np.random.default_rng(0).random(108).tolist())
    node = helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])
    model = helper.make_model(
        helper.make_graph([node], "g", [x], [y], [w]), opset_imports=[helper.make_opsetid("", 17)]
    )
    path = tmp_path / "conv.onnx"
    onnx.save(model, str(path))
    cache = EngineCache(CacheLayout(tmp_path))
    spec = EngineSpec("fp32", (1, 2, 4), workspace_gib=1.0)
    engine = cache.get_or_build(path, spec)
    assert engine.is_file() and sidecar_path(engine).is_file()
    assert cache.get_or_build(path, spec) == engine  # cache hit
    rt = TrtRuntime(path, cache=CacheLayout(tmp_path))  # found through the cache by ONNX path
    assert rt.input_names == ["x"] and rt.input_shapes == [[None, 3, 8, 8]]
    feeds = {"x": np.random.default_rng(1).random((3, 3, 8, 8), dtype=np.float32)}
    assert rt.run(feeds)[0].shape == (3, 4, 8, 8)
    assert max(compare_engine_to_onnx(engine, path, feeds)) < 1e-3
    from core.errors import InferenceError

    with pytest.raises(InferenceError, match="profile"):
        rt.run({"x": np.zeros((5, 3, 8, 8), np.float32)})
