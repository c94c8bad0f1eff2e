"""The ResNeSt and SCNet SimpleBaselines (``models/zoo/families/resnest_scnet.py``) against MMPose 1.3.2's own code.

Goldens in tests/data/mmpose_resnest/ come from tests/mmpose_golden/make_resnest_golden.py (MMPose in a separate
venv; parameters are filled on both sides by tests/mmpose_golden/recipe.py); the crops are
tests/data/mmpose_zoo/pipeline.npz's. Per entry:

* every row of MMPose's ``resnest_coco.yml`` / ``scnet_coco.yml`` is an entry, whose published figures, checkpoint
  URL, SHA-256 prefix, MMPose config, collection and input size are the row's;
* state-dict keys (in order) and shapes equal those of the model MMPose builds from the config (full width, built on
  torch's meta device);
* the entry at 8-channel stem and base width (same depth, head, input size and test config) gives MMPose's heatmaps,
  flip test and image keypoints / scores through the service's decode (``ModelCard.decode``) and geometry: float64
  within ``PARITY_FP64`` (the proof), float32 within ``PARITY_FP32``. SCNet's 4x4 average pool meets odd and 1-pixel
  maps here (layer4 of 384x288: 12x9 -> 3x2, resized back by nearest-neighbour).

Each comparison prints ``[resnest-parity] <what>: max deviation <value>`` (``pytest -s``).
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
from models.zoo import METRIC_COLUMNS, PoseModelConfig, get_config
from models.zoo.families.resnest_scnet import ENTRIES
from tests.golden import fill, load_npz, recipe, reldev, reporter

report = reporter("resnest-parity")

DATA = Path(__file__).resolve().parents[1] / "data"
GOLDEN = DATA / "mmpose_resnest"
NAMES = sorted(c.name for c in ENTRIES)
_YML = {"AP": "AP", "AP@0.5": "AP50", "AP@0.75": "AP75", "AR": "AR", "AR@0.5": "AR50"}


def small(name: str) -> PoseModelConfig:
    """The entry at 8-channel stem and base width, 16-channel deconvolutions (the golden script's small model)."""
    cfg = get_config(name)
    args = {**cfg.backbone_args, "stem_channels": 8, "base_channels": 8}
    return cfg.replace(backbone_args=args, deconv_out_channels=(16, 16, 16))


@functools.cache
def _npz(name: str) -> dict[str, np.ndarray]:
    return load_npz(name)


def test_golden_versions():
    v = json.loads((GOLDEN / "versions.json").read_text())
    assert v["mmpose"] == "1.3.2" and v["recipe_version"] == recipe.RECIPE_VERSION


def test_every_metafile_row_is_an_entry():
    rows = json.loads((GOLDEN / "metafiles.json").read_text())
    assert sorted(rows) == sorted(c.mmpose_config for c in ENTRIES)
    assert {r["metafile"].rsplit("/", 1)[1] for r in rows.values()} == {"resnest_coco.yml", "scnet_coco.yml"}


@pytest.mark.parametrize("name", NAMES)
def test_entry_equals_mmpose_metafile(name):
    cfg = get_config(name)
    row = json.loads((GOLDEN / "metafiles.json").read_text())[cfg.mmpose_config]
    assert row["dataset"] == "COCO" and cfg.dataset == "coco" and row["collection"] == cfg.collection
    assert cfg.published == {_YML[k]: v for k, v in row["metrics"].items()}
    assert set(cfg.published) == set(METRIC_COLUMNS["coco"])
    assert cfg.checkpoint_url == row["weights"]
    assert cfg.sha256_prefix == cfg.checkpoint_filename.rsplit("-", 1)[1][:8]
    codec = json.loads((GOLDEN / "train_configs.json").read_text())[cfg.mmpose_config]["codec"]
    assert codec["type"] == "MSRAHeatmap" and tuple(codec["input_size"]) == cfg.input_size
    assert tuple(codec["heatmap_size"]) == cfg.heatmap_size and codec["sigma"] == cfg.sigma


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
def _filled(name: str) -> dict:
    return fill(build_pose_model(small(name))).state_dict()


#: the ResNeSt-200 / 269 rows repeat ResNeSt-50's blocks 70 to 90 times (seconds each even at 8 channels): slow
SMALL_PARITY = [
    pytest.param(n, marks=pytest.mark.slow) if get_config(n).backbone_args["depth"] > 101 else n for n in NAMES
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", SMALL_PARITY)
def test_small_width_model_matches_mmpose(name, dtype):
    g = _npz(GOLDEN / f"small_{name}.npz")
    p = _npz(DATA / "mmpose_zoo" / "pipeline.npz")
    sfx, tol, tdtype = ("_f64", PARITY_FP64, torch.float64) if dtype == "float64" else ("", PARITY_FP32, torch.float32)
    cfg = small(name)
    model = build_pose_model(cfg)
    model.load_state_dict(_filled(name))
    w, h = cfg.input_size
    assert tuple(g["input_size"]) == (w, h)
    what = f"{name} (8-channel) {dtype}"
    x = model.preprocess(torch.from_numpy(p[f"crops_rgb_{w}x{h}"])).to(tdtype)
    model.to(tdtype)
    with torch.no_grad():
        single, mirrored = model(x).numpy(), model(x.flip(-1)).numpy()
    report(f"{what} heatmaps (relative)", reldev(single[:1, :1, ::4, ::4], g["raw" + sfx]), tol)
    decoded = model.card.decode(single, mirrored)
    keypoints, scores = decoded[..., :2], decoded[..., 2]
    report(
        f"{what} flip-test keypoints (normalised)",
        reldev(keypoints / [w, h], g["keypoints_crop_flip" + sfx] / [w, h]),
        tol,
    )
    report(f"{what} flip-test scores (relative)", reldev(scores, g["scores_flip" + sfx]), tol)
    centers, scales = geometry.bbox_to_center_scale(p["bboxes_xyxy"], (w, h))
    image_kp = geometry.keypoints_crop_to_image(keypoints, centers, scales, (w, h))
    dev = reldev(image_kp / scales[:, None, :], g["keypoints_image_flip" + sfx] / scales[:, None, :])
    report(f"{what} image keypoints (normalised by box scale)", dev, tol)
    report(f"{what} image scores (relative)", reldev(scores, g["scores_image_flip" + sfx]), tol)


@pytest.mark.parametrize("backbone", ["resnest", "scnet"])
def test_builders_reject_unknown_args_and_depths(backbone):
    cfg = get_config(f"td-hm_{backbone}50")
    with pytest.raises(ValueError, match="backbone_args"):
        build_pose_model(cfg.replace(backbone_args={"depth": 50, "widen": 2}))
    with pytest.raises(ValueError, match="depth 18"):
        build_pose_model(cfg.replace(backbone_args={"depth": 18}))


@pytest.mark.parametrize("name", ["td-hm_resnest50", "td-hm_resnest269_coco-384x288", "td-hm_scnet101"])
def test_published_layout_loads_strictly_and_the_file_name_picks_the_entry(name, tmp_path):
    """An MMPose 0.x-layout file (``keypoint_head.``, as the ``top_down/`` checkpoints hold it) at 8-channel width
    under the published file name loads strictly into the entry's structure (keys do not depend on the width)."""
    cfg = get_config(name)
    source = fill(build_pose_model(small(name)))
    sd = {
        (k.replace("head.", "keypoint_head.", 1) if k.startswith("head.") else k): v
        for k, v in source.state_dict().items()
    }
    path = tmp_path / cfg.checkpoint_filename
    torch.save({"state_dict": sd, "meta": {"mmpose_version": "0.14.0"}}, path)
    model, meta = load_pose_checkpoint(path, config=small(name))
    assert "converted" in meta and config_for_mmpose_file(path) is cfg
    x = torch.randn(1, 3, cfg.input_size[1], cfg.input_size[0])
    with torch.no_grad():
        assert torch.equal(model(x), source(x))
