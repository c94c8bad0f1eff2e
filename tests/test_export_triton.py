"""Triton model repository: config.pbtxt content derived from the exported graph."""

from __future__ import annotations

import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

from export.triton import TritonExportError, config_pbtxt, write_triton_model  # noqa: E402


def tiny_pose_onnx(path, batch="batch"):
    """uint8 [B, 256, 192, 3] -> float32 [B, 17, 3] (a Cast + Reshape graph with the pose contract)."""
    x = helper.make_tensor_value_info("crops", TensorProto.UINT8, [batch, 256, 192, 3])
    y = helper.make_tensor_value_info("keypoints", TensorProto.FLOAT, [batch, 17, 3])
    shape = helper.make_tensor("shape", TensorProto.INT64, [3], [-1, 17, 3])
    sl = helper.make_tensor("n", TensorProto.INT64, [1], [51])
    nodes = [
        helper.make_node("Cast", ["crops"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("Flatten", ["f"], ["flat"], axis=1),
        helper.make_node("Slice", ["flat", "zero", "n", "one"], ["s"]),
        helper.make_node("Reshape", ["s", "shape"], ["keypoints"]),
    ]
    inits = [
        shape,
        sl,
        helper.make_tensor("zero", TensorProto.INT64, [1], [0]),
        helper.make_tensor("one", TensorProto.INT64, [1], [1]),
    ]
    model = helper.make_model(
        helper.make_graph(nodes, "tiny", [x], [y], inits), opset_imports=[helper.make_opsetid("", 17)]
    )
    onnx.save(model, str(path))
    return path


def test_pose_repository_has_dynamic_batching_and_the_graph_io(tmp_path):
    src = tiny_pose_onnx(tmp_path / "pose.onnx")
    card = tmp_path / "pose.json"
    card.write_text("{}")
    folder = write_triton_model(
        tmp_path / "repo", "pose", src, max_batch_size=16, max_queue_delay_us=500, card_path=card
    )
    assert (folder / "1" / "model.onnx").read_bytes() == src.read_bytes()
    assert (folder / "card.json").is_file()
    text = (folder / "config.pbtxt").read_text()
    assert 'name: "pose"' in text and 'platform: "onnxruntime_onnx"' in text
    assert "max_batch_size: 16" in text
    assert 'name: "crops"\n    data_type: TYPE_UINT8\n    dims: [ 256, 192, 3 ]' in text
    assert 'name: "keypoints"\n    data_type: TYPE_FP32\n    dims: [ 17, 3 ]' in text
    assert "dynamic_batching {\n  preferred_batch_size: [ 2, 4, 8, 16 ]\n  max_queue_delay_microseconds: 500\n}" in text
    assert "kind: KIND_GPU" in text


def test_tensorrt_platform_copies_the_plan(tmp_path):
    src = tiny_pose_onnx(tmp_path / "pose.onnx")
    plan = tmp_path / "pose.engine"
    plan.write_bytes(b"engine-bytes")
    folder = write_triton_model(tmp_path / "repo", "pose", src, platform="tensorrt", engine_path=plan)
    assert (folder / "1" / "model.plan").read_bytes() == b"engine-bytes"
    assert 'platform: "tensorrt_plan"' in (folder / "config.pbtxt").read_text()
    with pytest.raises(TritonExportError, match="engine"):
        write_triton_model(tmp_path / "repo", "pose2", src, platform="tensorrt")


def test_fixed_batch_model_is_refused(tmp_path):
    src = tiny_pose_onnx(tmp_path / "fixed.onnx", batch=1)
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
