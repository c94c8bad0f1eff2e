"""`pose-export` end to end on our own .pth: pose -> card, triton repository, engine (clear error without TensorRT)."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from tritonclient.grpc import model_config_pb2 as mc  # noqa: E402

from export.cli import main  # noqa: E402
from export.triton import parse_config  # noqa: E402
from models.card import ModelCard  # noqa: E402
from models.checkpoints import save_pose_checkpoint  # noqa: E402
from models.pose_model import build_pose_model  # noqa: E402
from models.tolerance import EXPORT_TOLERANCE_PX  # noqa: E402
from models.zoo import get_config  # noqa: E402
from tests.graphs import tiny_pose_onnx  # noqa: E402

pytestmark = pytest.mark.slow  # ONNX exports: seconds each


def test_pose_export_from_our_checkpoint_then_triton_repository(tmp_path, capsys, coco_tiny):
    torch.manual_seed(3)
    model = build_pose_model(
        get_config("ipr_res50").replace(backbone_base_channels=8, deconv_out_channels=(16,), deconv_kernel_sizes=(4,))
    )
    ckpt = save_pose_checkpoint(tmp_path / "best.pth", model, meta={"epoch": 7})

    argv = ["pose", str(ckpt), "--out", str(tmp_path / "out"), "--name", "mine", "--check-crops", "2"]
    assert main(argv + ["--check-images", str(coco_tiny)]) == 0
    out = capsys.readouterr().out
    assert "within tolerance: max |exported - torch fp32|" in out and "2 crops of" in out
    assert "lint mine.onnx: TensorRT-ready" in out  # the lint ran after the export
    card = ModelCard.load(tmp_path / "out" / "mine.json")
    assert card.source["format"] == "poseserve" and card.source["checkpoint"] == str(ckpt)
    assert len(card.source["sha256"]) == 64 and card.extra["config"]["deconv_out_channels"] == [16]
    assert card.extra["verification"]["max_abs_diff"] <= EXPORT_TOLERANCE_PX
    assert card.extra["verification"]["crops"].startswith("2 crops of")

    repo = tmp_path / "triton"
    assert main(["triton", "--repository", str(repo), "--pose-card", str(card.path), "--max-batch-size", "8"]) == 0
    config = parse_config((repo / "pose" / "config.pbtxt").read_text())  # Triton's ModelConfig protobuf
    assert config.max_batch_size == 8 and config.input[0].data_type == mc.TYPE_UINT8
    assert list(config.output[0].dims) == [17, 2]
    assert json.loads((repo / "pose" / "card.json").read_text())["name"] == "mine"


def test_cli_failures_are_one_line_messages(tmp_path, capsys):
    assert main(["pose", str(tmp_path / "missing.pth"), "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "missing.pth" in err and "Traceback" not in err
    assert main(["pose", "ipr_res50", "--out", str(tmp_path), "--offline", "--cache-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "offline" in err and str(tmp_path / "checkpoints") in err  # the settings reached the download
    garbage = tmp_path / "g.onnx"
    garbage.write_bytes(b"not onnx")
    assert main(["engine", str(garbage)]) == 1
    assert "not an ONNX model" in capsys.readouterr().err  # the lint reads the file first
    onnx_file = tiny_pose_onnx(tmp_path / "m.onnx")
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        assert main(["engine", str(onnx_file)]) == 1
        captured = capsys.readouterr()
        assert "lint m.onnx: TensorRT-ready" in captured.out and "TensorRT is not importable" in captured.err
    assert main(["engine", str(onnx_file), "--batch", "8", "1", "4"]) == 2  # a usage error
    assert "profile" in capsys.readouterr().err
    assert main(["engine", str(tmp_path / "missing.onnx")]) == 1
    assert "not found" in capsys.readouterr().err


def test_lint_subcommand_fails_a_graph_tensorrt_cannot_parse(tmp_path, capsys):
    from onnx import TensorProto, helper, save

    good = tiny_pose_onnx(tmp_path / "good.onnx")
    x = helper.make_tensor_value_info("crops", TensorProto.UINT8, ["batch", 4, 4, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3, 4, 4])
    nodes = [
        helper.make_node("Transpose", ["crops"], ["t"], perm=[0, 3, 1, 2]),
        helper.make_node("Cast", ["t"], ["y"], to=TensorProto.FLOAT),
    ]
    bad = tmp_path / "bad.onnx"
    save(helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=[helper.make_opsetid("", 18)]), bad)
    assert main(["lint", str(good)]) == 0
    assert "TensorRT-ready" in capsys.readouterr().out
    assert main(["lint", str(good), str(bad), "--json"]) == 1
    captured = capsys.readouterr()
    reports = json.loads(captured.out)
    assert [r["ok"] for r in reports] == [True, False] and "1 of 2 file(s)" in captured.err
    assert {f["rule"] for f in reports[1]["findings"]} == {"uint8", "op-type"}


def test_evaluation_hook_exports_a_checkpoint_through_export_pose(tmp_path):
    """pose-eval turns --checkpoint into a card through `pose-export pose` in a subprocess (evaluation never imports
    export)."""
    from core.settings import Settings
    from evaluation.job import card_from_checkpoint

    torch.manual_seed(4)
    cfg = get_config("ipr_res50").replace(backbone_base_channels=8, deconv_out_channels=(16,), deconv_kernel_sizes=(4,))
    ckpt = save_pose_checkpoint(tmp_path / "e.pth", build_pose_model(cfg))
    card_path = card_from_checkpoint(None, str(ckpt), tmp_path / "model", Settings(cache_dir=tmp_path))
    card = ModelCard.load(card_path)
    assert card.model_path().is_file() and card.source["checkpoint"] == str(ckpt)
