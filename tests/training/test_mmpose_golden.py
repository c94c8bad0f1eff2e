"""Training numerics against MMPose 1.3.2's own code (golden files from tests/mmpose_golden/make_train_golden.py):
the losses (float64: 1e-6 relative; float32: the same bound, they are sums of a few thousand terms) and the train
pipeline given MMPose's random draws (box 1e-4 px, keypoints 1e-4 px, crops within OpenCV's rounding), and our
sampler reproducing those draws from the same seed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("scipy")

from models.codecs import IntegralRegressionLabel, MSRAHeatmap  # noqa: E402
from models.heads import head_kind  # noqa: E402
from models.keypoints import COCO17_LOWER_BODY_IDS, COCO17_UPPER_BODY_IDS, flip_indices  # noqa: E402
from models.tolerance import FP32_ELEMENTWISE_ATOL, UINT8_LEVELS, assert_close  # noqa: E402
from training.configs import get_train_config  # noqa: E402
from training.losses import js_discrete_loss, keypoint_mse_loss, pose_loss, smooth_l1_loss  # noqa: E402
from training.transforms import AugmentConfig, AugmentDraws, apply_topdown, sample_draws  # noqa: E402

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "mmpose_train"
#: Loss parity bound (relative), the issue's requirement.
LOSS_REL = 1e-6
#: Transform parity bound in pixels, the issue's requirement.
TRANSFORM_PX = 1e-4


@pytest.fixture(scope="module")
def losses():
    return np.load(GOLDEN / "losses.npz")


@pytest.fixture(scope="module")
def transforms():
    return np.load(GOLDEN / "transforms.npz")


def _rel(got: torch.Tensor, want: np.ndarray) -> float:
    want = float(want)
    return abs(float(got) - want) / max(abs(want), 1e-30)


@pytest.mark.parametrize("dtype,suffix", [(torch.float64, "_f64"), (torch.float32, "_f32")])
def test_losses_equal_mmpose(losses, dtype, suffix):
    t = {k: torch.from_numpy(losses[k]).to(dtype) for k in losses.files if losses[k].dtype == np.float64}
    w = t["weights"]
    checks = {
        "smooth_l1": smooth_l1_loss(t["pred_coords"], t["target_coords"], w),
        "js_discrete": js_discrete_loss(t["pred_heatmaps"], t["target_heatmaps"], w),
        "mse_softmax": keypoint_mse_loss(t["pred_heatmaps"], t["target_heatmaps"], w),
        "mse_heatmap": keypoint_mse_loss(t["pred_raw_heatmaps"], t["target_heatmaps_unnorm"], w),
    }
    for name in ("ipr_res50", "ipr_res50_dsnt", "ipr_res50_debias", "td-hm_res50"):
        cfg = get_train_config(name)
        if "coords" not in head_kind(cfg.model.head_kind).train_outputs:  # SimpleBaseline
            outputs, targets = {"heatmaps": t["pred_raw_heatmaps"]}, {"heatmaps": t["target_heatmaps_unnorm"]}
        else:
            outputs = {"coords": t["pred_coords"], "heatmaps": t["pred_heatmaps"]}
            targets = {"keypoint_labels": t["target_coords"], "heatmaps": t["target_heatmaps"]}
        checks[f"config_{name}"], _ = pose_loss(cfg.losses, outputs, {**targets, "keypoint_weights": w})
    worst = 0.0
    for name, got in checks.items():
        assert got.dtype == dtype
        rel = _rel(got, losses[name + suffix])
        worst = max(worst, rel)
        assert rel <= LOSS_REL, f"{name}{suffix}: relative deviation {rel:.3g} from MMPose > {LOSS_REL:g}"
    print(f"[train-golden] losses {suffix}: max relative deviation {worst:.3g}")


def test_js_loss_gradient_is_finite_where_mmpose_is_not(losses):
    # MMPose's JSDiscretLoss on torch 2.x: NaN gradient when a keypoint weight is 0 (recorded by the generator)
    assert not bool(losses["mmpose_js_grad_finite"])
    p = torch.from_numpy(losses["pred_heatmaps"]).float().requires_grad_(True)
    w = torch.from_numpy(losses["weights"]).float()
    js_discrete_loss(p, torch.from_numpy(losses["target_heatmaps"]).float(), w).backward()
    assert torch.isfinite(p.grad).all()
    assert (p.grad[w == 0] == 0).all() and (p.grad[w == 1].abs().sum() > 0)


def _draws(g, tag: str, i: int) -> AugmentDraws:
    half = tuple(int(j) for j in np.flatnonzero(g[f"{tag}_half_body_mask"][i])) if g[f"{tag}_half_body"][i] else None
    return AugmentDraws(
        flip=bool(g[f"{tag}_flip"][i]),
        half_body=half,
        offset=g[f"{tag}_offset"][i],
        scale=g[f"{tag}_scale"][i],
        rotation=g[f"{tag}_rotation"][i],
    )


def test_schema_matches_mmpose_body_groups(transforms):
    assert tuple(transforms["upper_body_ids"]) == COCO17_UPPER_BODY_IDS
    assert tuple(transforms["lower_body_ids"]) == COCO17_LOWER_BODY_IDS
    assert (transforms["flip_indices"] == flip_indices()).all()


@pytest.mark.parametrize("tag", ["integral", "heatmap"])
def test_sampler_reproduces_mmpose_draws(transforms, tag):
    g = transforms
    seen = {"flip": 0, "half": 0, "rot": 0}
    for i, seed in enumerate(g["seeds"]):
        got = sample_draws(np.random.RandomState(int(seed)), g["keypoints_visible"], AugmentConfig())
        want = _draws(g, tag, i)
        assert got.flip == want.flip and got.half_body == want.half_body, f"seed {seed}"
        assert np.array_equal(got.offset, want.offset) and got.scale == want.scale and got.rotation == want.rotation
        seen["flip"] += got.flip
        seen["half"] += got.half_body is not None
        seen["rot"] += got.rotation != 0
    assert all(v > 0 for v in seen.values()), seen  # every transform was exercised


@pytest.mark.parametrize("tag", ["integral", "heatmap"])
def test_pipeline_equals_mmpose_given_its_draws(transforms, tag):
    g = transforms
    size = tuple(int(s) for s in g[f"{tag}_input_size"])
    w, h = size
    heat = (w // 4, h // 4)
    codec = IntegralRegressionLabel(size, heat, 2.0) if tag == "integral" else MSRAHeatmap(size, heat, 2.0)
    dev = {"center": 0.0, "kp": 0.0, "crop": 0.0}
    for i in range(len(g["seeds"])):
        s = apply_topdown(
            g["image_rgb"], g["bbox_xyxy"], g["keypoints"], g["keypoints_visible"], _draws(g, tag, i), size
        )
        dev["center"] = max(dev["center"], assert_close(s.center, g[f"{tag}_center"][i], TRANSFORM_PX, "center"))
        assert_close(s.scale, g[f"{tag}_box_scale"][i], TRANSFORM_PX, "scale")
        assert s.rotation == pytest.approx(float(g[f"{tag}_bbox_rotation"][i]), abs=1e-6)
        vis = g[f"{tag}_crop_keypoints_visible"][i]
        assert np.array_equal(s.keypoints_visible, vis)
        dev["kp"] = max(dev["kp"], assert_close(s.keypoints, g[f"{tag}_crop_keypoints"][i], TRANSFORM_PX, "keypoints"))
        dev["crop"] = max(dev["crop"], assert_close(s.crop, g[f"{tag}_crop"][i], UINT8_LEVELS, "crop"))
        enc = codec.encode(s.keypoints[None], s.keypoints_visible[None])
        assert np.array_equal(enc["keypoint_weights"][0], g[f"{tag}_keypoint_weights"][i])
        assert_close(enc["heatmaps"], g[f"{tag}_heatmaps"][i], FP32_ELEMENTWISE_ATOL, "heatmap targets")
        if tag == "integral":
            assert_close(enc["keypoint_labels"][0], g[f"{tag}_keypoint_labels"][i], TRANSFORM_PX / w, "labels")
    print(
        f"[train-golden] {tag} pipeline: max deviation center {dev['center']:.3g} px, keypoints {dev['kp']:.3g} px, "
        f"crop {dev['crop']:.0f} levels"
    )


# ---------------------------------------------------------------- RLE and MPII (tests/data/mmpose_zoo, make_zoo_golden.py)

ZOO_GOLDEN = Path(__file__).resolve().parents[1] / "data" / "mmpose_zoo"


def _rle_flow(dtype: torch.dtype):
    """MMPose's RLELoss flow, recipe-filled under its RLE-head key names (as make_zoo_golden.py fills it)."""
    import importlib.util

    from models.flow import RLEFlow

    spec = importlib.util.spec_from_file_location(
        "golden_recipe", Path(__file__).resolve().parents[1] / "mmpose_golden" / "recipe.py"
    )
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    flow = RLEFlow()
    sd = flow.state_dict()
    filled = {}
    for k, v in sd.items():
        r = recipe.recipe_value("head.loss_module." + k, tuple(v.shape))
        filled[k] = v if r is None else torch.from_numpy(r)
    flow.load_state_dict(filled)
    return flow.to(dtype).flow_model


@pytest.mark.parametrize("dtype,suffix", [(torch.float64, "_f64"), (torch.float32, "_f32")])
def test_rle_loss_equals_mmpose(dtype, suffix):
    """RLELoss (residual + Laplace Q: the configs'; residual + Gaussian; no residual) and its gradients."""
    from training.losses import rle_loss

    g = np.load(ZOO_GOLDEN / "rle_loss.npz")
    flow = _rle_flow(dtype)
    variants = {"laplace": {}, "gaussian": {"q_distribution": "gaussian"}, "noresidual": {"residual": False}}
    worst = 0.0
    for tag, kw in variants.items():
        flow.zero_grad()
        pred = torch.tensor(g["pred"], dtype=dtype, requires_grad=True)
        sigma = torch.tensor(g["sigma"], dtype=dtype, requires_grad=True)
        target, weight = torch.tensor(g["target"], dtype=dtype), torch.tensor(g["weights"], dtype=dtype)
        loss = rle_loss(pred, sigma, target, weight, flow, **kw)
        assert loss.dtype == dtype
        rel = _rel(loss.detach(), g[tag + suffix])
        worst = max(worst, rel)
        assert rel <= LOSS_REL, f"RLELoss {tag}{suffix}: relative deviation {rel:.3g} > {LOSS_REL:g}"
        if dtype == torch.float64:
            loss.backward()
            for name, got in (
                ("pred", pred.grad),
                ("sigma", sigma.grad),
                ("flow_s0_0_weight", flow.s[0][0].weight.grad),
            ):
                want = g[f"{tag}_grad_{name}"]
                dev = float(np.abs(got.numpy() - want).max() / max(1.0, np.abs(want).max()))
                assert dev <= LOSS_REL, f"RLELoss {tag} gradient {name}: {dev:.3g}"
            assert (pred.grad[torch.from_numpy(g["weights"]) == 0] == 0).all()  # a zero weight moves nothing
    with torch.no_grad():
        log_prob = flow.log_prob(torch.from_numpy(g["points"]).to(dtype)).double().numpy()
    assert np.abs(log_prob - g["log_prob"]).max() / np.abs(g["log_prob"]).max() <= LOSS_REL
    print(f"[train-golden] RLELoss {suffix}: max relative deviation {worst:.3g}")


def test_rle_config_loss_goes_through_pose_loss():
    """``pose_loss(("rle",), ...)`` is RLELoss on the head's coordinates and sigmas (and needs the flow)."""
    from training.losses import pose_loss, rle_loss

    g = np.load(ZOO_GOLDEN / "rle_loss.npz")
    flow = _rle_flow(torch.float64)
    t = {k: torch.from_numpy(g[k]) for k in ("pred", "sigma", "target", "weights")}
    outputs, targets = (
        {"coords": t["pred"], "sigma": t["sigma"]},
        {"keypoint_labels": t["target"], "keypoint_weights": t["weights"]},
    )
    total, terms = pose_loss(("rle",), outputs, targets, flow)
    assert (
        float(total) == float(terms["rle"]) == float(rle_loss(t["pred"], t["sigma"], t["target"], t["weights"], flow))
    )
    assert _rel(total, g["laplace_f64"]) <= LOSS_REL
    with pytest.raises(ValueError, match="flow"):
        pose_loss(("rle",), outputs, targets)
    with pytest.raises(ValueError, match="q_distribution"):
        rle_loss(t["pred"], t["sigma"], t["target"], t["weights"], flow, q_distribution="cauchy")


def test_mpii_sampler_and_pipeline_equal_mmpose():
    """MPII's train pipeline (no RandomHalfBody, RandomBBoxTransform(shift_prob=0), MPII flip pairs, the annotation's
    own center / scale padded by GetBBoxCenterScale) given a seed: MMPose's draws, box, crop, keypoints, targets."""
    from evaluation.mpii import read_mpii
    from models.codecs import RegressionLabel
    from models.keypoints import MPII16
    from training.transforms import MPII_AUGMENT

    g = np.load(ZOO_GOLDEN / "mpii_transforms.npz")
    inst = read_mpii(ZOO_GOLDEN / "mpii_val.json")[0]
    image = np.load(ZOO_GOLDEN / "pipeline.npz")["image_rgb"]
    codec = RegressionLabel((256, 256))
    flips = 0
    for i, seed in enumerate(g["seeds"]):
        d = sample_draws(
            np.random.RandomState(int(seed)),
            inst.visible,
            MPII_AUGMENT,
            MPII16.flip_index(),
            MPII16.upper_body_ids,
            MPII16.lower_body_ids,
        )
        assert d.flip == bool(g["flip"][i]) and d.half_body is None, f"seed {seed}"
        assert np.array_equal(d.offset, g["offset"][i]) and (d.offset == 0).all()  # shift_prob 0
        assert d.scale == g["scale"][i] and d.rotation == g["rotation"][i]
        flips += d.flip
        s = apply_topdown(
            image,
            inst.bbox,
            inst.keypoints,
            inst.visible,
            d,
            (256, 256),
            flip_index=MPII16.flip_index(),
            center_scale=(inst.center, inst.scale),
        )
        assert_close(s.center, g["center"][i], TRANSFORM_PX, "center")
        assert_close(s.scale, g["box_scale"][i], TRANSFORM_PX, "scale")
        assert np.array_equal(s.keypoints_visible, g["crop_keypoints_visible"][i])
        assert_close(s.keypoints, g["crop_keypoints"][i], TRANSFORM_PX, "keypoints")
        assert_close(s.crop, g["crop"][i], UINT8_LEVELS, "crop")
        enc = codec.encode(s.keypoints[None], s.keypoints_visible[None])
        assert np.array_equal(enc["keypoint_weights"][0], g["keypoint_weights"][i])
        assert_close(enc["keypoint_labels"][0], g["keypoint_labels"][i], TRANSFORM_PX / 256, "labels")
    assert 0 < flips < len(g["seeds"])  # both branches ran
