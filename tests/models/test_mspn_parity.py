"""MSPN and RSN (``models.zoo.families.mspn_rsn``) against MMPose 1.3.2's own code.

Goldens in tests/data/mmpose_mspn/ come from tests/mmpose_golden/make_mspn_golden.py (MMPose in a separate venv;
parameters filled on both sides by tests/mmpose_golden/recipe.py). Per entry:

* the published figures, checkpoint URL, SHA-256 prefix, collection and config equal MMPose's metafile rows;
* the backbone / head arguments, heatmap size, decoder (``MegviiHeatmap``, kernel 5) and test config (flip test
  without the heatmap shift) equal the MMPose config's;
* state-dict keys (in order) and shapes equal those of the model MMPose builds from the config (full size, built on
  torch's meta device here);
* the entry at small width (``unit_channels`` 16, 2 units of (1, 2) blocks, its own stages) gives MMPose's heatmaps
  of every stage and unit, flip-test keypoints and scores and image keypoints, through the card's decode (``codec``
  ``megvii``): float64 within ``PARITY_FP64``, float32 within ``PARITY_FP32``.

And ``MegviiHeatmap`` encode / decode on random and hand-made heatmaps. Each comparison prints
``[mspn-parity] <what>: max deviation <value>`` (``pytest -s -k mspn``).
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
from models.megvii_heatmap import MEGVII_DECODE_KERNEL, MegviiHeatmap, decode_megvii_heatmaps
from models.pose_model import TopdownPoseModel, build_pose_model
from models.tolerance import PARITY_FP32, PARITY_FP64
from models.zoo import get_config
from models.zoo.families.mspn_rsn import ENTRIES
from tests.golden import fill, load_npz, recipe, reldev, reporter

report = reporter("mspn-parity")

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "mmpose_mspn"
PIPELINE = Path(__file__).resolve().parents[1] / "data" / "mmpose_zoo" / "pipeline.npz"
NAMES = [e.name for e in ENTRIES]
#: The small-width comparisons that always run (one and two stages of each network); the deeper stacks repeat the same
#: modules and are marked slow.
ALWAYS = ("td-hm_mspn50", "td-hm_2xmspn50", "td-hm_rsn18", "td-hm_2xrsn50")
SMALL_NAMES = [n if n in ALWAYS else pytest.param(n, marks=pytest.mark.slow, id=n) for n in NAMES]
SMALL = {"unit_channels": 16, "num_units": 2, "num_blocks": [1, 2]}
_YML = {"AP": "AP", "AP@0.5": "AP50", "AP@0.75": "AP75", "AR": "AR", "AR@0.5": "AR50"}


@functools.cache
def _npz(path: Path) -> dict[str, np.ndarray]:
    return load_npz(path)


@functools.cache
def _json(name: str):
    return json.loads((GOLDEN / name).read_text())


def small_config(name: str):
    cfg = get_config(name)
    return cfg.replace(backbone_args={**cfg.backbone_args, **SMALL})


def test_golden_versions():
    v = _json("versions.json")
    assert v["mmpose"] == "1.3.2" and v["recipe_version"] == recipe.RECIPE_VERSION


@pytest.mark.parametrize("name", NAMES)
def test_entry_equals_mmpose_metafile(name):
    cfg = get_config(name)
    row = _json("metafiles.json")[cfg.mmpose_config]
    assert row["dataset"] == "COCO" and cfg.dataset == "coco"
    assert cfg.checkpoint_url == row["weights"]
    assert cfg.sha256_prefix == cfg.checkpoint_filename.rsplit("-", 1)[1][:8]
    assert cfg.published == {_YML[k]: v for k, v in row["metrics"].items()}
    assert cfg.collection == row["collection"]


@pytest.mark.parametrize("name", NAMES)
def test_entry_equals_mmpose_config(name):
    """Backbone and head arguments, heatmap size, decoder and test config are the MMPose config's."""
    cfg = get_config(name)
    c = _json("configs.json")[cfg.mmpose_config]
    assert c["backbone"]["type"].lower() == cfg.backbone
    for key, value in cfg.backbone_args.items():
        assert c["backbone"][key] == value, key
    head = c["head"]
    assert head["type"] == "MSPNHead" and not head.get("use_prm", False)
    assert (head["num_stages"], head["num_units"]) == (cfg.backbone_args["num_stages"], cfg.backbone_args["num_units"])
    assert head["unit_channels"] == cfg.backbone_args["unit_channels"] and head["out_channels"] == cfg.num_keypoints
    assert tuple(head["out_shape"]) == cfg.heatmap_size[::-1]
    dec = c["decoder"]
    assert dec["type"] == "MegviiHeatmap" and cfg.codec == "megvii" and dec["kernel_size"] == MEGVII_DECODE_KERNEL
    assert tuple(dec["input_size"]) == cfg.input_size and tuple(dec["heatmap_size"]) == cfg.heatmap_size
    t = c["test_cfg"]
    assert t["flip_test"] == cfg.flip_test and t["flip_mode"] == "heatmap"
    assert t["shift_heatmap"] == cfg.shift_heatmap
    pre = c["data_preprocessor"]
    assert tuple(pre["mean"]) == cfg.mean and tuple(pre["std"]) == cfg.std and pre["bgr_to_rgb"]


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


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", SMALL_NAMES)
def test_small_model_matches_mmpose(name, dtype):
    g = _npz(GOLDEN / f"small_{name}.npz")
    p = _npz(PIPELINE)
    sfx, tol, tdtype = ("_f64", PARITY_FP64, torch.float64) if dtype == "float64" else ("", PARITY_FP32, torch.float32)
    cfg = small_config(name)
    model = fill(build_pose_model(cfg))
    w, h = cfg.input_size
    what = f"{name} (small) {dtype}"
    x = model.preprocess(torch.from_numpy(p[f"crops_rgb_{w}x{h}"])).to(tdtype)
    model.to(tdtype)
    with torch.no_grad():
        feats, feats_flip = model.backbone(x), model.backbone(x.flip(-1))
        levels = model.head.forward_all(feats)
        single, mirrored = model.head(feats), model.head(feats_flip)
    assert torch.equal(single, levels[-1])
    report(f"{what} single pass (relative)", reldev(single[:1, :2, ::4, ::4], g["raw" + sfx]), tol)
    sums = torch.stack([hm.sum((2, 3)) for hm in levels]).numpy()
    report(f"{what} every level's sums (relative)", reldev(sums, g["levels_sum" + sfx]), tol)
    maxima = torch.stack([hm.amax((2, 3)) for hm in levels]).numpy()
    report(f"{what} every level's maxima (relative)", reldev(maxima, g["levels_max" + sfx]), tol)
    decoded = model.card.decode(single.numpy(), mirrored.numpy())
    keypoints, scores = decoded[..., :2], decoded[..., 2]
    kp_dev = reldev(keypoints / [w, h], g["keypoints_crop_flip" + sfx] / [w, h])
    report(f"{what} flip-test keypoints (normalised)", kp_dev, tol)
    report(f"{what} flip-test scores (relative)", reldev(scores, g["scores_flip" + sfx]), tol)
    centers, scales = geometry.bbox_to_center_scale(p["bboxes_xyxy"], (w, h))
    image_kp = geometry.keypoints_crop_to_image(keypoints, centers, scales, (w, h))
    dev = reldev(image_kp / scales[:, None, :], g["keypoints_image_flip" + sfx] / scales[:, None, :])
    report(f"{what} image keypoints (normalised by box scale)", dev, tol)
    report(f"{what} image scores (relative)", reldev(scores, g["scores_image_flip" + sfx]), tol)


def test_megvii_encode_equals_mmpose():
    g = _npz(GOLDEN / "megvii.npz")
    for ks in (15, 11, 9, 7, 5):
        enc = MegviiHeatmap((192, 256), (48, 64), ks).encode(g["encode_keypoints"], g["encode_visible"])
        report(f"MegviiHeatmap encode kernel {ks}", reldev(enc["heatmaps"], g[f"encode_{ks}_heatmaps"]), PARITY_FP64)
        assert np.array_equal(enc["keypoint_weights"], g[f"encode_{ks}_weights"])
    assert 0 < g["encode_5_weights"].sum() < g["encode_5_weights"].size  # keypoints on and off the heatmap


@pytest.mark.parametrize("case", ["random", "random_small", "random_f64", "edge"])
def test_megvii_decode_equals_mmpose(case):
    g = _npz(GOLDEN / "megvii.npz")
    shapes = {"random": (3, 17, 64, 48), "random_small": (2, 5, 8, 6)}
    if case == "edge":
        hm = g["edge_maps"]
    elif case == "random_f64":
        hm = recipe.recipe_array("megvii/random", shapes["random"]).astype(np.float64) * 3.0
    else:
        hm = recipe.recipe_array(f"megvii/{case}", shapes[case])
    with np.errstate(invalid="ignore"):  # the all-zero edge map gives NaN in MMPose too
        keypoints, scores = decode_megvii_heatmaps(hm, (192, 256))
    assert keypoints.dtype == np.float32 and scores.dtype == hm.dtype
    report(f"MegviiHeatmap decode {case} keypoints", reldev(keypoints, g[f"decode_{case}_keypoints"]), 0.0)
    report(f"MegviiHeatmap decode {case} scores", reldev(scores, g[f"decode_{case}_scores"]), PARITY_FP64)


@pytest.mark.parametrize("name", ["td-hm_2xmspn50", "td-hm_2xrsn50"])
def test_mmpose_layout_checkpoint_loads_strictly(name, tmp_path):
    """A .pth in the published file's layout (MSPN: MMPose 0.x, the head under ``keypoint_head.``; RSN: 1.x) under its
    published name loads with strict key checking (small widths: ``config`` given)."""
    from models.checkpoints import load_pose_checkpoint

    cfg = small_config(name)
    state_dict = fill(build_pose_model(cfg)).state_dict()
    v0 = "/mmpose/top_down/" in cfg.checkpoint_url
    assert v0 == name.endswith("mspn50")
    layout = {
        (k.replace("head.", "keypoint_head.", 1) if v0 and k.startswith("head.") else k): v
        for k, v in state_dict.items()
    }
    path = tmp_path / cfg.checkpoint_filename
    torch.save({"state_dict": layout, "meta": {"mmpose_version": "0.x" if v0 else "1.0.0"}}, path)
    model, metadata = load_pose_checkpoint(path, config=cfg)
    assert metadata["format"] == "mmpose" and ("converted" in metadata) == v0
    loaded = model.state_dict()
    assert list(loaded) == list(state_dict) and all(torch.equal(loaded[k], state_dict[k]) for k in state_dict)


def test_card_codec_field():
    """``output.codec``: ``megvii`` for these entries (JSON round trip), absent from the JSON of MSRA cards (old cards
    unchanged), rejected when unknown or on a non-heatmap output."""
    from models.card import ModelCard, ModelCardError, card_for_config

    card = card_for_config(get_config("td-hm_rsn18"))
    assert (card.output.codec, card.output.flip_shift) == ("megvii", False)
    assert ModelCard.from_dict(card.to_dict()) == card and card.to_dict()["output"]["codec"] == "megvii"
    msra = card_for_config(get_config("td-hm_res50"))
    assert msra.output.codec == "msra" and "codec" not in msra.to_dict()["output"]
    bad = card.to_dict()
    bad["output"]["codec"] = "dark-ish"
    with pytest.raises(ModelCardError, match="output.codec"):
        ModelCard.from_dict(bad)
    coords = card_for_config(get_config("td-reg_res50")).to_dict()
    coords["output"]["codec"] = "megvii"
    with pytest.raises(ModelCardError, match="belongs to kind heatmap"):
        ModelCard.from_dict(coords)
    with pytest.raises(ValueError, match="codec must be one of"):
        get_config("td-hm_rsn18").replace(codec="unknown")


def test_head_kind_rejects_configs_it_cannot_build():
    with pytest.raises(ValueError, match="mspn or rsn backbone"):
        build_pose_model(
            get_config("td-hm_res50").replace(head_kind="mspn", deconv_out_channels=(), deconv_kernel_sizes=())
        )
    with pytest.raises(ValueError, match="no deconvolutions"):
        build_pose_model(get_config("td-hm_rsn18").replace(deconv_out_channels=(8,), deconv_kernel_sizes=(4,)))
    with pytest.raises(ValueError, match="unknown rsn backbone_args"):
        build_pose_model(get_config("td-hm_rsn18").replace(backbone_args={"width": 3}))
    with pytest.raises(ValueError, match="num_units 3 != len"):
        build_pose_model(small_config("td-hm_mspn50").replace(backbone_args={**SMALL, "num_units": 3}))


def test_every_entry_has_a_training_recipe():
    """MMPose trains every stage and unit on its own Megvii target (kernels 15 / 11 / 9 / 7 / 5, OHKM on the last
    units): ported (``training.configs.mspn``, checked in tests/training/test_mspn_training.py), so ``pose-train``
    offers every entry."""
    from training.configs import CONFIGS

    assert set(NAMES) <= set(CONFIGS)


@pytest.mark.slow  # full size: 9M (RSN-18) to 120M (4xMSPN-50) parameters
@pytest.mark.parametrize("name", NAMES)
def test_full_size_model_builds_and_predicts(name):
    """The full model (MMPose's initialisation) on one crop: the heatmaps at input / 4, finite, decoded with the flip
    test to keypoints inside the crop."""
    cfg = get_config(name)
    model = build_pose_model(name)
    w, h = cfg.input_size
    crops = np.random.default_rng(0).integers(0, 256, (1, h, w, 3), dtype=np.uint8)
    with torch.no_grad():
        out = model(model.preprocess(torch.from_numpy(crops)))
    assert tuple(out.shape) == (1, cfg.num_keypoints, h // 4, w // 4) and torch.isfinite(out).all()
    kpts = model.predict_keypoints(crops)
    assert kpts.shape == (1, cfg.num_keypoints, 3) and np.isfinite(kpts).all()
    assert (kpts[..., 0] >= -4).all() and (kpts[..., 0] <= w).all() and (kpts[..., 1] <= h).all()
