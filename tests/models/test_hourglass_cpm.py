"""The stacked hourglass and CPM entries (``models.zoo.families.hourglass_cpm``) against MMPose 1.3.2's own code.

Goldens in tests/data/mmpose_hgcpm/ come from tests/mmpose_golden/make_hgcpm_golden.py (MMPose in a separate venv;
parameters filled on both sides by tests/mmpose_golden/recipe.py):

* the published figures, checkpoint URL, SHA-256 prefix and collection equal MMPose's metafiles
  (``hourglass_coco.yml``, ``cpm_coco.yml``); the structure, heatmap size, sigma and test config equal the configs';
* state-dict keys (in order) and shapes equal MMPose's models at full width (built on torch's meta device here);
* a small variant of each entry (the backbones' fixed widths kept, the configurable ones and the input shrunk;
  ``small.json``) gives MMPose's per-stage heatmaps, flip-test keypoints and scores (``CPMHead.predict``: the last
  stage) and image keypoints, through the service's decode (``ModelCard.decode``), and ``CPMHead.loss`` (KeypointMSE
  per stage, summed) through ``train_forward`` + ``training.losses.pose_loss``: float64 within ``PARITY_FP64``,
  float32 within ``PARITY_FP32``. Each prints ``[hgcpm-parity] <what>: max deviation <value>``.
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
from models.backbones import backbone_spec
from models.codecs import flip_back_keypoints
from models.heads.cpm import CPMHead, num_stages
from models.pose_model import TopdownPoseModel, build_pose_model
from models.tolerance import PARITY_FP32, PARITY_FP64
from models.zoo import ZOO, get_config
from models.zoo.families.hourglass_cpm import ENTRIES
from tests.golden import fill, load_npz, recipe
from training.losses import pose_loss

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "mmpose_hgcpm"
NAMES = sorted(e.name for e in ENTRIES)
_YML = {"AP": "AP", "AP@0.5": "AP50", "AP@0.75": "AP75", "AR": "AR", "AR@0.5": "AR50"}


def report(what: str, dev: float, tol: float) -> None:
    print(f"[hgcpm-parity] {what}: max deviation {dev:.3g}")
    assert dev <= tol, f"{what}: max deviation {dev:.3g} > {tol:g}"


def reldev(got, want) -> float:
    """max |got - want| / max(1, max |want|) in float64."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, f"shape {got.shape} vs {want.shape}"
    return float(np.abs(got - want).max() / max(1.0, float(np.abs(want).max())))


@functools.cache
def golden_json(name: str):
    return json.loads((GOLDEN / name).read_text())


@functools.cache
def golden_npz(name: str) -> dict[str, np.ndarray]:
    return load_npz(GOLDEN / f"small_{name}.npz")


def small_config(name: str):
    s = golden_json("small.json")[name]
    return get_config(name).replace(input_size=tuple(s["input_size"]), backbone_args=s["backbone_args"])


def test_golden_versions_and_every_entry_in_the_zoo():
    v = golden_json("versions.json")
    assert v["mmpose"] == "1.3.2" and v["recipe_version"] == recipe.RECIPE_VERSION
    assert set(NAMES) <= set(ZOO) and set(golden_json("metafiles.json")) == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_entry_equals_mmpose_metafile(name):
    cfg, row = get_config(name), golden_json("metafiles.json")[name]
    assert cfg.mmpose_config == row["config"] and row["dataset"].lower() == cfg.dataset == "coco"
    assert cfg.checkpoint_url == row["weights"] and cfg.collection == row["collection"]
    assert cfg.sha256_prefix == cfg.checkpoint_filename.rsplit("-", 1)[1][:8]
    assert cfg.published == {_YML[k]: v for k, v in row["metrics"].items()}


@pytest.mark.parametrize("name", NAMES)
def test_entry_structure_equals_mmpose_config(name):
    """Backbone and head arguments, codec (input size, heatmap size = input / the registry's stride, sigma) and
    the test config (flip test, heatmap flip with shift) are the MMPose config's."""
    cfg, t = get_config(name), golden_json("train_configs.json")[name]
    assert t["codec"]["type"] == "MSRAHeatmap"
    assert tuple(t["codec"]["input_size"]) == cfg.input_size and tuple(t["codec"]["heatmap_size"]) == cfg.heatmap_size
    assert t["codec"]["sigma"] == cfg.sigma
    assert cfg.input_size[0] // backbone_spec(cfg.backbone).stride == cfg.heatmap_size[0]
    assert t["backbone"]["type"] == {"hourglass": "HourglassNet", "cpm": "CPM"}[cfg.backbone]
    assert {k: v for k, v in t["backbone"].items() if k not in ("type", "in_channels", "out_channels")} == (
        cfg.backbone_args
    )
    assert t["head"]["type"] == "CPMHead" and t["head"]["num_stages"] == num_stages(cfg)
    assert t["head"]["out_channels"] == cfg.num_keypoints and t["head"]["deconv_out_channels"] is None
    assert (t["head"].get("final_layer", "default") is None) == (cfg.backbone == "cpm")
    assert t["test_cfg"] == {"flip_test": cfg.flip_test, "flip_mode": "heatmap", "shift_heatmap": cfg.shift_heatmap}
    assert t["loss"] == {"type": "KeypointMSELoss", "use_target_weight": True}


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_keys_and_shapes_equal_mmpose(name):
    with gzip.open(GOLDEN / "state_dict_shapes.json.gz", "rt", encoding="utf-8") as f:
        expected = json.load(f)[name]
    with torch.device("meta"):
        model = TopdownPoseModel(get_config(name))
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert list(ours) == list(expected), (
        f"missing {sorted(set(expected) - set(ours))[:5]}, unexpected {sorted(set(ours) - set(expected))[:5]}"
    )
    assert ours == expected


@functools.cache
def _filled_state(name: str) -> dict:
    return fill(build_pose_model(small_config(name))).state_dict()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", NAMES)
def test_small_model_matches_mmpose(name, dtype):
    g = golden_npz(name)
    sfx, tol, tdtype = ("_f64", PARITY_FP64, torch.float64) if dtype == "float64" else ("", PARITY_FP32, torch.float32)
    cfg = small_config(name)
    model = build_pose_model(cfg)
    model.load_state_dict(_filled_state(name))
    w, h = cfg.input_size
    assert tuple(g["input_size"]) == (w, h)
    what = f"{name} (small) {dtype}"
    x = model.preprocess(torch.from_numpy(g["crops_rgb"])).to(tdtype)
    model.to(tdtype)
    with torch.no_grad():
        feats, feats_flip = model.backbone(x), model.backbone(x.flip(-1))
        outputs = model.kind.train_forward(model.head, feats)
        single, mirrored = model.head(feats).numpy(), model.head(feats_flip).numpy()
    stages = outputs["stage_heatmaps"]
    assert stages.shape == (num_stages(cfg), 2, cfg.num_keypoints, cfg.heatmap_size[1], cfg.heatmap_size[0])
    report(f"{what} every stage's heatmaps (relative)", reldev(stages[:, 0, :2], g["stages" + sfx]), tol)
    np.testing.assert_array_equal(single, stages[-1].numpy())  # the graph's output is the last stage
    decoded = model.card.decode(single, mirrored)
    keypoints, scores = decoded[..., :2], decoded[..., 2]
    report(
        f"{what} flip-test keypoints (normalised)",
        reldev(keypoints / [w, h], g["keypoints_crop_flip" + sfx] / [w, h]),
        tol,
    )
    report(f"{what} flip-test scores (relative)", reldev(scores, g["scores_flip" + sfx]), tol)
    centers, scales = geometry.bbox_to_center_scale(g["bboxes_xyxy"], (w, h))
    image_kp = geometry.keypoints_crop_to_image(keypoints, centers, scales, (w, h))
    dev = reldev(image_kp / scales[:, None, :], g["keypoints_image_flip" + sfx] / scales[:, None, :])
    report(f"{what} image keypoints (normalised by box scale)", dev, tol)
    report(f"{what} image scores (relative)", reldev(scores, g["scores_image_flip" + sfx]), tol)
    if dtype == "float64":  # train_forward + pose_loss(("keypoint_mse_stages",)) == CPMHead.loss's loss_kpt
        k, (wh, hh) = cfg.num_keypoints, cfg.heatmap_size
        target = recipe.recipe_array(f"{name}_target_heatmaps", (2, k, hh, wh)).astype(np.float64) ** 2
        weights = (recipe.recipe_array(f"{name}_target_weights", (2, k)) > -0.85).astype(np.float64)
        targets = {"heatmaps": torch.from_numpy(target), "keypoint_weights": torch.from_numpy(weights)}
        total, _ = pose_loss(model.kind.default_losses, outputs, targets)
        report(f"{what} CPMHead loss (relative)", reldev(total.numpy(), g["loss_kpt_f64"]), tol)


@pytest.mark.parametrize("name", ["td-hm_hourglass52_coco-256x256", "td-hm_cpm_coco-256x192"])
def test_flip_test_symmetry(name):
    """Flip test of the mirrored crops == the flip test of the crops, mirrored back (unshifted heatmaps: column j
    mirrors onto W - 1 - j, so x -> w - w / W - x in crop pixels), and the flipped pass contributes. Peaks in the
    columns 0, 1, W - 2, W - 1 are left out: MMPose's quarter-pixel refinement is not mirror-symmetric there
    (``refine_keypoints``: x is refined for 1 < j < W - 1, y for 0 < j < W)."""
    cfg = small_config(name).replace(shift_heatmap=False, input_size=(64, 64))  # 16- / 8-wide heatmaps
    model = fill(build_pose_model(cfg))
    w, h = cfg.input_size
    crops = np.random.default_rng(0).integers(0, 256, (2, h, w, 3), dtype=np.uint8)
    a = model.predict_keypoints(crops, flip_test=True)
    b = model.predict_keypoints(np.ascontiguousarray(crops[:, :, ::-1]), flip_test=True)
    mirrored = flip_back_keypoints(b, model.card.flip_index, w, shift=False)
    mirrored[..., 0] -= w / cfg.heatmap_size[0]
    col = np.round(a[..., 0] / (w / cfg.heatmap_size[0]))
    inner = (col >= 2) & (col <= cfg.heatmap_size[0] - 3)
    found = (a[..., 2] > 0) & inner  # MMPose marks maps whose maximum is <= 0 with location -1 (not mirrored)
    assert found.sum() >= 6
    np.testing.assert_allclose(mirrored[found], a[found], atol=1e-3)
    assert np.abs(model.predict_keypoints(crops, flip_test=False) - a).max() > 1e-2


def test_cpm_head_checks_its_input():
    head = CPMHead(8, 17, 2)
    with pytest.raises(ValueError, match="2 stage feature maps"):
        head((torch.zeros(1, 8, 4, 4),))
    with pytest.raises(ValueError, match=r"\[B, 8, h, w\]"):
        head((torch.zeros(1, 8, 4, 4), torch.zeros(1, 7, 4, 4)))
    with pytest.raises(ValueError, match="without a final layer"):
        CPMHead(8, 17, 2, final_layer=False)
    with pytest.raises(ValueError, match="multi-stage backbone"):
        num_stages(get_config("td-hm_res50").replace(head_kind="cpm"))
