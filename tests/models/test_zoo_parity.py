"""The regression zoo, the deeper SimpleBaselines and MPII models against MMPose 1.3.2's own code.

Goldens in tests/data/mmpose_zoo/ come from tests/mmpose_golden/make_zoo_golden.py (MMPose in a separate venv;
parameters are filled on both sides by tests/mmpose_golden/recipe.py). Per zoo entry added with the regression zoo:

* the published figures, checkpoint URL and SHA-256 prefix equal MMPose's model-zoo metafiles;
* state-dict keys (in order) and shapes equal those of the model MMPose builds from the config (full width: built on
  torch's meta device here, so no ResNet-152 is allocated);
* the entry at 8-channel width (same depth, head, input size and test config) gives MMPose's single pass, flip test
  and image keypoints / scores, through the service's decode (``ModelCard.decode``) and geometry: float64 within
  ``PARITY_FP64`` (the proof), float32 within ``PARITY_FP32``.

Random deep networks amplify their input: a random ResNet-152's pooled features are ~50, so its regression outputs
are normalised coordinates of ~100 (the sigmoid of RLE's sigma saturates). Coordinates are therefore compared in
normalised units relative to max(1, their largest magnitude) (float error is relative); ``head_regression.npz``
checks the heads on unit-scale features, where coordinates and sigma logits are O(1). Each test prints
``[zoo-parity] <what>: max deviation <value>`` (``pytest -s -k zoo_parity``).
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
from models.card import card_for_config
from models.codecs import RegressionLabel
from models.heads import head_kind
from models.heads.regression import RegressionHead
from models.heads.rle import RLEHead
from models.keypoints import MPII16
from models.pose_model import TopdownPoseModel, build_pose_model
from models.tolerance import PARITY_FP32, PARITY_FP64
from models.zoo import METRIC_COLUMNS, ZOO, get_config
from models.zoo.families import family_entries
from tests.golden import fill, load_npz, recipe

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "mmpose_zoo"
#: The seed zoo's goldens are tests/data/mmpose (tests/models/test_mmpose_parity.py); these are the rest.
SEED_ZOO = sorted(json.loads((GOLDEN.parent / "mmpose" / "state_dict_shapes.json").read_text()))
#: The ResNet zoo of ``models.zoo.entries``; the families of ``models.zoo.families`` have their own tests.
RESNET_ZOO = sorted(set(ZOO) - {c.name for c in family_entries()})
NEW = sorted(n for n in RESNET_ZOO if n not in SEED_ZOO)
FULL = ("td-reg_res50", "td-reg_res50_rle")
SMALL = {"backbone_base_channels": 8, "deconv_out_channels": (16, 16, 16)}
#: yml metric names -> ours (``models.zoo.METRIC_COLUMNS``)
_YML = {
    "AP": "AP",
    "AP@0.5": "AP50",
    "AP@0.75": "AP75",
    "AR": "AR",
    "AR@0.5": "AR50",
    "Mean": "Mean",
    "Mean@0.1": "Mean@0.1",
}


def npz(name: str) -> dict[str, np.ndarray]:
    return _npz(name)


@functools.cache
def _npz(name: str) -> dict[str, np.ndarray]:
    return load_npz(GOLDEN / name)


def report(what: str, dev: float, tol: float) -> float:
    print(f"[zoo-parity] {what}: max deviation {dev:.3g}")
    assert dev <= tol, f"{what}: max deviation {dev:.3g} > {tol:g}"
    return dev


def reldev(got, want) -> float:
    """max |got - want| / max(1, max |want|) in float64."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, f"shape {got.shape} vs {want.shape}"
    return float(np.abs(got - want).max() / max(1.0, float(np.abs(want).max())))


def test_golden_versions():
    v = json.loads((GOLDEN / "versions.json").read_text())
    assert v["mmpose"] == "1.3.2" and v["recipe_version"] == recipe.RECIPE_VERSION


def test_every_zoo_entry_has_goldens():
    with gzip.open(GOLDEN / "state_dict_shapes.json.gz", "rt", encoding="utf-8") as f:
        new = set(json.load(f))
    assert new | set(SEED_ZOO) == set(RESNET_ZOO) and not new & set(SEED_ZOO)
    assert all((GOLDEN / f"small_{n}.npz").is_file() for n in new)


@pytest.mark.parametrize("name", RESNET_ZOO)
def test_entry_equals_mmpose_metafile(name):
    """Published figures, checkpoint URL and SHA-256 prefix are the metafile's (one documented exception)."""
    cfg = get_config(name)
    row = json.loads((GOLDEN / "metafiles.json").read_text())[cfg.mmpose_config]
    assert row["dataset"].lower() == cfg.dataset
    metrics = {_YML[k]: v for k, v in row["metrics"].items()}
    assert set(metrics) == set(METRIC_COLUMNS[cfg.dataset]) == set(cfg.published)
    if name == "td-hm_res101_coco-384x288":
        # MMPose's resnet_coco.yml gives this row the 256x192 file; the zoo takes MMPose 0.x's 384x288 checkpoint
        assert row["weights"] == get_config("td-hm_res101").checkpoint_url != cfg.checkpoint_url
        assert "384x288" in cfg.checkpoint_filename and abs(cfg.published["AP"] - metrics["AP"]) <= 0.002
        return
    assert cfg.checkpoint_url == row["weights"]
    assert cfg.sha256_prefix == cfg.checkpoint_filename.rsplit("-", 1)[1][:8]
    assert cfg.published == metrics


def test_mpii_schema_equals_mmpose():
    s = json.loads((GOLDEN / "schema_mpii.json").read_text())
    assert list(MPII16.names) == s["keypoint_names"]
    assert MPII16.flip_index().tolist() == s["flip_indices"]
    assert MPII16.sigmas.tolist() == pytest.approx(s["sigmas"], abs=1e-8)
    assert list(MPII16.upper_body_ids) == s["upper_body_ids"] and list(MPII16.lower_body_ids) == s["lower_body_ids"]
    assert [list(p) for p in MPII16.skeleton] == s["skeleton"]


@pytest.mark.parametrize("name", NEW)
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


@pytest.mark.parametrize("k", [17, 16])
@pytest.mark.parametrize("kind", ["RegressionHead", "RLEHead"])
def test_regression_heads_single_pass_and_flip_test(kind, k):
    """The heads on unit-scale features: raw output, the decode with and without MMPose's flip test (``shift_coords``:
    ``x -> w - 1 - x``; RLE's sigma reordered, sigmoid, averaged; score ``mean(1 - sigma)``)."""
    g = npz("head_regression.npz")
    tag = f"k{k}_{kind}"
    head = fill(RegressionHead(16, k) if kind == "RegressionHead" else RLEHead(16, k), prefix="head.")
    feats, feats_flip = torch.from_numpy(g[f"k{k}_feats"]), torch.from_numpy(g[f"k{k}_feats_flip"])
    with torch.no_grad():
        raw, out, out_flip = head.forward_raw(feats), head(feats), head(feats_flip)
    report(f"{kind} K={k} raw", reldev(raw, g[f"{tag}_raw"]), PARITY_FP64)
    schema = "coco17" if k == 17 else "mpii16"
    card = card_for_config(
        get_config("td-reg_res50").replace(
            num_keypoints=k, keypoint_schema=schema, head_kind="rle" if kind == "RLEHead" else "regression"
        )
    )
    single = card.decode(out.numpy())
    flip = card.decode(out.numpy(), out_flip.numpy())
    report(
        f"{kind} K={k} keypoints (normalised)",
        reldev(single[..., :2] / [192, 256], g[f"{tag}_keypoints"] / [192, 256]),
        PARITY_FP64,
    )
    report(f"{kind} K={k} scores", reldev(single[..., 2], g[f"{tag}_scores"]), PARITY_FP64)
    report(
        f"{kind} K={k} flip-test keypoints (normalised)",
        reldev(flip[..., :2] / [192, 256], g[f"{tag}_keypoints_flip"] / [192, 256]),
        PARITY_FP64,
    )
    report(f"{kind} K={k} flip-test scores", reldev(flip[..., 2], g[f"{tag}_scores_flip"]), PARITY_FP64)
    if kind == "RLEHead":  # the scores are informative (not all 1 or all 0.5): the check above could fail
        assert 0.02 < g[f"{tag}_scores_flip"].std() and np.abs(flip[..., 2] - single[..., 2]).max() > 1e-3


@functools.cache
def _filled(name: str, small: bool) -> dict:
    cfg = get_config(name).replace(**SMALL) if small else get_config(name)
    return fill(build_pose_model(cfg)).state_dict()


def _compare_model(name: str, dtype: str, small: bool) -> None:
    g = npz(f"{'small' if small else 'full'}_{name}.npz")
    p = npz("pipeline.npz")
    sfx, tol, tdtype = ("_f64", PARITY_FP64, torch.float64) if dtype == "float64" else ("", PARITY_FP32, torch.float32)
    cfg = get_config(name).replace(**SMALL) if small else get_config(name)
    model = build_pose_model(cfg)
    model.load_state_dict(_filled(name, small))
    w, h = cfg.input_size
    assert tuple(g["input_size"]) == (w, h)
    what = f"{name}{' (8-channel)' if small else ''} {dtype}"
    x = model.preprocess(torch.from_numpy(p[f"crops_rgb_{w}x{h}"])).to(tdtype)
    model.to(tdtype)
    with torch.no_grad():
        feats, feats_flip = model.backbone(x), model.backbone(x.flip(-1))
        single, mirrored = model.head(feats).numpy(), model.head(feats_flip).numpy()
        raw = model.head.forward_raw(feats).numpy() if head_kind(cfg.head_kind).raw_is_coordinates else single[:1, :1]
    report(f"{what} single pass (relative)", reldev(raw, g["raw" + sfx]), tol)
    decoded = model.card.decode(single, mirrored)
    keypoints, scores = decoded[..., :2], decoded[..., 2]
    report(
        f"{what} flip-test keypoints (normalised, relative)",
        reldev(keypoints / [w, h], g["keypoints_crop_flip" + sfx] / [w, h]),
        tol,
    )
    report(f"{what} flip-test scores (relative)", reldev(scores, g["scores_flip" + sfx]), tol)
    centers, scales = geometry.bbox_to_center_scale(p["bboxes_xyxy"], (w, h))
    image_kp = geometry.keypoints_crop_to_image(keypoints, centers, scales, (w, h))
    dev = reldev(image_kp / scales[:, None, :], g["keypoints_image_flip" + sfx] / scales[:, None, :])
    report(f"{what} image keypoints (normalised by box scale, relative)", dev, tol)
    report(f"{what} image scores (relative)", reldev(scores, g["scores_image_flip" + sfx]), tol)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", NEW)
def test_small_width_model_matches_mmpose(name, dtype):
    """Every new entry's structure (depth, head, input size, flip test, schema) at 8-channel width."""
    _compare_model(name, dtype, small=True)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", FULL)
def test_full_width_model_matches_mmpose(name, dtype):
    """ResNet-50 DeepPose and RLE at full width (the published models' size)."""
    _compare_model(name, dtype, small=False)


def test_regression_label_encode_equals_mmpose():
    g = npz("regression_label.npz")
    enc = RegressionLabel((192, 256)).encode(g["keypoints"], g["visible"])
    report("RegressionLabel keypoint_labels", reldev(enc["keypoint_labels"], g["keypoint_labels"]), PARITY_FP64)
    assert np.array_equal(enc["keypoint_weights"], g["keypoint_weights"])
    assert 0 < g["keypoint_weights"].sum() < g["keypoint_weights"].size  # edge cases on both sides of the bound
