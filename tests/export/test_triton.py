"""Triton model repository: config.pbtxt derived from the exported graph, parsed back with Triton's own
ModelConfig protobuf (tritonclient.grpc.model_config_pb2); a plan's profile must reach max_batch_size."""

from __future__ import annotations

import json

import pytest

onnx = pytest.importorskip("onnx")
from tritonclient.grpc import model_config_pb2 as mc  # noqa: E402

from export.triton import (  # noqa: E402
    TritonExportError,
    config_pbtxt,
    parse_config,
    validate_config,
    write_triton_model,
)
from tests.graphs import tiny_pose_onnx  # noqa: E402


def pose_onnx(path, batch="batch"):
    """uint8 [B, 256, 192, 3] -> float32 keypoints [B, 17, 3]."""
    return tiny_pose_onnx(path, w=192, h=256, batch=batch, output="keypoints", width=3)


def _plan(tmp_path, profile, name="pose.engine"):
    plan = tmp_path / name
    plan.write_bytes(b"engine-bytes")
    (tmp_path / f"{name}.json").write_text(json.dumps({"precision": "fp16", "tf32": True, "profile": list(profile)}))
    return plan


def test_pose_repository_has_dynamic_batching_and_the_graph_io(tmp_path):
    src = pose_onnx(tmp_path / "pose.onnx")
    card = tmp_path / "pose.json"
    card.write_text("{}")
    folder = write_triton_model(
        tmp_path / "repo", "pose", src, max_batch_size=16, max_queue_delay_us=500, card_path=card
    )
    assert (folder / "1" / "model.onnx").read_bytes() == src.read_bytes()
    assert (folder / "card.json").is_file()
    config = parse_config((folder / "config.pbtxt").read_text())
    assert (config.name, config.platform, config.max_batch_size) == ("pose", "onnxruntime_onnx", 16)
    (inp,) = config.input
    assert (inp.name, inp.data_type, list(inp.dims)) == ("crops", mc.TYPE_UINT8, [256, 192, 3])
    (out,) = config.output
    assert (out.name, out.data_type, list(out.dims)) == ("keypoints", mc.TYPE_FP32, [17, 3])
    assert list(config.dynamic_batching.preferred_batch_size) == [2, 4, 8, 16]
    assert config.dynamic_batching.max_queue_delay_microseconds == 500
    (group,) = config.instance_group
    assert (group.count, group.kind) == (1, mc.ModelInstanceGroup.KIND_GPU)


def test_tensorrt_platform_copies_the_plan_and_checks_its_profile(tmp_path):
    """Issue 11, item 4: a plan built for batches up to 8 cannot serve max_batch_size 16."""
    src = pose_onnx(tmp_path / "pose.onnx")
    plan = _plan(tmp_path, (1, 8, 32))
    folder = write_triton_model(tmp_path / "repo", "pose", src, platform="tensorrt", engine_path=plan)
    assert (folder / "1" / "model.plan").read_bytes() == b"engine-bytes"
    assert json.loads((folder / "engine.json").read_text())["precision"] == "fp16"
    config = parse_config((folder / "config.pbtxt").read_text())
    assert (config.platform, config.max_batch_size) == ("tensorrt_plan", 32)
    small = _plan(tmp_path, (1, 4, 8), "small.engine")
    with pytest.raises(TritonExportError, match=r"at most 8 .* max_batch_size is 16"):
        write_triton_model(tmp_path / "repo", "pose2", src, platform="tensorrt", engine_path=small, max_batch_size=16)
    assert write_triton_model(tmp_path / "repo", "pose3", src, platform="tensorrt", engine_path=small, max_batch_size=8)
    bare = tmp_path / "bare.engine"
    bare.write_bytes(b"engine")
    with pytest.raises(TritonExportError, match="sidecar"):
        write_triton_model(tmp_path / "repo", "pose4", src, platform="tensorrt", engine_path=bare)
    with pytest.raises(TritonExportError, match="engine"):
        write_triton_model(tmp_path / "repo", "pose5", src, platform="tensorrt")


def test_fixed_batch_model_is_refused(tmp_path):
    src = pose_onnx(tmp_path / "fixed.onnx", batch=1)
    with pytest.raises(TritonExportError, match="dynamic batch"):
        write_triton_model(tmp_path / "repo", "fixed", src)


def test_real_detector_asset_with_fixed_batch_is_refused(yolo_onnx, tmp_path):
    with pytest.raises(TritonExportError, match="images"):
        write_triton_model(tmp_path / "repo", "detector", yolo_onnx)


def test_config_rejects_inconsistent_batching():
    io = [{"name": "x", "data_type": "TYPE_FP32", "dims": [3]}]
    with pytest.raises(TritonExportError, match="preferred"):
        config_pbtxt("m", "onnxruntime", io, io, 8, [16], 100)
    with pytest.raises(TritonExportError, match="KIND_GPU"):
        config_pbtxt("m", "tensorrt", io, io, 8, [8], 100, instance_kind="KIND_CPU")


def test_the_protobuf_catches_what_string_checks_would_miss():
    io = [{"name": "x", "data_type": "TYPE_FP32", "dims": [3]}]
    good = config_pbtxt("m", "onnxruntime", io, io, 8, [8], 100)
    assert validate_config(good, "m", "onnxruntime", 8).max_batch_size == 8
    with pytest.raises(TritonExportError, match="not a valid Triton ModelConfig"):
        parse_config(good.replace("TYPE_FP32", "TYPE_FLOAT32"))  # an enum value Triton does not have
    with pytest.raises(TritonExportError, match="not a valid Triton ModelConfig"):
        parse_config(good + "dynamic_batching { max_queue_delay_us: 5 }\n")  # a misspelt field
    bad_dims = [{"name": "x", "data_type": "TYPE_FP32", "dims": [0]}]
    with pytest.raises(TritonExportError, match="dims"):
        validate_config(config_pbtxt("m", "onnxruntime", bad_dims, io, 8, [8], 100), "m", "onnxruntime", 8)
    with pytest.raises(TritonExportError, match="name"):
        validate_config(good, "other", "onnxruntime", 8)
