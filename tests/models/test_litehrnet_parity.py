"""The Lite-HRNet zoo rows against MMPose 1.3.2's own code.

Goldens in tests/data/mmpose_litehrnet/ come from tests/mmpose_golden/make_litehrnet_golden.py (MMPose in a separate
venv; parameters filled on both sides by tests/mmpose_golden/recipe.py). Per entry of
``models/zoo/families/litehrnet.py``:

* the published figures, checkpoint URL, SHA-256 prefix, collection and config equal ``litehrnet_coco.yml``'s row;
* state-dict keys (in order) and shapes equal those of MMPose's model at full width;
* the entry with a narrow ``extra`` (16-channel stem and first branch; same stages, modules, blocks, iterative head,
  input size and test config) gives MMPose's heatmaps, flip-test crop keypoints / scores and image keypoints / scores
  through the service's decode (``ModelCard.decode``) and geometry: float64 within ``PARITY_FP64``, float32 within
  ``PARITY_FP32``. Random Lite-HRNets amplify their input (heatmaps up to ~1e5 for LiteHRNet-30), so heatmaps are
  compared relative to max(1, their largest magnitude). Each test prints ``[litehrnet-parity] <what>: max deviation``
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
from models.checkpoints.remap import mmpose_v1_keys
from models.pose_model import TopdownPoseModel, build_pose_model
from models.tolerance import PARITY_FP32, PARITY_FP64
from models.zoo import METRIC_COLUMNS, get_config
from models.zoo.families.litehrnet import ENTRIES
from tests.golden import fill, load_npz, recipe, reldev, reporter

report = reporter("litehrnet-parity")

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "mmpose_litehrnet"
NAMES = [c.name for c in ENTRIES]
_YML = {"AP": "AP", "AP@0.5": "AP50", "AP@0.75": "AP75", "AR": "AR", "AR@0.5": "AR50"}


@functools.cache
def npz(name: str) -> dict[str, np.ndarray]:
    return load_npz(GOLDEN / name)


def small_config(name: str):
    """The entry with the narrow ``extra`` the golden used (stored in its file)."""
    return get_config(name).replace(backbone_args={"extra": json.loads(str(npz(f"small_{name}.npz")["small_extra"]))})


def test_golden_versions():
    v = json.loads((GOLDEN / "versions.json").read_text())
    assert v["mmpose"] == "1.3.2" and v["recipe_version"] == recipe.RECIPE_VERSION


@pytest.mark.parametrize("name", NAMES)
def test_entry_equals_mmpose_metafile(name):
    cfg = get_config(name)
    rows = json.loads((GOLDEN / "metafiles.json").read_text())
    assert set(rows) == {c.mmpose_config for c in ENTRIES}  # every COCO row of litehrnet_coco.yml
    row = rows[cfg.mmpose_config]
    assert row["dataset"].lower() == cfg.dataset == "coco" and row["collection"] == cfg.collection
    metrics = {_YML[k]: v for k, v in row["metrics"].items()}
    assert set(metrics) == set(METRIC_COLUMNS["coco"]) and cfg.published == metrics
    assert cfg.checkpoint_url == row["weights"]
    assert cfg.sha256_prefix == cfg.checkpoint_filename.rsplit("-", 1)[1][:8]


@pytest.mark.parametrize("name", NAMES)
def test_entry_equals_mmpose_config(name):
    """Backbone ``extra``, head (no deconvolutions, 40 input channels), codec and test config are the config's."""
    cfg = get_config(name)
    t = json.loads((GOLDEN / "train_configs.json").read_text())[cfg.mmpose_config]
    assert cfg.backbone_args == {"extra": t["extra"]}
    assert t["head"] == {"in_channels": 40, "out_channels": cfg.num_keypoints, "deconv_out_channels": None}
    assert cfg.deconv_out_channels == () and build_pose_model(name).backbone.out_channels == 40
    codec = t["codec"]
    assert codec["type"] == "MSRAHeatmap" and tuple(codec["input_size"]) == cfg.input_size
    assert tuple(codec["heatmap_size"]) == cfg.heatmap_size and codec["sigma"] == cfg.sigma
    assert t["test_cfg"] == {"flip_test": cfg.flip_test, "flip_mode": "heatmap", "shift_heatmap": cfg.shift_heatmap}


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


def test_mmpose_0x_checkpoint_keys_load_strictly():
    """The metafiles' checkpoints are MMPose 0.x files: the same backbone keys, the head under ``keypoint_head.``
    (``TopdownHeatmapSimpleHead`` without deconvolutions: ``final_layer``); the v1 rename makes them load strictly."""
    with torch.device("meta"):
        model = TopdownPoseModel(get_config("td-hm_litehrnet-18"))
    sd = model.state_dict()
    v0 = {k.replace("head.", "keypoint_head.", 1) if k.startswith("head.") else k: v for k, v in sd.items()}
    assert "keypoint_head.final_layer.weight" in v0
    assert list(mmpose_v1_keys(v0)) == list(sd)


@functools.cache
def _filled(name: str) -> dict:
    return fill(build_pose_model(small_config(name))).state_dict()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", NAMES)
def test_small_width_model_matches_mmpose(name, dtype):
    g, p = npz(f"small_{name}.npz"), npz("pipeline.npz")
    sfx, tol, tdtype = ("_f64", PARITY_FP64, torch.float64) if dtype == "float64" else ("", PARITY_FP32, torch.float32)
    cfg = small_config(name)
    model = build_pose_model(cfg)
    model.load_state_dict(_filled(name))
    w, h = cfg.input_size
    assert tuple(g["input_size"]) == (w, h)
    what = f"{name} (narrow) {dtype}"
    x = model.preprocess(torch.from_numpy(p[f"crops_rgb_{w}x{h}"])).to(tdtype)
    model.to(tdtype)
    with torch.no_grad():
        single, mirrored = model(x).numpy(), model(x.flip(-1)).numpy()
    report(f"{what} heatmaps (relative)", reldev(single[:1, :1], g["raw" + sfx]), tol)
    assert np.abs(single).max() == pytest.approx(float(g["heatmap_absmax" + sfx]), rel=tol)
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


def test_mmpose_0x_file_under_its_published_name_loads_strictly(tmp_path):
    """A file in the published 0.x layout (``keypoint_head.``, MMPose 0.x meta) under the metafile's file name: the
    name picks the entry, the keys are renamed and load strictly, the weights arrive unchanged (narrow model: the keys
    do not depend on the width)."""
    from models.checkpoints import load_pose_checkpoint

    cfg = get_config("td-hm_litehrnet-30_coco-384x288")
    small = small_config(cfg.name)
    source = fill(build_pose_model(small)).state_dict()
    v0 = {("keypoint_head." + k[5:] if k.startswith("head.") else k): v for k, v in source.items()}
    path = tmp_path / cfg.checkpoint_filename
    torch.save({"state_dict": v0, "meta": {"mmpose_version": "0.21.0"}}, path)
    model, meta = load_pose_checkpoint(path, config=small)
    assert meta["format"] == "mmpose" and "converted" in meta
    loaded = model.state_dict()
    assert list(loaded) == list(source) and all(torch.equal(loaded[k], source[k]) for k in source)
