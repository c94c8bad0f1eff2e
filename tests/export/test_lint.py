"""The TensorRT-readiness lint (export/lint/): each rule fires on a graph that breaks it, stays silent on one
that does not, and the historical blocker (a Transpose reading the uint8 crops before the Cast) is caught in a
real exported pose graph. Our exported graphs themselves are linted in test_export_pose.py and
test_export_detector.py."""

from __future__ import annotations

import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnx_graphsurgeon")
from onnx import TensorProto, helper  # noqa: E402

from export.lint import GraphLintError, check_graph, lint_onnx, load_support_matrix, type_name  # noqa: E402


def _model(nodes, inputs, outputs, inits=(), opset=18, value_info=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits), value_info=list(value_info))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _crops(batch="batch"):
    return helper.make_tensor_value_info("crops", TensorProto.UINT8, [batch, 8, 8, 3])


def _out(name="y", elem=TensorProto.FLOAT, shape=("batch", 3, 8, 8)):
    return helper.make_tensor_value_info(name, elem, list(shape))


def cast_then_transpose(first: str = "Cast"):
    """uint8 NHWC crops -> float NCHW, with the Cast first (good) or the Transpose first (the old blocker)."""
    if first == "Cast":
        nodes = [
            helper.make_node("Cast", ["crops"], ["f"], to=TensorProto.FLOAT),
            helper.make_node("Transpose", ["f"], ["y"], perm=[0, 3, 1, 2]),
        ]
    else:
        nodes = [
            helper.make_node("Transpose", ["crops"], ["t"], perm=[0, 3, 1, 2]),
            helper.make_node("Cast", ["t"], ["y"], to=TensorProto.FLOAT),
        ]
    return _model(nodes, [_crops()], [_out()])


def test_the_support_matrix_is_onnx_tensorrts_table_with_its_source():
    m = load_support_matrix()
    assert m.source["url"].startswith("https://github.com/onnx/onnx-tensorrt/") and len(m.source["commit"]) == 40
    assert m.opset_range == (9, 20)
    assert m.operators["Conv"]["types"] == ["FP32", "FP16", "BF16"]
    assert m.operators["NonMaxSuppression"]["supported"]
    assert not m.operators["Unique"]["supported"]
    assert "INT64" in m.operators["ConstantOfShape"]["types"]  # the table's typo INF64, read as INT64
    assert m.constant_inputs("Squeeze") == ("axes",) and m.constant_inputs("CumSum") == ("axis",)
    assert type_name(TensorProto.FLOAT) == "FP32" and type_name(TensorProto.FLOAT8E4M3FN) == "FP8"


def test_cast_first_is_clean_and_transpose_first_is_the_uint8_blocker():
    assert lint_onnx(cast_then_transpose("Cast")).findings == []
    report = lint_onnx(cast_then_transpose("Transpose"))
    assert not report.ok
    # the uint8 input reaches a Transpose, and the Transpose produces a uint8 intermediate tensor
    assert {f.rule for f in report.errors} == {"uint8", "op-type"}
    assert any(f.tensor == "crops" for f in report.errors) and any(f.tensor == "t" for f in report.errors)
    assert "Transpose does not take UINT8" in report.describe()


def test_the_blocker_is_caught_in_a_real_exported_pose_graph(tmp_path, coco_tiny):
    """Rewire our exported graph the way main once exported it (permute before the cast): the lint fails it."""
    torch = pytest.importorskip("torch")
    from export.pose import crops_from_images, export_pose_model
    from models.pose_model import build_pose_model
    from models.zoo import get_config

    cfg = get_config("ipr_res50").replace(backbone_base_channels=8, deconv_out_channels=(16,), deconv_kernel_sizes=(4,))
    torch.manual_seed(0)
    crops = crops_from_images(sorted(coco_tiny.glob("*.jpg")), cfg.input_size, 2)
    r = export_pose_model(build_pose_model(cfg), tmp_path, crops, "2 coco-tiny crops")
    good = onnx.load(str(r.onnx_path))
    assert lint_onnx(good).ok
    nodes = list(good.graph.node)
    cast = next(n for n in nodes if n.input[0] == "crops")
    transpose = next(n for n in nodes if n.op_type == "Transpose" and n.input[0] == cast.output[0])
    # crops -> Transpose -> Cast -> (what the Transpose fed)
    t_out = transpose.output[0]
    cast.input[0], cast.output[0] = "crops_nchw", t_out
    transpose.input[0], transpose.output[0] = "crops", "crops_nchw"
    del good.graph.node[:]
    good.graph.node.extend([transpose, cast] + [n for n in nodes if n is not cast and n is not transpose])
    bad = lint_onnx(good)
    assert "uint8" in bad.rules() and not bad.ok


def test_types_tensorrt_cannot_take_are_reported_per_operator():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    # BOOL into Equal: ONNX allows it, TensorRT's Equal takes FP32, FP16, BF16, INT32, INT64
    nodes = [
        helper.make_node("Greater", ["x", "zero"], ["b"]),
        helper.make_node("Equal", ["b", "b"], ["y"]),
    ]
    m = _model(nodes, [x], [_out("y", TensorProto.BOOL, ["batch", 4])], [helper.make_tensor("zero", 1, [], [0.0])])
    report = lint_onnx(m)
    assert [(f.rule, f.node) for f in report.errors] == [("op-type", "Equal#1")]
    assert "Equal does not take BOOL" in report.errors[0].message
    # INT64 data into a Conv
    xi = helper.make_tensor_value_info("xi", TensorProto.INT64, ["batch", 1, 4, 4])
    w = helper.make_tensor("w", TensorProto.INT64, [1, 1, 1, 1], [1])
    m = _model(
        [helper.make_node("Conv", ["xi", "w"], ["y"])], [xi], [_out("y", TensorProto.INT64, ["batch", 1, 4, 4])], [w]
    )
    report = lint_onnx(m)
    assert any(f.rule == "op-type" and "Conv does not take INT64" in f.message for f in report.errors)
    # fixed-type inputs are not the op's data: Reshape's int64 shape is fine, and so is a comparison's BOOL output
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 4])
    m = _model([helper.make_node("Reshape", ["x", "shape"], ["y"])], [x], [_out("y", shape=["batch", 4])], [shape])
    assert lint_onnx(m).findings == []


def test_dtypes_tensorrt_has_no_type_for_and_double():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    m = _model(
        [helper.make_node("Cast", ["x"], ["h"], to=TensorProto.INT16), helper.make_node("Cast", ["h"], ["y"], to=1)],
        [x],
        [_out("y", shape=["batch", 4])],
    )
    assert any(f.rule == "dtype" and "INT16" in f.message for f in lint_onnx(m).errors)
    m = _model(
        [helper.make_node("Cast", ["x"], ["d"], to=TensorProto.DOUBLE), helper.make_node("Cast", ["d"], ["y"], to=1)],
        [x],
        [_out("y", shape=["batch", 4])],
    )
    report = lint_onnx(m)
    assert report.ok and [f.rule for f in report.warnings] == ["dtype"]  # TensorRT casts DOUBLE down


def test_unsupported_and_foreign_operators():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    m = _model([helper.make_node("Unique", ["x"], ["y"])], [x], [_out("y", shape=["n"])])
    assert any(f.rule == "op-unsupported" and "Unique" in f.message for f in lint_onnx(m, dynamic_batch=False).errors)
    m = _model([helper.make_node("Gelu", ["x"], ["y"], domain="com.microsoft")], [x], [_out("y", shape=["batch", 4])])
    m.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    assert "domain" in lint_onnx(m).rules()


def test_batch_axis_and_opset_rules():
    fixed = _model(
        [helper.make_node("Cast", ["crops"], ["y"], to=TensorProto.FLOAT)],
        [_crops(batch=1)],
        [_out("y", shape=[1, 8, 8, 3])],
    )
    report = lint_onnx(fixed)
    assert [f.rule for f in report.errors] == ["dynamic-batch", "dynamic-batch"]  # input and output
    assert lint_onnx(fixed, dynamic_batch=False).ok
    spatial = helper.make_tensor_value_info("crops", TensorProto.UINT8, ["batch", "h", 8, 3])
    m = _model(
        [helper.make_node("Cast", ["crops"], ["y"], to=TensorProto.FLOAT)],
        [spatial],
        [_out("y", shape=["batch", "h", 8, 3])],
    )
    assert any("besides batch" in f.message for f in lint_onnx(m).errors)
    new = cast_then_transpose("Cast")
    new.opset_import[0].version = 21
    assert "opset" in lint_onnx(new).rules()


def test_inputs_that_must_be_constants():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 4])
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    ok = _model([helper.make_node("Squeeze", ["x", "axes"], ["y"])], [x], [_out("y", shape=["batch", 4])], [axes])
    assert lint_onnx(ok).findings == []
    # the axes computed at run time (from the input's shape): TensorRT wants an initializer
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], start=1, end=2),
        helper.make_node("Squeeze", ["x", "s"], ["y"]),
    ]
    bad = _model(nodes, [x], [_out("y", shape=["batch", 4])])
    assert any(f.rule == "constant-input" and f.tensor == "s" for f in lint_onnx(bad).errors)


def test_check_graph_modes(tmp_path, caplog):
    path = tmp_path / "bad.onnx"
    onnx.save(cast_then_transpose("Transpose"), str(path))
    with pytest.raises(GraphLintError, match="--lint warn") as exc:
        check_graph(path, "error")
    assert "UINT8" in str(exc.value)
    report = check_graph(path, "warn")
    assert not report.ok and "uint8" in caplog.text
    assert check_graph(path, "off") is None
    with pytest.raises(ValueError, match="lint mode"):
        check_graph(path, "strict")
    with pytest.raises(FileNotFoundError):
        lint_onnx(tmp_path / "missing.onnx")
    assert report.to_dict()["ok"] is False
