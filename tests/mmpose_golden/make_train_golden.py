#!/usr/bin/env python3
"""Write the training golden files into tests/data/mmpose_train/ using MMPose 1.3.2's own loss and transform code.

Run in the SEPARATE MMPose virtual environment of ``make_golden.py`` (same import shims; see README.md):

    cd <repo root> && /work/mmpose-venv/bin/python tests/mmpose_golden/make_train_golden.py

What is written (``tests/training/test_mmpose_golden.py`` compares ``training/`` with it):

* ``losses.npz``: named random inputs (coordinates, softmax heatmaps, normalised Gaussian targets, keypoint weights
  with zeros) in float64 and float32, and the values of MMPose's ``SmoothL1Loss``, ``JSDiscretLoss`` and
  ``KeypointMSELoss`` (``use_target_weight=True``), plus each zoo config's head loss: the ``MultipleLossWrapper``
  built from the config file's ``model.head.loss``, summed as ``DSNTHead.loss`` sums it (or ``HeatmapHead``'s
  single ``KeypointMSELoss``). Also whether MMPose's JSDiscretLoss gradient is finite when a weight is 0.
* ``transforms.npz``: a synthetic image with one annotated person, and for each seed the train pipeline of the
  configs (``GetBBoxCenterScale -> RandomFlip(horizontal) -> RandomHalfBody -> RandomBBoxTransform ->
  TopdownAffine -> GenerateTarget``) after ``np.random.seed(seed)``, for an integral codec (128x128, heatmap 32x32)
  and a heatmap codec (96x128, heatmap 24x32): the random draws MMPose made (flip, half-body keypoint ids,
  box offset / scale / rotation), the resulting box center / scale / rotation, the crop, the transformed keypoints
  and the encoded targets.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))

from make_golden import CONFIGS, install_import_shims, load_recipe, output_dir  # noqa: E402

SEEDS = tuple(range(12))
#: (tag, codec config, input size)
PIPELINES = (
    (
        "integral",
        dict(type="IntegralRegressionLabel", input_size=(128, 128), heatmap_size=(32, 32), sigma=2.0, normalize=True),
    ),
    ("heatmap", dict(type="MSRAHeatmap", input_size=(96, 128), heatmap_size=(24, 32), sigma=2.0)),
)
#: A person in the 320x240 synthetic image: x, y, COCO visibility (0 = not labelled).
KEYPOINTS = np.array(
    [
        [160, 52, 2],
        [166, 46, 2],
        [154, 46, 2],
        [174, 50, 1],
        [146, 50, 2],
        [184, 82, 2],
        [136, 84, 2],
        [196, 116, 2],
        [124, 118, 1],
        [204, 148, 2],
        [114, 150, 2],
        [176, 150, 2],
        [146, 152, 2],
        [180, 190, 2],
        [142, 192, 0],
        [182, 226, 2],
        [140, 228, 0],
    ],
    dtype=np.float32,
)
BBOX_XYXY = np.array([100.0, 30.0, 220.0, 236.0], dtype=np.float32)


def main() -> None:
    out = output_dir(__doc__.split("\n")[0], "mmpose_train")

    install_import_shims()
    import cv2
    import mmengine
    import mmpose
    import mmpose.codecs  # noqa: F401
    import mmpose.models  # noqa: F401
    import scipy
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpose.datasets.datasets.utils import parse_pose_metainfo
    from mmpose.datasets.transforms import (
        GenerateTarget,
        GetBBoxCenterScale,
        RandomBBoxTransform,
        RandomFlip,
        RandomHalfBody,
        TopdownAffine,
    )
    from mmpose.models.losses import JSDiscretLoss, KeypointMSELoss, SmoothL1Loss
    from mmpose.registry import MODELS

    init_default_scope("mmpose")
    recipe = load_recipe()
    cfg_root = Path(mmpose.__file__).parent / ".mim" / "configs"
    sizes = {}

    # ---------------------------------------------------------------- losses
    n, k, h, w = 2, 17, 10, 8
    rng = np.random.RandomState(20240917)
    logits = recipe.recipe_array("loss.logits", (n, k, h, w), scale=2.0).astype(np.float64)
    pred_hm = np.exp(logits - logits.max(axis=(2, 3), keepdims=True))
    pred_hm /= pred_hm.sum(axis=(2, 3), keepdims=True)
    ys, xs = np.mgrid[0:h, 0:w]
    centers = rng.uniform([-2, -2], [w + 1, h + 1], size=(n, k, 2))
    gt_hm = np.exp(-((xs - centers[..., :1, None]) ** 2 + (ys - centers[..., 1:, None]) ** 2) / (2 * 2.0**2))
    gt_hm = gt_hm.reshape(n, k, h, w)
    gt_hm[0, 3] = 0.0  # an absent keypoint: an all-zero target map
    gt_hm = gt_hm / (gt_hm.sum(axis=(2, 3), keepdims=True) + 1e-24)
    unnorm_hm = np.exp(-((xs - centers[..., :1, None]) ** 2 + (ys - centers[..., 1:, None]) ** 2) / 8.0).reshape(
        n, k, h, w
    )
    pred_coords = rng.uniform(-0.2, 1.2, size=(n, k, 2))
    gt_coords = rng.uniform(0.0, 1.0, size=(n, k, 2))
    gt_coords[1, 5] = [2.5, -1.5]  # far outside (smooth-L1's linear part)
    weights = (rng.uniform(size=(n, k)) > 0.25).astype(np.float64)
    weights[0, 3] = 0.0
    pred_raw_hm = recipe.recipe_array("loss.raw_heatmaps", (n, k, h, w), scale=0.3).astype(np.float64)

    losses = {
        "pred_heatmaps": pred_hm,
        "target_heatmaps": gt_hm,
        "target_heatmaps_unnorm": unnorm_hm,
        "pred_raw_heatmaps": pred_raw_hm,
        "pred_coords": pred_coords,
        "target_coords": gt_coords,
        "weights": weights,
    }
    t = {kk: torch.from_numpy(v) for kk, v in losses.items()}
    for dtype, suffix in ((torch.float64, "_f64"), (torch.float32, "_f32")):
        c = {kk: v.to(dtype) for kk, v in t.items()}
        with torch.no_grad():
            losses["smooth_l1" + suffix] = SmoothL1Loss(use_target_weight=True)(
                c["pred_coords"], c["target_coords"], c["weights"]
            ).numpy()
            losses["js_discrete" + suffix] = JSDiscretLoss(use_target_weight=True)(
                c["pred_heatmaps"], c["target_heatmaps"], c["weights"]
            ).numpy()
            losses["mse_softmax" + suffix] = KeypointMSELoss(use_target_weight=True)(
                c["pred_heatmaps"], c["target_heatmaps"], c["weights"]
            ).numpy()
            losses["mse_heatmap" + suffix] = KeypointMSELoss(use_target_weight=True)(
                c["pred_raw_heatmaps"], c["target_heatmaps_unnorm"], c["weights"]
            ).numpy()
            # each config's head loss, built from the config file
            for name, rel in CONFIGS.items():
                head = Config.fromfile(str(cfg_root / rel)).model.head
                module = MODELS.build(head.loss)
                if head.type == "HeatmapHead":
                    total = module(c["pred_raw_heatmaps"], c["target_heatmaps_unnorm"], c["weights"])
                else:  # DSNTHead.loss: MultipleLossWrapper on [coords, heatmaps], summed
                    parts = module(
                        [c["pred_coords"], c["pred_heatmaps"]], [c["target_coords"], c["target_heatmaps"]], c["weights"]
                    )
                    total = parts[0] + parts[1]
                losses[f"config_{name}{suffix}"] = total.numpy()
    # MMPose's JSDiscretLoss gradient when a keypoint weight is 0 (torch's kl_div: xlogy(p, p) at p = 0)
    p = torch.from_numpy(pred_hm).float().requires_grad_(True)
    JSDiscretLoss(use_target_weight=True)(
        p, torch.from_numpy(gt_hm).float(), torch.from_numpy(weights).float()
    ).backward()
    losses["mmpose_js_grad_finite"] = np.array(bool(torch.isfinite(p.grad).all()))
    path = out / "losses.npz"
    np.savez_compressed(path, **losses)
    sizes[path.name] = path.stat().st_size

    # ---------------------------------------------------------------- transforms
    meta = parse_pose_metainfo(dict(from_file=str(cfg_root / "_base_" / "datasets" / "coco.py")))
    image = recipe.synthetic_image()
    tr: dict[str, np.ndarray] = {
        "image_rgb": image,
        "bbox_xyxy": BBOX_XYXY,
        "keypoints": KEYPOINTS[:, :2],
        "keypoints_visible": np.minimum(1, KEYPOINTS[:, 2]),
        "seeds": np.array(SEEDS),
        "upper_body_ids": np.array(meta["upper_body_ids"]),
        "lower_body_ids": np.array(meta["lower_body_ids"]),
        "flip_indices": np.array(meta["flip_indices"]),
    }
    for tag, codec in PIPELINES:
        tr[f"{tag}_input_size"] = np.array(codec["input_size"])
        flip, half_ids = RandomFlip(direction="horizontal"), RandomHalfBody()
        bbox_t = RandomBBoxTransform()
        steps = [
            GetBBoxCenterScale(),
            flip,
            half_ids,
            bbox_t,
            TopdownAffine(input_size=codec["input_size"]),
            GenerateTarget(encoder=codec),
        ]
        recorded: dict[str, list] = {}

        def record(name, fn, recorded=recorded):
            def wrapper(*a, **kw):
                r = fn(*a, **kw)
                recorded.setdefault(name, []).append(r)
                return r

            return wrapper

        half_ids._random_select_half_body = record("half", half_ids._random_select_half_body)
        bbox_t._get_transform_params = record("bbox", bbox_t._get_transform_params)
        rows: dict[str, list] = {}
        for seed in SEEDS:
            np.random.seed(seed)
            results = {
                "img": image.copy(),
                "img_shape": image.shape[:2],
                "bbox": BBOX_XYXY[None].copy(),
                "keypoints": KEYPOINTS[None, :, :2].copy(),
                "keypoints_visible": np.minimum(1, KEYPOINTS[None, :, 2]).copy(),
                "flip_indices": meta["flip_indices"],
                "upper_body_ids": meta["upper_body_ids"],
                "lower_body_ids": meta["lower_body_ids"],
            }
            for step in steps:
                results = step.transform(results)
            half = recorded["half"][-1][0]
            offset, scale, rotate = recorded["bbox"][-1]
            half_mask = np.zeros(17, bool)
            if half is not None:
                half_mask[list(half)] = True
            row = {
                "flip": bool(results["flip"]),
                "half_body": half is not None,
                "half_body_mask": half_mask,
                "offset": offset[0],
                "scale": scale[0, 0],
                "rotation": rotate[0],
                "center": results["bbox_center"][0],
                "box_scale": results["bbox_scale"][0],
                "bbox_rotation": results["bbox_rotation"][0],
                "crop": results["img"],
                "crop_keypoints": results["transformed_keypoints"][0],
                "crop_keypoints_visible": results["keypoints_visible"][0],
                "heatmaps": results["heatmaps"],
                "keypoint_weights": results["keypoint_weights"][0],
            }
            if "keypoint_labels" in results:
                row["keypoint_labels"] = results["keypoint_labels"][0]
            for kk, v in row.items():
                rows.setdefault(kk, []).append(v)
        for kk, v in rows.items():
            tr[f"{tag}_{kk}"] = np.stack([np.asarray(x) for x in v])
    path = out / "transforms.npz"
    np.savez_compressed(path, **tr)
    sizes[path.name] = path.stat().st_size
    versions = {
        "mmpose": mmpose.__version__,
        "mmengine": mmengine.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "opencv": cv2.__version__,
    }
    (out / "versions.json").write_text(json.dumps(versions, indent=1) + "\n")
    for name, size in sizes.items():
        print(f"{name}: {size / 1024:.1f} KiB")
    print("mmpose JSDiscretLoss gradient finite with a zero weight:", bool(losses["mmpose_js_grad_finite"]))


if __name__ == "__main__":
    main()
