"""`pose-export` end to end on our own .pth: pose -> card, triton repository, engine (clear error without TensorRT)."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from export.cli import main  # noqa: E402
from models.card import ModelCard  # noqa: E402
from models.checkpoints import save_pose_checkpoint  # noqa: E402
from models.pose_model import build_pose_model  # noqa: E402
from models.tolerance import EXPORT_TOLERANCE_PX  # noqa: E402
from models.zoo import get_config  # noqa: E402

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
    card = ModelCard.load(tmp_path / "out" / "mine.json")
    assert card.source["format"] == "poseserve" and card.source["checkpoint"] == str(ckpt)
    assert len(card.source["sha256"]) == 64 and card.extra["config"]["deconv_out_channels"] == [16]
    assert card.extra["verification"]["max_abs_diff"] <= EXPORT_TOLERANCE_PX
    assert card.extra["verification"]["crops"].startswith("2 crops of")

    repo = tmp_path / "triton"
    assert main(["triton", "--repository", str(repo), "--pose-card", str(card.path), "--max-batch-size", "8"]) == 0
    text = (repo / "pose" / "config.pbtxt").read_text()
    assert "max_batch_size: 8" in text and "TYPE_UINT8" in text and "dims: [ 17, 2 ]" in text
    assert json.loads((repo / "pose" / "card.json").read_text())["name"] == "mine"


def test_cli_failures_are_one_line_messages(tmp_path, capsys):
    assert main(["pose", str(tmp_path / "missing.pth"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "missing.pth" in err and "Traceback" not in err
    assert main(["pose", "ipr_res50", "--out", str(tmp_path), "--offline", "--cache-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "offline" in err and str(tmp_path / "checkpoints") in err  # the settings reached the download
    onnx_file = tmp_path / "m.onnx"
    onnx_file.write_bytes(b"not onnx")
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        assert main(["engine", str(onnx_file)]) == 2
        assert "TensorRT is not importable" in capsys.readouterr().err
    assert main(["engine", str(onnx_file), "--batch", "8", "1", "4"]) == 2
    assert "profile" in capsys.readouterr().err


def test_evaluation_hook_exports_a_checkpoint_through_export_pose(tmp_path):
    """evaluation/job.py turns --checkpoint into a card through export.pose.export_pose."""
    from evaluation.job import card_from_checkpoint
    from service.settings import Settings

    torch.manual_seed(4)
    cfg = get_config("ipr_res50").replace(backbone_base_channels=8, deconv_out_channels=(16,), deconv_kernel_sizes=(4,))
    ckpt = save_pose_checkpoint(tmp_path / "e.pth", build_pose_model(cfg))
    card_path = card_from_checkpoint(None, str(ckpt), tmp_path / "model", Settings(cache_dir=tmp_path))
    card = ModelCard.load(card_path)
    assert card.model_path().is_file() and card.source["checkpoint"] == str(ckpt)
