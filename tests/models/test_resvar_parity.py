"""ResNetV1d / ResNeXt / SEResNet / AlexNet SimpleBaselines (``models.zoo.families.resnet_variants``) against MMPose.

Goldens in tests/data/mmpose_resvar/ come from tests/mmpose_golden/make_resvar_golden.py (MMPose 1.3.2 in a separate
venv; parameters filled on both sides by tests/mmpose_golden/recipe.py). Per entry:

* every COCO row of MMPose's ``{resnetv1d,resnext,seresnet,alexnet}_coco.yml`` is an entry, and its published figures,
  checkpoint URL, SHA-256 prefix and config path are the row's;
* the config follows MMPose's: backbone type and depth, head ``in_channels`` (= our backbone's ``out_channels``),
  deconvolutions, codec input / heatmap size and sigma, ``test_cfg`` flip test and ``shift_heatmap``;
* state-dict keys (in order) and shapes equal the model MMPose builds from the config at full width (torch's meta
  device here);
* the ResNet variants at small width (stem / base 8, ResNeXt 4 groups x 2; 16-channel deconvolutions) and AlexNet at
  full width give MMPose's single pass, flip test and image keypoints / scores through ``ModelCard.decode`` and
  ``models.geometry``: float64 within ``PARITY_FP64``, float32 within ``PARITY_FP32``;
* an MMPose 0.x-layout file under the published name (``keypoint_head.``) loads strictly and is recognised.

Each comparison prints ``[resvar-parity] <what>: max deviation <value>`` (``pytest -s``).
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
from models.checkpoints import config_for_mmpose_file, load_pose_checkpoint
from models.pose_model import TopdownPoseModel, build_pose_model
from models.tolerance import PARITY_FP32, PARITY_FP64
from models.zoo import PoseModelConfig, get_config
from models.zoo.families.resnet_variants import ENTRIES
from tests.golden import fill, load_npz, recipe, reldev, reporter
from tests.small_models import small_backbone

report = reporter("resvar-parity")

DATA = Path(__file__).resolve().parents[1] / "data"
GOLDEN = DATA / "mmpose_resvar"
NAMES = [c.name for c in ENTRIES]
FULL = ("td-hm_alexnet",)
_YML = {"AP": "AP", "AP@0.5": "AP50", "AP@0.75": "AP75", "AR": "AR", "AR@0.5": "AR50"}
_TYPES = {"resnetv1d": "ResNetV1d", "resnext": "ResNeXt", "seresnet": "SEResNet", "alexnet": "AlexNet"}


def small_config(name: str) -> PoseModelConfig:
    """The entry at the goldens' small width (AlexNet stays full: it has no width argument in MMPose)."""
    cfg = get_config(name)
    if name in FULL:
        return cfg
    return small_backbone(cfg).replace(deconv_out_channels=(16, 16, 16))  # the goldens' widths (8, ResNeXt 4x2)


@functools.cache
def _json(name: str):
    if name.endswith(".gz"):
        with gzip.open(GOLDEN / name, "rt", encoding="utf-8") as f:
            return json.load(f)
    return json.loads((GOLDEN / name).read_text())


@functools.cache
def _npz(path: Path) -> dict[str, np.ndarray]:
    return load_npz(path)


def test_golden_versions():
    v = _json("versions.json")
    assert v["mmpose"] == "1.3.2" and v["recipe_version"] == recipe.RECIPE_VERSION


def test_every_metafile_row_is_an_entry():
    assert sorted(_json("metafiles.json")) == sorted(c.mmpose_config for c in ENTRIES)
    assert sorted(_json("model_configs.json")) == sorted(_json("state_dict_shapes.json.gz")) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_entry_equals_mmpose_metafile(name):
    cfg = get_config(name)
    row = _json("metafiles.json")[cfg.mmpose_config]
    assert row["dataset"] == "COCO" and cfg.dataset == "coco"
    assert cfg.published == {_YML[k]: v for k, v in row["metrics"].items()}
    assert cfg.checkpoint_url == row["weights"]
    assert cfg.sha256_prefix == cfg.checkpoint_filename.rsplit("-", 1)[1][:8]
    assert cfg.collection == "SimpleBaseline2D" and cfg.score_mode == "bbox_keypoint"


@pytest.mark.parametrize("name", NAMES)
def test_entry_follows_its_mmpose_config(name):
    cfg, want = get_config(name), _json("model_configs.json")[name]
    assert want["backbone"]["type"] == _TYPES[cfg.backbone]
    assert want["backbone"].get("depth") == cfg.backbone_args.get("depth")
    with torch.device("meta"):
        model = TopdownPoseModel(cfg)
    assert model.backbone.out_channels == want["head"]["in_channels"]
    assert want["head"]["type"] == "HeatmapHead" and cfg.head_kind == "heatmap"
    assert cfg.num_keypoints == want["head"]["out_channels"]
    assert list(cfg.deconv_out_channels) == want["head"]["deconv_out_channels"]
    assert list(cfg.deconv_kernel_sizes) == want["head"]["deconv_kernel_sizes"]
    assert want["codec"]["type"] == "MSRAHeatmap"
    assert list(cfg.input_size) == want["codec"]["input_size"]
    assert list(cfg.heatmap_size) == want["codec"]["heatmap_size"]
    assert cfg.sigma == want["codec"]["sigma"]
    t = want["test_cfg"]
    assert (t["flip_test"], t["flip_mode"], t["shift_heatmap"]) == (cfg.flip_test, "heatmap", cfg.shift_heatmap)


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_keys_and_shapes_equal_mmpose(name):
    expected = _json("state_dict_shapes.json.gz")[name]
    with torch.device("meta"):
        model = TopdownPoseModel(get_config(name))
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert list(ours) == list(expected), (
        f"missing {sorted(set(expected) - set(ours))[:5]}, unexpected {sorted(set(ours) - set(expected))[:5]}"
    )
    wrong = {k: (ours[k], expected[k]) for k in expected if ours[k] != expected[k]}
    assert not wrong, wrong


#: float32 runs always made: one per backbone (the others are ``slow``: float64 is the proof for every entry).
FP32_ALWAYS = ("td-hm_resnetv1d50", "td-hm_resnext50", "td-hm_seresnet50", "td-hm_alexnet")
PARITY_RUNS = [(n, "float64") for n in NAMES] + [
    (n, "float32") if n in FP32_ALWAYS else pytest.param(n, "float32", marks=pytest.mark.slow, id=f"{n}-float32")
    for n in NAMES
]


@pytest.mark.parametrize(("name", "dtype"), PARITY_RUNS)
def test_model_matches_mmpose(name, dtype):
    """Single pass, flip test (``shift_heatmap``) and image keypoints of the small-width (AlexNet: full) model."""
    cfg = small_config(name)
    g = _npz(GOLDEN / f"{'full' if name in FULL else 'small'}_{name}.npz")
    p = _npz(DATA / "mmpose_zoo" / "pipeline.npz")
    sfx, tol, tdtype = ("_f64", PARITY_FP64, torch.float64) if dtype == "float64" else ("", PARITY_FP32, torch.float32)
    model = fill(build_pose_model(cfg))
    w, h = cfg.input_size
    assert tuple(g["input_size"]) == (w, h)
    # normalised in float32 as MMPose's data preprocessor does, then cast
    x = model.preprocess(torch.from_numpy(p[f"crops_rgb_{w}x{h}"])).to(tdtype)
    model.to(tdtype)
    with torch.no_grad():
        single, mirrored = model.head(model.backbone(x)).numpy(), model.head(model.backbone(x.flip(-1))).numpy()
    report(f"{name} {dtype} single pass (relative)", reldev(single[:1, :1, ::4, ::4], g["raw" + sfx]), tol)
    decoded = model.card.decode(single, mirrored)
    keypoints, scores = decoded[..., :2], decoded[..., 2]
    dev = reldev(keypoints / [w, h], g["keypoints_crop_flip" + sfx] / [w, h])
    report(f"{name} {dtype} flip-test keypoints (normalised)", dev, tol)
    report(f"{name} {dtype} flip-test scores (relative)", reldev(scores, g["scores_flip" + sfx]), tol)
    centers, scales = geometry.bbox_to_center_scale(p["bboxes_xyxy"], (w, h))
    image_kp = geometry.keypoints_crop_to_image(keypoints, centers, scales, (w, h))
    dev = reldev(image_kp / scales[:, None, :], g["keypoints_image_flip" + sfx] / scales[:, None, :])
    report(f"{name} {dtype} image keypoints (normalised by box scale)", dev, tol)
    report(f"{name} {dtype} image scores (relative)", reldev(scores, g["scores_image_flip" + sfx]), tol)


@pytest.mark.parametrize("name", ["td-hm_resnetv1d101", "td-hm_resnext50_coco-384x288", "td-hm_seresnet152", *FULL])
def test_published_layout_loads_strictly(name, tmp_path):
    """A file in the published layout (0.x: ``keypoint_head.``) under the published name loads strictly into the
    entry's structure (small width: keys do not depend on it) and the name alone picks the entry."""
    cfg = get_config(name)
    source = fill(build_pose_model(small_config(name)))
    sd = dict(source.state_dict())
    if "/mmpose/top_down/" in cfg.checkpoint_url:
        sd = {(k.replace("head.", "keypoint_head.", 1) if k.startswith("head.") else k): v for k, v in sd.items()}
    path = tmp_path / cfg.checkpoint_filename
    torch.save({"state_dict": sd, "meta": {"mmpose_version": "0.x"}}, path)
    model, meta = load_pose_checkpoint(path, config=small_config(name))
    assert ("converted" in meta) == ("/mmpose/top_down/" in cfg.checkpoint_url)
    x = torch.randn(1, 3, cfg.input_size[1], cfg.input_size[0])
    with torch.no_grad():
        assert torch.equal(model(x), source(x))
    assert config_for_mmpose_file(path) is cfg


def test_backbone_args_are_checked():
    cfg = get_config("td-hm_resnext50")
    for bad, match in (
        ({"backbone_args": {"depth": 50, "width": 3}}, "unknown backbone_args"),
        ({"backbone_args": {"depth": 34}}, "depth 34"),
        ({"backbone_depth": 101}, "backbone_args"),
        ({"backbone": "alexnet", "backbone_args": {"channels": [8, 8]}}, "five positive"),
    ):
        with pytest.raises(ValueError, match=match):
            build_pose_model(cfg.replace(**bad))
