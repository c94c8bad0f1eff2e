"""Pose export of the MSPN / RSN entries (``models.zoo.families.mspn_rsn``): small widths (``unit_channels`` 16, 2
units of (1, 2) blocks), real stages, head, input size and test config -> ONNX + card (``codec`` ``megvii``, no
heatmap shift), verified against torch through onnxruntime, linted for TensorRT, and served by the service's pipeline
with the flip test. Exported here: one and two stages of each network (the deeper stacks repeat the same operators)."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from export.lint import lint_onnx  # noqa: E402
from export.pose import crops_from_images, export_pose_model  # noqa: E402
from inference.runtime import create_runtime  # noqa: E402
from models.card import ModelCard  # noqa: E402
from models.pose_model import build_pose_model, scale_head_logits  # noqa: E402
from models.tolerance import EXPORT_TOLERANCE_PX, assert_close  # noqa: E402
from models.zoo import get_config  # noqa: E402

pytestmark = pytest.mark.slow  # ONNX exports: seconds each

SMALL = {"unit_channels": 16, "num_units": 2, "num_blocks": [1, 2]}
EXPORTED = ("td-hm_mspn50", "td-hm_2xmspn50", "td-hm_rsn18", "td-hm_2xrsn50")


def small_model(name: str, crops: np.ndarray, seed: int = 0):
    """A small random model whose heatmaps have a trained model's spread on real crops (``scale_head_logits``)."""
    torch.manual_seed(seed)
    cfg = get_config(name)
    model = build_pose_model(cfg.replace(backbone_args={**cfg.backbone_args, **SMALL}))
    return scale_head_logits(model, crops)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, coco_tiny, cpu_settings):
    """name -> (model, PoseExport), each exported on first use."""
    out = tmp_path_factory.mktemp("pose-export-mspn")
    images = sorted(coco_tiny.glob("*.jpg"))
    cache: dict = {}

    def get(name: str):
        if name not in cache:
            crops = crops_from_images(images, get_config(name).input_size, 2)
            model = small_model(name, crops)
            cache[name] = (
                model,
                export_pose_model(model, out, crops, "2 coco-tiny crops", threads=cpu_settings.intra_op_threads),
            )
        return cache[name]

    return get


@pytest.mark.parametrize("name", EXPORTED)
def test_export_round_trips_through_onnxruntime_and_lints(exported, coco_tiny, cpu_settings, name):
    model, r = exported(name)
    assert r.max_abs_diff_px <= EXPORT_TOLERANCE_PX
    card = ModelCard.load(r.card_path)
    cfg = get_config(name)
    assert (card.output.name, card.output.kind, card.output.codec, card.output.flip_shift) == (
        "heatmaps",
        "heatmap",
        "megvii",
        False,
    )
    assert json.loads(r.card_path.read_text())["output"]["codec"] == "megvii"
    assert card.extra["config"]["name"] == name and card.extra["config"]["codec"] == "megvii"
    report = lint_onnx(r.onnx_path)
    assert report.ok and not report.warnings, report.describe()
    proto = onnx.load(str(r.onnx_path))
    assert [o.name for o in proto.graph.output] == ["heatmaps"]  # the last stage's last unit only

    crops = crops_from_images(sorted(coco_tiny.glob("*.jpg")), cfg.input_size, 3)
    rt = create_runtime(r.onnx_path, cpu_settings)
    raw = rt.run({"crops": crops})[0]
    w, h = cfg.heatmap_size
    assert raw.shape == (3, cfg.num_keypoints, h, w)
    batched = card.decode(raw)
    assert_close(batched, model.predict_keypoints(crops, flip_test=False), EXPORT_TOLERANCE_PX, "ort vs torch")
    assert np.abs(batched[0, :, :2] - batched[1, :, :2]).max() > 1.0  # keypoints depend on the crop

    from inference.pose_estimator import PoseEstimator

    pe = PoseEstimator(card, rt, flip_test=True)
    assert_close(
        pe.predict_crops(crops), model.predict_keypoints(crops, flip_test=True), EXPORT_TOLERANCE_PX, "served flip test"
    )


@pytest.mark.parametrize("name", ["td-hm_2xmspn50", "td-hm_rsn18"])
def test_served_through_the_pipeline_with_flip_test(exported, coco_tiny, cpu_settings, name):
    """Export -> card -> the service's pipeline (flip test on) on a coco-tiny image == torch on the same crops."""
    from inference.imageio import decode_image
    from inference.pipeline import PosePipeline
    from models.geometry import bbox_to_center_scale, bbox_xywh2xyxy, crop_batch, keypoints_crop_to_image

    model, r = exported(name)
    size = get_config(name).input_size
    data = json.loads((coco_tiny / "test_coco.json").read_text())
    image_info = data["images"][0]
    anns = [a for a in data["annotations"] if a["image_id"] == image_info["id"]]
    rgb = decode_image((coco_tiny / image_info["file_name"]).read_bytes())
    boxes = bbox_xywh2xyxy(np.asarray([a["bbox"] for a in anns], dtype=np.float32))
    settings = cpu_settings.model_copy(update={"pose_model": r.card_path, "flip_test": True})
    got = PosePipeline.from_settings(settings, batching=False).predict(rgb, boxes)
    centers, scales = bbox_to_center_scale(boxes, size)
    torch_kpts = model.predict_keypoints(crop_batch(rgb, centers, scales, size), flip_test=True)
    ref = keypoints_crop_to_image(torch_kpts[..., :2], centers, scales, size)
    assert_close(got.keypoints[..., :2], ref, EXPORT_TOLERANCE_PX * float((scales[:, 0] / size[0]).max()), "xy")
    assert_close(got.keypoints[..., 2], torch_kpts[..., 2], EXPORT_TOLERANCE_PX, "scores")


def test_pose_export_cli(tmp_path, capsys, coco_tiny):
    """``pose-export pose <checkpoint>`` of a small RSN (our checkpoint format carries the config): ONNX + card with
    the Megvii decode, verified and linted."""
    from export.cli import main
    from models.checkpoints import save_pose_checkpoint

    torch.manual_seed(0)
    cfg = get_config("td-hm_2xrsn50")
    model = build_pose_model(cfg.replace(backbone_args={**cfg.backbone_args, **SMALL}))
    ckpt = save_pose_checkpoint(tmp_path / "rsn.pth", model, meta={"epoch": 1})
    argv = ["pose", str(ckpt), "--out", str(tmp_path / "out"), "--name", "rsn", "--check-crops", "2"]
    assert main(argv + ["--check-images", str(coco_tiny)]) == 0
    out = capsys.readouterr().out
    assert "within tolerance" in out and "lint rsn.onnx: TensorRT-ready" in out
    card = ModelCard.load(tmp_path / "out" / "rsn.json")
    assert card.output.codec == "megvii" and card.extra["config"]["backbone_args"]["num_stages"] == 2
