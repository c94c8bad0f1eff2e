#!/usr/bin/env python3
"""Write the golden files of the regression / deep-ResNet zoo and MPII into tests/data/mmpose_zoo/ with MMPose's code.

Run in the SEPARATE MMPose virtual environment of ``make_golden.py`` (same import shims; see README.md):

    cd <repo root> && /work/mmpose-venv/bin/python tests/mmpose_golden/make_zoo_golden.py   # ~1 minute, 2 CPUs

The zoo entries come from ``models/zoo/entries.py`` (only their names and MMPose config paths are read; every value below
is computed by MMPose 1.3.2; the entries of ``models/zoo/families`` have their own scripts, e.g.
``make_resvar_golden.py``). What is written (read by ``tests/models/test_zoo_parity.py``):

* ``versions.json``: mmpose / mmengine / torch / numpy / scipy / OpenCV versions, recipe version.
* ``metafiles.json``: for each MMPose config of the zoo, its row of MMPose's model-zoo metafiles (``*.yml``):
  ``Weights`` URL and ``Results`` metrics (a row's ``Config`` matched with ``--`` read as ``-``: the Debias-IPR
  metafile spells its config ``ipr_res50_debias--8xb64-...``).
* ``train_configs.json``: for each MMPose config of the zoo, its training recipe: optimizer and lr, ``auto_scale_lr``
  base batch, batch size, epochs, validation interval, the warm-up and multi-step schedules, the head's loss types,
  the initialisation (model / backbone ``init_cfg``: checkpoint and prefix), the train pipeline's transforms (types,
  ``RandomBBoxTransform``'s ``shift_prob``), the codec, the evaluator (type, ``score_mode``) and ``save_best``.
* ``schema_mpii.json``: MPII keypoint names, flip indices, sigmas, upper / lower body ids, skeleton as
  ``parse_pose_metainfo`` reads ``configs/_base_/datasets/mpii.py``.
* ``state_dict_shapes.json.gz``: every state-dict key (in order) and shape of each zoo entry added with the
  regression zoo, built from its MMPose config at full width (gzip: the ResNet-152 key lists are long).
* ``pipeline.npz``: the synthetic image, two boxes, and ``GetBBoxCenterScale`` + ``TopdownAffine`` crops, centers and
  scales for 192x256, 288x384 and 256x256 inputs.
* ``small_<name>.npz``: the entry's MMPose config with an 8-channel ResNet stem and base (same depth, head, input
  size, test config; heatmap heads 16-channel deconvolutions), recipe-filled, on the pipeline's crops, in float32 and
  float64 (``_f64``): the head's raw single-pass output (coordinates, RLE's [B, K, 4], or heatmaps of joints 0..2),
  the flip-test prediction of ``head.predict`` (crop keypoints and scores) and the full inference path's image
  keypoints and scores (``test_step`` in float32, ``predict`` on the float64 input).
* ``full_<name>.npz``: the same for ``td-reg_res50`` and ``td-reg_res50_rle`` at full width.
* ``head_regression.npz``: ``RegressionHead`` and ``RLEHead`` (16 input channels, K = 17 and 16) behind
  ``GlobalAveragePooling`` on given unit-scale features (so coordinates and sigma logits are O(1) and the sigmoid is
  not saturated, unlike in the deep random networks): raw output and ``predict`` with the flip test (keypoints, scores).
* ``rle_loss.npz``: inputs (predictions, sigma logits, targets, keypoint weights with zeros) and MMPose's ``RLELoss``
  (``use_target_weight=True``, its RealNVP flow recipe-filled under ``head.loss_module.``) for residual + Laplace
  (the configs'), residual + Gaussian, and no residual, in float64 and float32; float64 gradients with respect to
  the predictions, the sigma logits and one flow weight; ``RealNVP.log_prob`` of given points.
* ``regression_label.npz``: ``RegressionLabel(input_size=(192, 256))`` encode of keypoints on and off the crop edges.
* ``mpii_val.json`` + ``mpii_gt_val.mat``: a small MPII-format annotation file (MMPose's json layout, Matlab 1-based
  centers and joints, scales in 200-pixel units, one instance with center -1) and its head boxes
  (``headboxes_src`` [2, 2, N], one of zero size).
* ``mpii_dataset.npz``: ``MpiiDataset(test_mode=True, headbox_file=...)``'s instances (bbox center / scale / xyxy,
  keypoints, visibility, head size, image ids) and the val pipeline's crops, centers and scales at 256x256.
* ``mpii_pckh.json``: predictions (0-based image pixels) and ``MpiiPCKAccuracy``'s metrics on them.
* ``mpii_transforms.npz``: the MPII train pipeline (``GetBBoxCenterScale -> RandomFlip -> RandomBBoxTransform(
  shift_prob=0) -> TopdownAffine -> GenerateTarget(RegressionLabel)``) for seeds 0..7 after ``np.random.seed``:
  MMPose's draws, box, crop, keypoints and targets.
* ``metric_bbox_rle_oks_nms.json``: ``CocoMetric(score_mode='bbox_rle')`` (RLE's configs) results and stats on the
  inputs of ``tests/data/mmpose_metric`` (COCOeval from pycocotools, aliased as xtcocotools by the import shims;
  :func:`pycocotools_cocoeval` adapts the call to xtcocotools' signature: sigmas, and ``use_area`` which is True).
"""

from __future__ import annotations

import gzip
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

from make_golden import BBOXES_XYXY, GoldenWriter, fill, install_import_shims, load_recipe, output_dir  # noqa: E402

#: Entries compared at full width (ResNet-50: a few seconds each in the tests).
FULL = ("td-reg_res50", "td-reg_res50_rle")
#: Entries of the seed zoo (their goldens are make_golden.py's).
SEED = ("ipr_res50", "ipr_res50_dsnt", "ipr_res50_debias", "td-hm_res50")
SMALL_WIDTH = 8
SIZES = ((192, 256), (288, 384), (256, 256))
MPII_SEEDS = tuple(range(8))


def pycocotools_cocoeval(cocoeval_cls):
    """xtcocotools' ``COCOeval(gt, dt, iou_type, sigmas, use_area)`` on pycocotools' class (``use_area`` must be
    True: pycocotools always uses the annotation area)."""

    class COCOeval(cocoeval_cls):
        def __init__(self, gt=None, dt=None, iou_type="keypoints", sigmas=None, use_area=True):
            assert use_area, "pycocotools always uses areas"
            super().__init__(gt, dt, iou_type)
            if sigmas is not None:
                self.params.kpt_oks_sigmas = np.asarray(sigmas)

    return COCOeval


def _mpii_annotations(rng: np.random.RandomState) -> tuple[list[dict], np.ndarray]:
    """Five MPII-format people in the 320x240 synthetic image (Matlab 1-based), and their head boxes [2, 2, N]."""
    template = np.array(
        [
            [0.40, 0.95], [0.42, 0.75], [0.44, 0.55], [0.56, 0.55], [0.58, 0.75], [0.60, 0.95],
            [0.50, 0.55], [0.50, 0.25], [0.50, 0.18], [0.50, 0.02], [0.30, 0.50], [0.33, 0.38],
            [0.38, 0.25], [0.62, 0.25], [0.67, 0.38], [0.70, 0.50],
        ]
    )  # fmt: skip
    anns, heads = [], []
    for i, (cx, cy, s) in enumerate(((100.0, 110.0, 1.0), (220.5, 130.25, 0.8), (160.0, 90.0, 1.3), (60.0, 60.0, 0.4))):
        size = s * 200.0 / 1.25
        xy = (template - 0.5) * size + [cx, cy] + rng.normal(0, 2, size=(16, 2))
        vis = (rng.uniform(size=16) > 0.2).astype(int)
        vis[9] = vis[12] = vis[13] = 1
        xy[vis == 0] = 0.0 if i % 2 else -1.0  # MPII's unlabelled joints
        anns.append(
            {
                "joints_vis": vis.tolist(),
                "joints": np.round(xy, 3).tolist(),
                "image": f"{10000001 + i:09d}.jpg",
                "scale": s,
                "center": [cx, cy],
            }
        )
        head_top, neck = xy[9], xy[8] if vis[8] else xy[9] + [0, size * 0.16]
        half = 0.09 * size
        heads.append([[head_top[0] - half, head_top[1] - 2], [neck[0] + half, neck[1] + 2]])
    # a person whose center is -1 (MMPose skips the 15-pixel shift) and whose head box has zero size
    anns.append({"joints_vis": [1] * 16, "joints": (template * 50 + 120).round(2).tolist(), "image": "010000009.jpg",
                 "scale": 0.5, "center": [-1.0, -1.0]})  # fmt: skip
    heads.append([[130.0, 121.0], [130.0, 121.0]])
    return anns, np.transpose(np.asarray(heads, dtype=np.float64), (1, 2, 0))


def main() -> None:
    out = output_dir(__doc__.split("\n")[0], "mmpose_zoo")

    install_import_shims()
    import cv2
    import mmengine
    import mmpose
    import mmpose.codecs  # noqa: F401
    import mmpose.models  # noqa: F401
    import scipy
    import scipy.io
    import torch
    import yaml
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import init_default_scope
    from mmpose.codecs import RegressionLabel
    from mmpose.datasets.datasets.body import MpiiDataset
    from mmpose.datasets.datasets.utils import parse_pose_metainfo
    from mmpose.datasets.transforms import (
        GenerateTarget,
        GetBBoxCenterScale,
        PackPoseInputs,
        RandomBBoxTransform,
        RandomFlip,
        TopdownAffine,
    )
    from mmpose.evaluation.metrics import CocoMetric, MpiiPCKAccuracy
    from mmpose.models.losses import RLELoss
    from mmpose.registry import MODELS
    from mmpose.structures import PoseDataSample

    from models.zoo import RESNET_ZOO as ZOO

    init_default_scope("mmpose")
    torch.set_grad_enabled(False)
    recipe = load_recipe()
    cfg_root = Path(mmpose.__file__).parent / ".mim" / "configs"
    writer = GoldenWriter(out)
    save_npz, save_json = writer.npz, writer.json

    save_json(
        "versions.json",
        {
            "mmpose": mmpose.__version__,
            "mmengine": mmengine.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "opencv": cv2.__version__,
            "recipe_version": recipe.RECIPE_VERSION,
        },
    )

    def rel(cfg) -> str:
        return cfg.mmpose_config.removeprefix("configs/")

    # ---- the model-zoo metafiles (*.yml) of every config the zoo mirrors
    wanted = {c.mmpose_config for c in ZOO.values()}
    rows = {}
    for yml in sorted((cfg_root / "body_2d_keypoint").rglob("*.yml")):
        for m in (yaml.safe_load(yml.read_text()) or {}).get("Models", []):
            config = m["Config"].replace("--", "-")  # resnet_debias_coco.yml spells "ipr_res50_debias--8xb64"
            if config in wanted:
                rows[config] = {
                    "metafile": str(yml.relative_to(cfg_root.parent)),
                    "config": m["Config"],
                    "weights": m["Weights"],
                    "metrics": m["Results"][0]["Metrics"],
                    "dataset": m["Results"][0]["Dataset"],
                }
    save_json("metafiles.json", rows)

    def losses_of(loss) -> list[str]:
        if loss["type"] == "MultipleLossWrapper":
            return [x["type"] for x in loss["losses"]]
        return [loss["type"]]

    recipes = {}
    for zc in ZOO.values():
        c = Config.fromfile(str(cfg_root / rel(zc)))
        warm, steps = c.param_scheduler
        init = c.model.get("init_cfg") or c.model.backbone.get("init_cfg")
        train_steps = c.train_dataloader.dataset.pipeline
        bbox_t = next(t for t in train_steps if t["type"] == "RandomBBoxTransform")
        recipes[zc.mmpose_config] = {
            "optimizer": c.optim_wrapper.optimizer.type,
            "lr": c.optim_wrapper.optimizer.lr,
            "base_batch_size": c.auto_scale_lr.base_batch_size,
            "batch_size": c.train_dataloader.batch_size,
            "max_epochs": c.train_cfg.max_epochs,
            "val_interval": c.train_cfg.val_interval,
            "warmup": {
                "type": warm.type,
                "start_factor": warm.start_factor,
                "end": warm.end,
                "by_epoch": warm.by_epoch,
            },
            "steps": {"type": steps.type, "milestones": list(steps.milestones), "gamma": steps.gamma},
            "losses": losses_of(c.model.head.loss),
            "init": {"on": "model" if c.model.get("init_cfg") else "backbone", **dict(init)},
            "train_pipeline": [t["type"] for t in train_steps],
            "shift_prob": bbox_t.get("shift_prob", None),
            "codec": dict(c.codec),
            "evaluator": {"type": c.val_evaluator.type, "score_mode": c.val_evaluator.get("score_mode")},
            "save_best": c.default_hooks.checkpoint.save_best,
        }
    save_json("train_configs.json", recipes)

    mpii_meta = parse_pose_metainfo(dict(from_file=str(cfg_root / "_base_" / "datasets" / "mpii.py")))
    save_json(
        "schema_mpii.json",
        {
            "keypoint_names": [mpii_meta["keypoint_id2name"][i] for i in range(mpii_meta["num_keypoints"])],
            "flip_indices": [int(i) for i in mpii_meta["flip_indices"]],
            "sigmas": [float(s) for s in mpii_meta["sigmas"]],
            "upper_body_ids": [int(i) for i in mpii_meta["upper_body_ids"]],
            "lower_body_ids": [int(i) for i in mpii_meta["lower_body_ids"]],
            "skeleton": [[int(a), int(b)] for a, b in mpii_meta["skeleton_links"]],
        },
    )
    coco_meta = parse_pose_metainfo(dict(from_file=str(cfg_root / "_base_" / "datasets" / "coco.py")))
    flip_by_k = {17: [int(i) for i in coco_meta["flip_indices"]], 16: [int(i) for i in mpii_meta["flip_indices"]]}

    # ---- crops of the synthetic image, as make_golden.py cuts them (MMPose works on BGR)
    image_rgb = recipe.synthetic_image()
    pipeline = {"image_rgb": image_rgb, "bboxes_xyxy": BBOXES_XYXY}
    packed_by: dict[tuple[tuple[int, int], int], list] = {}
    for size in SIZES:
        tag = f"{size[0]}x{size[1]}"
        centers, scales, crops = [], [], []
        for k in (17, 16):
            packed = []
            for i, box in enumerate(BBOXES_XYXY):
                results = {
                    "img": np.ascontiguousarray(image_rgb[..., ::-1]),
                    "img_shape": image_rgb.shape[:2],
                    "ori_shape": image_rgb.shape[:2],
                    "bbox": box[None].copy(),
                    "bbox_score": np.ones(1, dtype=np.float32),
                    "id": i,
                    "img_id": 0,
                    "img_path": "synthetic",
                    "flip_indices": flip_by_k[k],
                }
                results = GetBBoxCenterScale(padding=1.25).transform(results)
                results = TopdownAffine(input_size=size).transform(results)
                if k == 17:
                    centers.append(np.asarray(results["input_center"], dtype=np.float32))
                    scales.append(np.asarray(results["input_scale"], dtype=np.float32))
                    crops.append(results["img"][..., ::-1].copy())
                packed.append(PackPoseInputs().transform(results))
            packed_by[(size, k)] = packed
        pipeline[f"input_center_{tag}"] = np.stack(centers)
        pipeline[f"input_scale_{tag}"] = np.stack(scales)
        pipeline[f"crops_rgb_{tag}"] = np.stack(crops)
    save_npz("pipeline.npz", **pipeline)

    def run_model(cfg, k: int) -> dict:
        """Single pass, head.predict flip test and the full inference path, float32 and float64."""
        model = MODELS.build(cfg.model).eval()
        fill(model, recipe)
        size = tuple(cfg.codec["input_size"])
        data = pseudo_collate(packed_by[(size, k)])
        batch = model.data_preprocessor(data, False)
        inputs, samples = batch["inputs"], batch["data_samples"]
        res = {"input_size": np.array(size)}
        for suffix, dtype in (("", torch.float32), ("_f64", torch.float64)):
            model.to(dtype)
            x = inputs.to(dtype)
            feats = model.extract_feat(x)
            feats_flip = model.extract_feat(x.flip(-1))
            test_cfg = dict(cfg.model.test_cfg)
            if cfg.model.head.type == "HeatmapHead":
                res["raw" + suffix] = model.head.forward(feats)[:1, :1].numpy()  # sample 0, joint 0: kept small
            else:
                res["raw" + suffix] = model.head.forward(feats).numpy()
            preds = model.head.predict([feats, feats_flip], samples, test_cfg=test_cfg)
            if isinstance(preds, tuple):
                preds = preds[0]
            res["keypoints_crop_flip" + suffix] = np.concatenate([p.keypoints for p in preds])
            res["scores_flip" + suffix] = np.concatenate([p.keypoint_scores for p in preds])
            results = (
                model.test_step(data) if dtype == torch.float32 else model.predict(x, [s.clone() for s in samples])
            )
            res["keypoints_image_flip" + suffix] = np.concatenate([r.pred_instances.keypoints for r in results])
            res["scores_image_flip" + suffix] = np.concatenate([r.pred_instances.keypoint_scores for r in results])
        for key, v in res.items():
            if np.issubdtype(np.asarray(v).dtype, np.floating):
                assert np.isfinite(v).all(), f"{cfg.filename}: non-finite {key}"
        return res, model

    # ---- state dicts (full width) and small-width outputs of every entry added with the regression zoo
    shapes_all = {}
    for name, zc in ZOO.items():
        if name in SEED:
            continue
        cfg = Config.fromfile(str(cfg_root / rel(zc)))
        k = cfg.model.head.get("out_channels", cfg.model.head.get("num_joints"))
        full = MODELS.build(cfg.model)
        shapes_all[name] = {kk: list(v.shape) for kk, v in full.state_dict().items()}
        del full
        small = Config.fromfile(str(cfg_root / rel(zc)))
        small.model.backbone.update(stem_channels=SMALL_WIDTH, base_channels=SMALL_WIDTH, init_cfg=None)
        small.model.head.in_channels = SMALL_WIDTH * 8 * 4
        if small.model.head.type == "HeatmapHead":
            small.model.head.deconv_out_channels = (16, 16, 16)
        res, _ = run_model(small, k)
        save_npz(f"small_{name}.npz", **res)
        print(
            f"{name}: {len(shapes_all[name])} keys; small keypoints[0, :2] = {res['keypoints_crop_flip'][0, :2].tolist()}"
        )
        if name in FULL:
            res, _ = run_model(Config.fromfile(str(cfg_root / rel(zc))), k)
            save_npz(f"full_{name}.npz", **res)
    path = out / "state_dict_shapes.json.gz"
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", filename="", mtime=0) as f:
        f.write(json.dumps(shapes_all).encode("utf-8"))  # mtime 0: the same bytes on every run
    writer.added(path)

    # ---- regression heads on unit-scale features (not saturated)
    heads = {}
    for k in (17, 16):
        feats = torch.from_numpy(recipe.recipe_array(f"reg_head_feats_{k}", (2, 16, 4, 3)))
        feats_flip = torch.from_numpy(recipe.recipe_array(f"reg_head_feats_flip_{k}", (2, 16, 4, 3)))
        heads[f"k{k}_feats"], heads[f"k{k}_feats_flip"] = feats.numpy(), feats_flip.numpy()
        gap = MODELS.build(dict(type="GlobalAveragePooling"))
        samples = [PoseDataSample(metainfo=dict(flip_indices=flip_by_k[k], input_size=(192, 256))) for _ in range(2)]
        for head_type in ("RegressionHead", "RLEHead"):
            head = MODELS.build(
                dict(
                    type=head_type,
                    in_channels=16,
                    num_joints=k,
                    decoder=dict(type="RegressionLabel", input_size=(192, 256)),
                )
            ).eval()
            fill(head, recipe, prefix="head.")
            tag = f"k{k}_{head_type}"
            heads[f"{tag}_raw"] = head.forward(gap((feats,))).numpy()
            preds = head.predict(
                [gap((feats,)), gap((feats_flip,))], samples, test_cfg=dict(flip_test=True, shift_coords=True)
            )
            heads[f"{tag}_keypoints_flip"] = np.concatenate([p.keypoints for p in preds])
            heads[f"{tag}_scores_flip"] = np.concatenate([p.keypoint_scores for p in preds])
            preds = head.predict(gap((feats,)), samples, test_cfg=dict(flip_test=False))
            heads[f"{tag}_keypoints"] = np.concatenate([p.keypoints for p in preds])
            heads[f"{tag}_scores"] = np.concatenate([p.keypoint_scores for p in preds])
    save_npz("head_regression.npz", **heads)

    # ---- RLELoss with a recipe-filled flow
    torch.set_grad_enabled(True)
    n, k = 3, 17
    rs = np.random.RandomState(20260601)
    pred = rs.uniform(-0.1, 1.1, size=(n, k, 2))
    target = np.clip(pred + rs.normal(0, 0.08, size=(n, k, 2)), -0.2, 1.2)
    target[2, 4] = [1.9, -0.7]  # a far-off target
    sigma = rs.normal(-2.0, 1.5, size=(n, k, 2))
    weights = (rs.uniform(size=(n, k)) > 0.2).astype(np.float64)
    weights[0, 0] = 0.0
    points = rs.normal(0, 1.5, size=(12, 2))
    rle = {"pred": pred, "sigma": sigma, "target": target, "weights": weights, "points": points}
    for tag, kw in {
        "laplace": dict(residual=True, q_distribution="laplace"),
        "gaussian": dict(residual=True, q_distribution="gaussian"),
        "noresidual": dict(residual=False),
    }.items():
        module = RLELoss(use_target_weight=True, **kw)
        fill(module, recipe, prefix="head.loss_module.")
        for dtype, suffix in ((torch.float64, "_f64"), (torch.float32, "_f32")):
            module.to(dtype)
            p_t = torch.tensor(pred, dtype=dtype, requires_grad=True)
            s_t = torch.tensor(sigma, dtype=dtype, requires_grad=True)
            module.zero_grad()
            loss = module(p_t, s_t, torch.tensor(target, dtype=dtype), torch.tensor(weights, dtype=dtype)[..., None])
            loss.backward()
            rle[f"{tag}{suffix}"] = loss.detach().numpy()
            if dtype == torch.float64:
                rle[f"{tag}_grad_pred"] = p_t.grad.numpy()
                rle[f"{tag}_grad_sigma"] = s_t.grad.numpy()
                rle[f"{tag}_grad_flow_s0_0_weight"] = module.flow_model.s[0][0].weight.grad.numpy()
                if tag == "laplace":
                    with torch.no_grad():
                        rle["log_prob"] = module.flow_model.log_prob(torch.from_numpy(points)).numpy()
    torch.set_grad_enabled(False)
    save_npz("rle_loss.npz", **rle)
    print("RLELoss laplace f64:", float(rle["laplace_f64"]))

    # ---- RegressionLabel encode (192x256: w != h)
    codec = RegressionLabel(input_size=(192, 256))
    kp = rs.uniform(-10, 270, size=(2, 17, 2)).astype(np.float32)
    kp[0, 0], kp[0, 1], kp[0, 2], kp[0, 3] = [0, 0], [191, 255], [191.5, 10], [10, 255.01]
    vis = (rs.uniform(size=(2, 17)) > 0.3).astype(np.float32)
    enc = codec.encode(kp, vis)
    save_npz("regression_label.npz", keypoints=kp, visible=vis, **{kk: np.asarray(v) for kk, v in enc.items()})

    # ---- MPII: annotation file, head boxes, MpiiDataset, val pipeline, PCKh
    anns, headboxes = _mpii_annotations(rs)
    ann_path, mat_path = out / "mpii_val.json", out / "mpii_gt_val.mat"
    ann_path.write_text(json.dumps(anns) + "\n")
    scipy.io.savemat(str(mat_path), {"headboxes_src": headboxes})
    data = mat_path.read_bytes()  # the 116-byte text header carries a creation date: fix it, for the same bytes
    mat_path.write_bytes(b"MATLAB 5.0 MAT-file, written by make_zoo_golden.py".ljust(116, b" ") + data[116:])
    writer.added(ann_path)
    writer.added(mat_path)
    ds = MpiiDataset(
        ann_file=str(ann_path),
        headbox_file=str(mat_path),
        data_mode="topdown",
        test_mode=True,
        data_prefix=dict(img=""),
        pipeline=[],
    )
    infos = [ds.get_data_info(i) for i in range(len(ds))]
    mpii = {
        "img_id": np.array([d["img_id"] for d in infos]),
        "bbox_center": np.concatenate([d["bbox_center"] for d in infos]),
        "bbox_scale": np.concatenate([d["bbox_scale"] for d in infos]),
        "bbox": np.concatenate([d["bbox"] for d in infos]),
        "keypoints": np.concatenate([d["keypoints"] for d in infos]),
        "keypoints_visible": np.concatenate([d["keypoints_visible"] for d in infos]),
        "head_size": np.concatenate([d["head_size"] for d in infos]),
    }
    centers, scales, crops = [], [], []
    for d in infos:
        r = dict(d, img=np.ascontiguousarray(image_rgb[..., ::-1]), img_shape=image_rgb.shape[:2])
        r = GetBBoxCenterScale(padding=1.25).transform(r)
        r = TopdownAffine(input_size=(256, 256)).transform(r)
        centers.append(r["input_center"])
        scales.append(r["input_scale"])
        crops.append(r["img"][..., ::-1].copy())
    mpii.update(input_center=np.stack(centers), input_scale=np.stack(scales), crops_rgb=np.stack(crops))
    save_npz("mpii_dataset.npz", **mpii)

    # predictions at chosen head-normalised distances: around 0.1 and 0.5 and far off, in random directions
    gt = mpii["keypoints"]
    norm = rs.choice([0.0, 0.05, 0.095, 0.105, 0.3, 0.49, 0.51, 0.8, 2.0], size=gt.shape[:2])
    angle = rs.uniform(0, 2 * np.pi, size=gt.shape[:2])
    head = mpii["head_size"].reshape(-1, 1)
    offset = np.stack([np.cos(angle), np.sin(angle)], axis=-1) * (norm * np.maximum(head, 1.0))[..., None]
    preds = (gt - 1.0 + offset).astype(np.float32)  # 0-based image pixels, as MMPose's predictions
    metric = MpiiPCKAccuracy()
    metric.dataset_meta = mpii_meta
    samples = [
        {
            "pred_instances": {"keypoints": preds[i : i + 1]},
            "gt_instances": {
                "keypoints": gt[i : i + 1],
                "keypoints_visible": mpii["keypoints_visible"][i : i + 1],
                "head_size": mpii["head_size"][i : i + 1],
            },
        }
        for i in range(len(preds))
    ]
    metric.process([{}] * len(samples), samples)
    pckh = metric.compute_metrics(metric.results)
    save_json("mpii_pckh.json", {"predictions": preds.tolist(), "metrics": {kk: float(v) for kk, v in pckh.items()}})
    print("MpiiPCKAccuracy:", {kk: round(float(v), 3) for kk, v in pckh.items()})

    # ---- MPII train pipeline draws (RandomFlip, RandomBBoxTransform(shift_prob=0), no RandomHalfBody)
    tr = {"seeds": np.array(MPII_SEEDS)}
    base = infos[0]
    flip, bbox_t = RandomFlip(direction="horizontal"), RandomBBoxTransform(shift_prob=0)
    recorded: list = []
    original = bbox_t._get_transform_params

    def record(*a, **kw):
        r = original(*a, **kw)
        recorded.append(r)
        return r

    bbox_t._get_transform_params = record
    steps = [
        GetBBoxCenterScale(),
        flip,
        bbox_t,
        TopdownAffine(input_size=(256, 256)),
        GenerateTarget(encoder=dict(type="RegressionLabel", input_size=(256, 256))),
    ]
    rows_t: dict[str, list] = {}
    for seed in MPII_SEEDS:
        np.random.seed(seed)
        r = {
            "img": image_rgb.copy(),
            "img_shape": image_rgb.shape[:2],
            "bbox": base["bbox"].copy(),
            "bbox_center": base["bbox_center"].copy(),
            "bbox_scale": base["bbox_scale"].copy(),
            "keypoints": base["keypoints"].copy(),
            "keypoints_visible": base["keypoints_visible"].astype(np.float32).copy(),
            "flip_indices": mpii_meta["flip_indices"],
        }
        for step in steps:
            r = step.transform(r)
        offset_d, scale_d, rotate_d = recorded[-1]
        row = {
            "flip": bool(r["flip"]),
            "offset": offset_d[0],
            "scale": scale_d[0, 0],
            "rotation": rotate_d[0],
            "center": r["bbox_center"][0],
            "box_scale": r["bbox_scale"][0],
            "crop": r["img"],
            "crop_keypoints": r["transformed_keypoints"][0],
            "crop_keypoints_visible": r["keypoints_visible"][0],
            "keypoint_labels": r["keypoint_labels"][0],
            "keypoint_weights": r["keypoint_weights"][0],
        }
        for kk, v in row.items():
            rows_t.setdefault(kk, []).append(v)
    for kk, v in rows_t.items():
        tr[kk] = np.stack([np.asarray(x) for x in v])
    save_npz("mpii_transforms.npz", **tr)

    # ---- CocoMetric with RLE's score mode on the COCO metric goldens' inputs
    import mmpose.evaluation.metrics.coco_metric as coco_metric_module

    coco_metric_module.COCOeval = pycocotools_cocoeval(coco_metric_module.COCOeval)
    mdir = REPO / "tests" / "data" / "mmpose_metric"
    inp = np.load(mdir / "inputs.npz")
    areas = np.load(mdir / "areas.npz")
    with tempfile.TemporaryDirectory() as tmp:
        prefix = str(Path(tmp) / "results")
        cm = CocoMetric(
            ann_file=str(mdir / "ann.json"), score_mode="bbox_rle", nms_mode="oks_nms", outfile_prefix=prefix
        )
        cm.dataset_meta = coco_meta
        samples = [
            {
                "id": i,
                "img_id": int(inp["img_id"][i]),
                "pred_instances": {
                    "keypoints": inp["keypoints"][i : i + 1, :, :2],
                    "keypoint_scores": inp["keypoints"][i : i + 1, :, 2],
                    "bbox_scores": inp["bbox_scores"][i : i + 1],
                },
                "gt_instances": {"bbox_scales": areas["bbox_scales"][i : i + 1]},
            }
            for i in range(len(inp["img_id"]))
        ]
        cm.process([{}] * len(samples), samples)
        stats = cm.compute_metrics(cm.results)
        results = json.loads(Path(f"{prefix}.keypoints.json").read_text())
    save_json(
        "metric_bbox_rle_oks_nms.json",
        {"backend": "pycocotools", "stats": {kk: float(v) for kk, v in stats.items()}, "results": results},
    )

    writer.print_sizes()


if __name__ == "__main__":
    main()
