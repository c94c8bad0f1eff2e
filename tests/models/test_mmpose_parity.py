"""Parity with MMPose 1.3.2, against golden files written by MMPose's own code.

The goldens in tests/data/mmpose/ come from tests/mmpose_golden/make_golden.py (run in a separate
venv with MMPose installed; see the README there). MMPose is not needed here. Parameters are never
stored: both sides fill them with tests/mmpose_golden/recipe.py by key name.

Tolerances are the project's policy (``models/tolerance.py``): ``PARITY_FP64`` (1e-5) in normalised units
(crop pixels / input size) for coordinates and absolute for heatmaps; the full ResNet-50 models are compared
twice: in float64 against MMPose run in float64 (the parity proof; measured ~1e-13) and in float32 against
MMPose's float32 run with ``PARITY_FP32`` (2e-4): float32 convolutions accumulate in a CPU/kernel-dependent
order, and the two float32 runs each differ from the float64 result by up to ~3e-5 (Debias, beta 10,
amplifies logit noise). OpenCV crops may differ by ``UINT8_LEVELS`` between OpenCV builds, float32 ``np.exp``
targets by ``FP32_ELEMENTWISE_ATOL`` between numpy builds. The flip test and decode are the service's own
(``ModelCard.decode``). Each test prints ``[parity] <what>: max deviation <value>`` (see them with
``pytest -s -k parity``).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from models import codecs, geometry
from models.card import card_for_config
from models.heads.heatmap import HeatmapHead
from models.heads.integral import IntegralRegressionHead
from models.keypoints import COCO17_NAMES, COCO17_SIGMAS, flip_indices
from models.pose_model import build_pose_model
from models.tolerance import FP32_ELEMENTWISE_ATOL, FP64_FROM_FP32_REL, PARITY_FP32, PARITY_FP64, UINT8_LEVELS
from models.zoo import get_config
from tests.golden import fill, load_npz, recipe

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "mmpose"
TOL = PARITY_FP64
FP32_TOL = PARITY_FP32
INTEGRAL_VARIANTS = {"ipr": (1.0, False), "dsnt": (1.0, False), "debias": (10.0, True)}
#: The zoo entries these goldens cover (the seed zoo; the rest are in tests/data/mmpose_zoo, tests/models/test_zoo_parity.py).
SEED_ZOO = sorted(json.loads((GOLDEN / "state_dict_shapes.json").read_text()))


def npz(name: str) -> dict[str, np.ndarray]:
    return load_npz(GOLDEN / name)


def report(what: str, dev: float, tol: float = TOL) -> None:
    print(f"[parity] {what}: max deviation {dev:.3g}")
    assert dev <= tol, f"{what}: max deviation {dev:.3g} > {tol:g}"


def maxdev(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, f"shape {a.shape} vs {b.shape}"
    return float(np.abs(a - b).max())


def test_golden_versions():
    v = json.loads((GOLDEN / "versions.json").read_text())
    assert v["mmpose"] == "1.3.2"
    assert v["recipe_version"] == recipe.RECIPE_VERSION


def test_schema_matches_mmpose_coco():
    s = json.loads((GOLDEN / "schema.json").read_text())
    assert flip_indices().tolist() == s["flip_indices"]
    assert list(COCO17_NAMES) == s["keypoint_names"]
    report("schema sigmas (MMPose stores float32)", maxdev(COCO17_SIGMAS, s["sigmas"]), 1e-8)


@pytest.mark.parametrize("name", SEED_ZOO)
def test_state_dict_keys_and_shapes_equal_mmpose(name):
    expected = json.loads((GOLDEN / "state_dict_shapes.json").read_text())[name]
    ours = {k: list(v.shape) for k, v in build_pose_model(name).state_dict().items()}
    missing = sorted(set(expected) - set(ours))
    unexpected = sorted(set(ours) - set(expected))
    assert not missing and not unexpected, f"missing {missing[:5]}, unexpected {unexpected[:5]}"
    wrong = {k: (ours[k], expected[k]) for k in expected if ours[k] != expected[k]}
    assert not wrong, wrong
    assert list(ours) == list(expected), "key order differs from MMPose"


@pytest.mark.parametrize("variant", sorted(INTEGRAL_VARIANTS))
def test_integral_head_forward_and_flip(variant):
    g = npz("head_integral.npz")
    beta, debias = INTEGRAL_VARIANTS[variant]
    head = IntegralRegressionHead(16, (8, 8), 17, beta=beta, debias=debias, deconv_out_channels=(8, 8, 8))
    fill(head, prefix="head.")
    feats, feats_flip = torch.from_numpy(g["feats"]), torch.from_numpy(g["feats_flip"])
    with torch.no_grad():
        coords, heatmaps = head.forward_with_heatmaps(feats)
        coords_flip = head(feats_flip)
    report(f"integral head {variant} coords", maxdev(coords, g[f"{variant}_coords"]))
    report(f"integral head {variant} heatmap peaks", maxdev(heatmaps.flatten(2).amax(2), g[f"{variant}_heatmap_peak"]))
    # the service's decode + flip-back (the same code for exported graphs and the torch model)
    out = card_for_config(get_config("ipr_res50")).decode(coords.numpy(), coords_flip.numpy())
    report(
        f"integral head {variant} flip test (normalised)",
        maxdev(out[..., :2] / 256, g[f"{variant}_flip_keypoints"] / 256),
    )
    assert (out[..., 2] == 1).all()


@pytest.mark.parametrize("tag", ["b1", "b10_debias", "b1_debias"])
def test_softargmax_and_debias_on_logits(tag):
    """Soft-argmax + debias on given logits (per-map maxima from about -10 to 80: C < 1 and C huge)."""
    g = npz("softargmax.npz")
    beta, debias = {"b1": (1.0, False), "b10_debias": (10.0, True), "b1_debias": (1.0, True)}[tag]
    head = IntegralRegressionHead(4, (2, 2), 17, beta=beta, debias=debias, deconv_out_channels=(4, 4, 4))
    with torch.no_grad():
        coords, _ = head.integrate(torch.from_numpy(g["logits"]))
    report(f"soft-argmax {tag}", maxdev(coords, g[f"{tag}_coords"]))


def test_heatmap_head_forward_and_flip():
    g = npz("head_heatmap.npz")
    head = fill(HeatmapHead(16, 17, (8, 8, 8)), prefix="head.")
    with torch.no_grad():
        hm = head(torch.from_numpy(g["feats"]))
        hm_flip = head(torch.from_numpy(g["feats_flip"]))
    report("heatmap head heatmaps", maxdev(hm[0], g["heatmaps_0"]))
    averaged = (hm.numpy() + codecs.flip_back_heatmaps(hm_flip.numpy(), flip_indices())) * 0.5
    report("heatmap head flip-test heatmaps", maxdev(averaged[0], g["heatmaps_flip_0"]))
    card = card_for_config(get_config("td-hm_res50").replace(input_size=(96, 128)))
    out = card.decode(hm.numpy(), hm_flip.numpy())
    report(
        "heatmap head flip-test keypoints (normalised)",
        maxdev(out[..., :2] / [96, 128], g["keypoints_flip"] / [96, 128]),
    )
    report("heatmap head flip-test scores", maxdev(out[..., 2], g["scores_flip"]))


def test_codec_integral_encode_decode():
    g = npz("codec.npz")
    codec = codecs.IntegralRegressionLabel((256, 256), (64, 64), sigma=2.0, normalize=True)
    for i in range(2):
        enc = codec.encode(g[f"case{i}_keypoints"], g[f"case{i}_visible"])
        report(f"codec encode case{i} keypoint_labels", maxdev(enc["keypoint_labels"], g[f"case{i}_keypoint_labels"]))
        assert np.array_equal(enc["keypoint_weights"], g[f"case{i}_keypoint_weights"])
        report(f"codec encode case{i} heatmaps", maxdev(enc["heatmaps"], g[f"case{i}_heatmaps"]), FP32_ELEMENTWISE_ATOL)
    keypoints, scores = codec.decode(g["decode_coords"])
    report("codec decode (normalised)", maxdev(keypoints / 256, g["decode_keypoints"] / 256))
    assert np.array_equal(scores, g["decode_scores"])


def test_codec_heatmap_maximum_and_msra_decode():
    g = npz("codec.npz")
    locs, vals = codecs.get_heatmap_maximum(g["maximum_heatmaps"])
    assert np.array_equal(locs, g["maximum_locs"])
    assert np.array_equal(vals, g["maximum_vals"])
    msra = codecs.MSRAHeatmap((48, 64), (12, 16), sigma=2)
    keypoints, scores = msra.decode(g["maximum_heatmaps"])
    report("MSRA decode keypoints (normalised)", maxdev(keypoints / [48, 64], g["msra_keypoints"] / [48, 64]))
    assert np.array_equal(scores, g["msra_scores"])
    enc = msra.encode(g["case1_keypoints"] * np.float32(48 / 256), g["case1_visible"])
    report("MSRA encode heatmaps", maxdev(enc["heatmaps"], g["msra_encode_heatmaps"]), FP32_ELEMENTWISE_ATOL)
    assert np.array_equal(enc["keypoint_weights"], g["msra_encode_weights"])


def test_geometry_warp_matrix_and_center_scale():
    g = npz("geometry.npz")
    devs = []
    for args, expected in zip(g["warp_args"], g["warp_matrices"], strict=True):
        cx, cy, sw, sh, rot, ow, oh, shx, shy, inv = args
        m = geometry.get_warp_matrix(
            np.array([cx, cy]), np.array([sw, sh]), float(rot), (int(ow), int(oh)), (shx, shy), bool(inv)
        )
        # relative to the matrix scale so that large-coordinate cases compare like small ones
        devs.append(maxdev(m, expected) / max(1.0, float(np.abs(expected).max())))
    report("get_warp_matrix (relative)", max(devs), FP64_FROM_FP32_REL)
    c, s = geometry.bbox_xyxy2cs(g["cs_boxes"], 1.25)
    report("bbox_xyxy2cs", max(maxdev(c, g["cs_centers"]), maxdev(s, g["cs_scales"])), 0.0)
    report("fix_aspect_ratio 1.0", maxdev(geometry.fix_aspect_ratio(s, 1.0), g["fix_scales_256x256"]), 0.0)
    report("fix_aspect_ratio 0.75", maxdev(geometry.fix_aspect_ratio(s, 0.75), g["fix_scales_192x256"]), 0.0)


@pytest.mark.parametrize("size", [(256, 256), (192, 256)])
def test_crops_equal_mmpose_topdown_affine(size):
    g = npz("pipeline.npz")
    tag = f"{size[0]}x{size[1]}"
    centers, scales = geometry.bbox_to_center_scale(g["bboxes_xyxy"], size)
    report(
        f"center/scale {tag}",
        max(maxdev(centers, g[f"input_center_{tag}"]), maxdev(scales, g[f"input_scale_{tag}"])),
        0.0,
    )
    crops = geometry.crop_batch(g["image_rgb"], centers, scales, size)
    report(f"crop pixels {tag} (uint8 levels)", maxdev(crops, g[f"crops_rgb_{tag}"]), UINT8_LEVELS)


@functools.cache
def _filled_state_dict(name: str) -> dict:
    return fill(build_pose_model(name)).state_dict()


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", SEED_ZOO)
def test_full_model_matches_mmpose(name, dtype):
    """ResNet-50 + head with recipe parameters on MMPose's crops: single pass, flip test, image coords."""
    g = npz(f"model_{name}.npz")
    p = npz("pipeline.npz")
    sfx, tol, tdtype = ("_f64", TOL, torch.float64) if dtype == "float64" else ("", FP32_TOL, torch.float32)
    model = build_pose_model(name)
    model.load_state_dict(_filled_state_dict(name))
    w, h = model.config.input_size
    assert tuple(g["input_size"]) == (w, h)
    # normalise in float32 as MMPose's PoseDataPreprocessor does, then cast (as make_golden.py does)
    x = model.preprocess(torch.from_numpy(p[f"crops_rgb_{w}x{h}"])).to(tdtype)
    model.to(tdtype)
    with torch.no_grad():
        single = model(x).numpy()
        mirrored = model(x.flip(-1)).numpy()
    # the service's decode + flip-back, what predict_keypoints and the served graphs use
    decoded = model.card.decode(single, mirrored)
    keypoints, scores = decoded[..., :2], decoded[..., 2]
    if model.output_kind == "integral":
        report(f"{name} {dtype} single pass (normalised)", maxdev(single, g["coords_single" + sfx]), tol)
    else:
        # heatmap values are logits up to ~17: compare relative to their range
        rng = float(np.abs(g["heatmaps_flip_0_k0to2" + sfx]).max())
        dev = maxdev(single[0, :3], g["heatmaps_single_0_k0to2" + sfx]) / rng
        report(f"{name} {dtype} single-pass heatmaps (relative)", dev, tol)
        flip = (single + codecs.flip_back_heatmaps(mirrored, flip_indices(), model.config.shift_heatmap)) * 0.5
        dev = maxdev(flip[0, :3], g["heatmaps_flip_0_k0to2" + sfx]) / rng
        report(f"{name} {dtype} flip-test heatmaps (relative)", dev, tol)
        scores = scores / rng  # compared relative to the heatmap range as well
        g = dict(
            g,
            **{
                "scores_flip" + sfx: g["scores_flip" + sfx] / rng,
                "scores_image_flip" + sfx: g["scores_image_flip" + sfx] / rng,
            },
        )
    dev = maxdev(keypoints / [w, h], g["keypoints_crop_flip" + sfx] / [w, h])
    report(f"{name} {dtype} flip test keypoints (normalised)", dev, tol)
    report(f"{name} {dtype} flip test scores", maxdev(scores, g["scores_flip" + sfx]), tol)
    centers, scales = geometry.bbox_to_center_scale(p["bboxes_xyxy"], (w, h))
    image_kp = geometry.keypoints_crop_to_image(keypoints, centers, scales, (w, h))
    # image pixels -> units of the crop box, comparable to the normalised tolerance
    dev = maxdev(image_kp / scales[:, None, :], g["keypoints_image_flip" + sfx] / scales[:, None, :])
    report(f"{name} {dtype} image keypoints (normalised by box scale)", dev, tol)
    report(f"{name} {dtype} image scores", maxdev(scores, g["scores_image_flip" + sfx]), tol)
