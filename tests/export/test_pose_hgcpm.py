"""Pose export of the stacked hourglass and CPM entries (head kind ``cpm``): small variants (the golden's
``tests/data/mmpose_hgcpm/small.json``, recipe-filled) -> ONNX + card, verified against torch through onnxruntime,
linted for TensorRT; the graph outputs the last stage's heatmaps only (card kind ``heatmap``), and the card serves
through the service's pipeline with flip test."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from export.lint import lint_onnx  # noqa: E402
from export.pose import crops_from_images, export_pose_model  # noqa: E402
from models.card import ModelCard  # noqa: E402
from models.pose_model import build_pose_model  # noqa: E402
from models.tolerance import EXPORT_TOLERANCE_PX, assert_close  # noqa: E402
from models.zoo import get_config  # noqa: E402
from models.zoo.families.hourglass_cpm import ENTRIES  # noqa: E402
from tests.golden import fill  # noqa: E402

pytestmark = pytest.mark.slow  # ONNX exports: seconds each

SMALL = json.loads((Path(__file__).resolve().parents[1] / "data" / "mmpose_hgcpm" / "small.json").read_text())


def small_config(name: str):
    s = SMALL[name]
    return get_config(name).replace(input_size=tuple(s["input_size"]), backbone_args=s["backbone_args"])


#: One entry per backbone always (with ``slow``); the other input sizes repeat the same graph (``zoo_breadth``).
EXPORTED = tuple(
    n
    if n in ("td-hm_hourglass52_coco-256x256", "td-hm_cpm_coco-256x192")
    else pytest.param(n, marks=[pytest.mark.zoo_breadth], id=n)
    for n in sorted(e.name for e in ENTRIES)
)


@pytest.mark.parametrize("name", EXPORTED)
def test_exports_the_last_stage_and_serves_with_flip_test(name, coco_tiny, cpu_settings, tmp_path):
    from inference.imageio import decode_image
    from inference.pipeline import PosePipeline
    from models.geometry import bbox_to_center_scale, bbox_xywh2xyxy, crop_batch, keypoints_crop_to_image

    cfg = small_config(name)
    size = cfg.input_size
    images = sorted(coco_tiny.glob("*.jpg"))
    model = fill(build_pose_model(cfg))  # recipe weights: O(1) heatmap logits, peaked maps
    r = export_pose_model(model, tmp_path, crops_from_images(images, size, 2), "2 coco-tiny crops", threads=1)
    assert r.max_abs_diff_px <= EXPORT_TOLERANCE_PX
    card = ModelCard.load(r.card_path)
    assert (card.output.name, card.output.kind, card.output.flip_shift) == ("heatmaps", "heatmap", True)
    proto = onnx.load(str(r.onnx_path))
    (out,) = proto.graph.output  # one output: the last stage (the earlier stages' head layers are not in the graph)
    dims = [d.dim_value for d in out.type.tensor_type.shape.dim[1:]]
    assert dims == [cfg.num_keypoints, cfg.heatmap_size[1], cfg.heatmap_size[0]]
    report = lint_onnx(r.onnx_path)
    assert report.ok and not report.warnings, report.describe()

    data = json.loads((coco_tiny / "test_coco.json").read_text())
    info = data["images"][0]
    boxes = bbox_xywh2xyxy(
        np.asarray([a["bbox"] for a in data["annotations"] if a["image_id"] == info["id"]], dtype=np.float32)
    )
    rgb = decode_image((coco_tiny / info["file_name"]).read_bytes())
    settings = cpu_settings.model_copy(update={"pose_model": r.card_path, "flip_test": True})
    got = PosePipeline.from_settings(settings, batching=False).predict(rgb, boxes)
    centers, scales = bbox_to_center_scale(boxes, size)
    crops = crop_batch(rgb, centers, scales, size)
    torch_kpts = model.predict_keypoints(crops, flip_test=True)
    ref = keypoints_crop_to_image(torch_kpts[..., :2], centers, scales, size)
    assert_close(got.keypoints[..., :2], ref, EXPORT_TOLERANCE_PX * float((scales[:, 0] / size[0]).max()), "xy")
    assert_close(got.keypoints[..., 2], torch_kpts[..., 2], EXPORT_TOLERANCE_PX, "scores")
    no_flip = keypoints_crop_to_image(model.predict_keypoints(crops, flip_test=False)[..., :2], centers, scales, size)
    assert np.abs(got.keypoints[..., :2] - no_flip).max() > 0.5  # the flip test really ran


@pytest.mark.parametrize("name", ["td-hm_hourglass52_coco-256x256", "td-hm_cpm_coco-256x192"])
def test_pose_export_command_path_loads_an_mmpose_checkpoint(name, coco_tiny, cpu_settings, tmp_path):
    """``pose-export pose <file.pth> --config ...`` (``export.pose.export_pose``): an MMPose 0.x-format file
    (``keypoint_head.`` keys, as the hourglass checkpoints are) loads strictly, exports and verifies."""
    from export.pose import export_pose

    cfg = small_config(name)
    model = fill(build_pose_model(cfg))
    state = {
        k.replace("head.", "keypoint_head.", 1) if k.startswith("head.") else k: v
        for k, v in model.state_dict().items()
    }
    pth = tmp_path / "small_mmpose0x.pth"
    torch.save({"state_dict": state, "meta": {}}, pth)
    r = export_pose(pth, tmp_path / "out", check_images=[coco_tiny], num_check_crops=2, config=cfg.to_dict(), threads=1)
    assert r.max_abs_diff_px <= EXPORT_TOLERANCE_PX
    card = ModelCard.load(r.card_path)
    assert card.output.kind == "heatmap" and card.extra["config"]["backbone"] == cfg.backbone
