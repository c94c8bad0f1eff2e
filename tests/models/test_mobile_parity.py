"""The mobile zoo family (MobileNetV2, ShuffleNet v1 / v2; SimpleBaseline heads and MobileNetV2 + RLE) against MMPose
1.3.2's own code.

Goldens in tests/data/mmpose_mobile/ come from tests/mmpose_golden/make_mobile_golden.py (MMPose in a separate venv;
parameters are filled on both sides by tests/mmpose_golden/recipe.py). Per entry of ``models.zoo.families.mobile``:

* the published figures, checkpoint URL, SHA-256 prefix, collection and MMPose config equal MMPose's metafile row;
* state-dict keys (in order) and shapes equal those of the model MMPose builds from the config (full width, built on
  torch's meta device);
* the entry at the test width (:data:`SMALL`: backbone ``widen_factor``, 16-channel deconvolutions) gives MMPose's
  single pass, flip test and image keypoints / scores, through the service's decode (``ModelCard.decode``) and
  geometry: float64 within ``PARITY_FP64`` (the proof), float32 within ``PARITY_FP32``; four entries also at full
  width (``slow``).

Coordinates are compared in normalised units relative to max(1, their largest magnitude), as in
``tests/models/test_zoo_parity.py``. Each test prints ``[mobile-parity] <what>: max deviation <value>``
(``pytest -s``).
"""

from __future__ import annotations

import functools
import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from models import geometry
from models.backbones.mobilenet_v2 import MobileNetV2, make_divisible
from models.backbones.shufflenet import ShuffleNetV1, ShuffleNetV2, channel_shuffle
from models.heads import head_kind
from models.pose_model import TopdownPoseModel, build_pose_model
from models.tolerance import PARITY_FP32, PARITY_FP64
from models.zoo import ZOO, get_config
from models.zoo.families.mobile import ENTRIES
from tests.golden import fill, load_npz, recipe, reldev, reporter

report = reporter("mobile-parity")

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "mmpose_mobile"
NAMES = [c.name for c in ENTRIES]
#: backbone -> its test width (make_mobile_golden.py's ``SMALL``)
SMALL = {
    "mobilenetv2": {"widen_factor": 0.25},
    "shufflenetv1": {"groups": 3, "widen_factor": 0.5},
    "shufflenetv2": {"widen_factor": 0.5},
}
FULL = ("td-hm_mobilenetv2", "td-hm_shufflenetv1", "td-hm_shufflenetv2", "td-reg_mobilenetv2_rle-pretrained")
_YML = {"AP": "AP", "AP@0.5": "AP50", "AP@0.75": "AP75", "AR": "AR", "AR@0.5": "AR50"}


@functools.cache
def npz(name: str) -> dict[str, np.ndarray]:
    return load_npz(GOLDEN / name)


def small_config(name: str):
    cfg = get_config(name)
    return cfg.replace(backbone_args=SMALL[cfg.backbone], deconv_out_channels=(16, 16, 16))


def test_golden_versions_and_every_entry_has_goldens():
    v = json.loads((GOLDEN / "versions.json").read_text())
    assert v["mmpose"] == "1.3.2" and v["recipe_version"] == recipe.RECIPE_VERSION
    with gzip.open(GOLDEN / "state_dict_shapes.json.gz", "rt", encoding="utf-8") as f:
        assert sorted(json.load(f)) == sorted(NAMES)
    assert all((GOLDEN / f"small_{n}.npz").is_file() for n in NAMES)
    assert all(n in ZOO for n in NAMES) and len(NAMES) == 7


@pytest.mark.parametrize("name", NAMES)
def test_entry_equals_mmpose_metafile(name):
    cfg = get_config(name)
    row = json.loads((GOLDEN / "metafiles.json").read_text())[cfg.mmpose_config]
    assert row["dataset"].lower() == cfg.dataset == "coco" and row["collection"] == cfg.collection
    assert cfg.checkpoint_url == row["weights"]
    assert cfg.sha256_prefix == cfg.checkpoint_filename.rsplit("-", 1)[1][:8]
    assert cfg.published == {_YML[k]: v for k, v in row["metrics"].items()}
    assert row["name"] == Path(cfg.mmpose_config).stem


@pytest.mark.parametrize("name", NAMES)
def test_entry_config_equals_mmpose_config(name):
    """Input size, heatmap size and sigma (the codec), backbone arguments, head kind and score mode."""
    cfg = get_config(name)
    t = json.loads((GOLDEN / "train_configs.json").read_text())[cfg.mmpose_config]
    assert tuple(t["codec"]["input_size"]) == cfg.input_size
    backbone = {k: v for k, v in t["backbone"].items() if k not in ("type", "out_indices")}
    assert backbone == cfg.backbone_args and t["backbone"]["type"].lower() == cfg.backbone
    if cfg.head_kind == "heatmap":
        assert t["codec"]["type"] == "MSRAHeatmap" and tuple(t["codec"]["heatmap_size"]) == cfg.heatmap_size
        assert t["codec"]["sigma"] == cfg.sigma
    else:
        assert t["codec"]["type"] == "RegressionLabel" and t["losses"] == ["RLELoss"]
        assert (t["evaluator"]["score_mode"] or "bbox_keypoint") == cfg.score_mode == "bbox_rle"


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_keys_and_shapes_equal_mmpose(name):
    with gzip.open(GOLDEN / "state_dict_shapes.json.gz", "rt", encoding="utf-8") as f:
        expected = json.load(f)[name]
    with torch.device("meta"):
        model = TopdownPoseModel(get_config(name))
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert list(ours) == list(expected), (
        f"keys differ: missing {sorted(set(expected) - set(ours))[:5]}, unexpected {sorted(set(ours) - set(expected))[:5]}"
    )
    wrong = {k: (ours[k], expected[k]) for k in expected if ours[k] != expected[k]}
    assert not wrong, wrong


@functools.cache
def _filled(name: str, small: bool) -> dict:
    return fill(build_pose_model(small_config(name) if small else get_config(name))).state_dict()


def _compare_model(name: str, dtype: str, small: bool) -> None:
    g = npz(f"{'small' if small else 'full'}_{name}.npz")
    p = npz("pipeline.npz")
    sfx, tol, tdtype = ("_f64", PARITY_FP64, torch.float64) if dtype == "float64" else ("", PARITY_FP32, torch.float32)
    cfg = small_config(name) if small else get_config(name)
    model = build_pose_model(cfg)
    model.load_state_dict(_filled(name, small))
    w, h = cfg.input_size
    assert tuple(g["input_size"]) == (w, h)
    what = f"{name}{' (small)' if small else ''} {dtype}"
    x = model.preprocess(torch.from_numpy(p[f"crops_rgb_{w}x{h}"])).to(tdtype)
    model.to(tdtype)
    with torch.no_grad():
        feats, feats_flip = model.backbone(x), model.backbone(x.flip(-1))
        single, mirrored = model.head(feats).numpy(), model.head(feats_flip).numpy()
        raw = model.head.forward_raw(feats).numpy() if head_kind(cfg.head_kind).raw_is_coordinates else None
    report(
        f"{what} single pass (relative)", reldev(single[:1, :1, ::4, ::4] if raw is None else raw, g["raw" + sfx]), tol
    )
    decoded = model.card.decode(single, mirrored)
    keypoints, scores = decoded[..., :2], decoded[..., 2]
    kp_dev = reldev(keypoints / [w, h], g["keypoints_crop_flip" + sfx] / [w, h])
    report(f"{what} flip-test keypoints (normalised, relative)", kp_dev, tol)
    report(f"{what} flip-test scores (relative)", reldev(scores, g["scores_flip" + sfx]), tol)
    centers, scales = geometry.bbox_to_center_scale(p["bboxes_xyxy"], (w, h))
    np.testing.assert_allclose(centers, p[f"input_center_{w}x{h}"], atol=1e-4)
    image_kp = geometry.keypoints_crop_to_image(keypoints, centers, scales, (w, h))
    dev = reldev(image_kp / scales[:, None, :], g["keypoints_image_flip" + sfx] / scales[:, None, :])
    report(f"{what} image keypoints (normalised by box scale, relative)", dev, tol)
    report(f"{what} image scores (relative)", reldev(scores, g["scores_image_flip" + sfx]), tol)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", NAMES)
def test_small_width_model_matches_mmpose(name, dtype):
    _compare_model(name, dtype, small=True)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", FULL)
def test_full_width_model_matches_mmpose(name, dtype):
    _compare_model(name, dtype, small=False)


def test_goldens_are_informative():
    """The random networks' keypoints spread over the crop (a constant answer would match by accident)."""
    for name in NAMES:
        kp = npz(f"small_{name}.npz")["keypoints_crop_flip_f64"]
        assert np.unique(np.round(kp.reshape(-1, 2), 3), axis=0).shape[0] >= 10, name


def test_backbone_widths_and_errors():
    assert [make_divisible(c * 0.25, 8) for c in (32, 16, 24, 320)] == [8, 8, 8, 80]
    assert MobileNetV2(1.5).out_channels == 1920 and MobileNetV2(0.5).out_channels == 1280
    assert ShuffleNetV1(groups=1, widen_factor=0.5).out_channels == 288
    assert ShuffleNetV2(2.0).out_channels == 2048
    x = torch.arange(12.0).view(1, 12, 1, 1)
    assert channel_shuffle(x, 3).flatten().tolist() == [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]
    with pytest.raises(ValueError, match="widen_factor"):
        ShuffleNetV2(0.75)
    with pytest.raises(ValueError, match="groups"):
        ShuffleNetV1(groups=5)
    with pytest.raises(ValueError, match="divisible"):
        ShuffleNetV1(groups=3, widen_factor=0.25)
    with pytest.raises(ValueError, match="positive"):
        MobileNetV2(0.0)
    with pytest.raises(ValueError, match="backbone_args"):
        build_pose_model(get_config("td-hm_mobilenetv2").replace(backbone_args={"depth": 3}))
    with pytest.raises(ValueError, match="backbone_args"):
        build_pose_model(get_config("td-hm_shufflenetv2").replace(backbone_args={"groups": 3}))


@pytest.mark.parametrize("name", NAMES)
def test_mmpose_layout_checkpoint_loads_strictly_and_gives_the_same_outputs(name, tmp_path):
    """An MMPose 1.x file (``state_dict`` under ``backbone.`` / ``head.``, ``meta``) under the entry's published file
    name: the name alone picks the entry, the keys load strictly (at the test width: the keys do not depend on it)
    and the loaded model computes what the saved one does."""
    from models.checkpoints import config_for_mmpose_file, load_pose_checkpoint

    cfg, small = get_config(name), small_config(name)
    source = fill(build_pose_model(small))
    path = tmp_path / cfg.checkpoint_filename
    torch.save({"state_dict": dict(source.state_dict()), "meta": {"mmpose_version": "1.0.0rc0"}}, path)
    model, meta = load_pose_checkpoint(path, config=small)
    assert meta["format"] == "mmpose" and "converted" not in meta
    assert config_for_mmpose_file(path, "0" * 64).name == name
    x = torch.from_numpy(recipe.recipe_array("mobile_ckpt_input", (1, 3, cfg.input_size[1], cfg.input_size[0])))
    with torch.no_grad():
        assert torch.equal(model(x), source(x))
