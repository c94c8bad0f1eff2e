"""Tiny ONNX graphs with the pose model's contract, for tests that need a real file but no export."""

from __future__ import annotations

from pathlib import Path


def tiny_pose_onnx(path: str | Path, w: int = 4, h: int = 4, batch="batch", output: str = "coords", width: int = 2):
    """uint8 crops [B, h, w, 3] -> float32 ``output`` [B, 17, width]: every value is the crop's mean (Cast first,
    as TensorRT wants; ReduceMean, Expand, Reshape). ``batch``: a name (dynamic axis) or an int (fixed).

    Returns:
        ``path`` (written, opset 17).
    """
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("crops", TensorProto.UINT8, [batch, h, w, 3])
    y = helper.make_tensor_value_info(output, TensorProto.FLOAT, [batch, 17, width])
    nodes = [
        helper.make_node("Cast", ["crops"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["f"], ["m"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Reshape", ["m", "column"], ["c"]),
        helper.make_node("Expand", ["c", "shape"], [output]),
    ]
    inits = [
        helper.make_tensor("column", TensorProto.INT64, [3], [-1, 1, 1]),
        helper.make_tensor("shape", TensorProto.INT64, [3], [1, 17, width]),
    ]
    graph = helper.make_graph(nodes, "tiny", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return Path(path)
