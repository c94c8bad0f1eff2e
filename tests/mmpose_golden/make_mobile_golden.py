#!/usr/bin/env python3
"""Write the golden files of the mobile zoo family (MobileNetV2, ShuffleNet v1 / v2) into tests/data/mmpose_mobile/.

Run in the SEPARATE MMPose virtual environment of ``make_golden.py`` (same import shims; see README.md):

    cd <repo root> && /work/mmpose-venv-simcc/bin/python tests/mmpose_golden/make_mobile_golden.py   # ~1 minute, 2 CPUs

The entries come from ``models/zoo/families/mobile.py`` (only their names, MMPose config paths and the small test widths
below are read; every value written is computed by MMPose 1.3.2). What is written (read by
``tests/models/test_mobile_parity.py``):

* ``versions.json``: mmpose / mmengine / torch / numpy / OpenCV versions, recipe version.
* ``metafiles.json``: each entry's MMPose config -> its row of the model-zoo metafiles (``Weights``, ``Results``).
* ``train_configs.json``: each entry's training recipe as ``Config.fromfile`` reads it (as ``make_zoo_golden.py``).
* ``pipeline.npz``: the synthetic image, two boxes (``make_golden.py``'s) and the ``GetBBoxCenterScale`` +
  ``TopdownAffine`` crops, centers and scales at 192x256 and 288x384 (cut here rather than taken from
  ``mmpose_zoo/pipeline.npz``: OpenCV's bilinear warp may differ by one level between OpenCV versions).
* ``state_dict_shapes.json.gz``: every state-dict key (in order) and shape of each entry, built from its config at
  full width.
* ``small_<name>.npz``: the entry's config at the test width :data:`SMALL` (backbone ``widen_factor``; heatmap heads
  16-channel deconvolutions), recipe-filled, on the pipeline's crops, in float32 and float64 (``_f64``): the head's raw
  single pass (RLE: [B, K, 4]; heatmaps: sample 0, joint 0, every 4th row and column), the flip-test prediction of
  ``head.predict`` (crop keypoints and scores) and the full inference path's image keypoints and scores
  (``test_step`` in float32, ``predict`` on the float64 input).
* ``full_<name>.npz``: the same at full width for :data:`FULL`.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

from make_golden import BBOXES_XYXY, GoldenWriter, fill, install_import_shims, load_recipe, output_dir  # noqa: E402

#: MMPose backbone type -> the test width (``backbone_args`` of ours, the same keyword in MMPose's backbone config).
SMALL = {
    "MobileNetV2": {"widen_factor": 0.25},
    "ShuffleNetV1": {"groups": 3, "widen_factor": 0.5},
    "ShuffleNetV2": {"widen_factor": 0.5},
}
#: Entries also compared at full width (one per backbone and head).
FULL = ("td-hm_mobilenetv2", "td-hm_shufflenetv1", "td-hm_shufflenetv2", "td-reg_mobilenetv2_rle-pretrained")
DECONV_SMALL = (16, 16, 16)


def main() -> None:
    out = output_dir(__doc__.split("\n")[0], "mmpose_mobile")

    install_import_shims()
    import cv2
    import mmengine
    import mmpose
    import mmpose.codecs  # noqa: F401
    import mmpose.models  # noqa: F401
    import torch
    import yaml
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import init_default_scope
    from mmpose.datasets.datasets.utils import parse_pose_metainfo
    from mmpose.datasets.transforms import GetBBoxCenterScale, PackPoseInputs, TopdownAffine
    from mmpose.registry import MODELS

    from models.zoo.families.mobile import ENTRIES

    init_default_scope("mmpose")
    torch.set_grad_enabled(False)
    recipe = load_recipe()
    cfg_root = Path(mmpose.__file__).parent / ".mim" / "configs"
    writer = GoldenWriter(out)
    writer.json(
        "versions.json",
        {
            "mmpose": mmpose.__version__,
            "mmengine": mmengine.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "opencv": cv2.__version__,
            "recipe_version": recipe.RECIPE_VERSION,
        },
    )

    def rel(zc) -> str:
        return zc.mmpose_config.removeprefix("configs/")

    # ---- metafile rows
    wanted = {zc.mmpose_config for zc in ENTRIES}
    rows = {}
    for yml in sorted((cfg_root / "body_2d_keypoint").rglob("*.yml")):
        for m in (yaml.safe_load(yml.read_text()) or {}).get("Models", []):
            if m["Config"] in wanted:
                rows[m["Config"]] = {
                    "metafile": str(yml.relative_to(cfg_root.parent)),
                    "config": m["Config"],
                    "name": m["Name"],
                    "collection": m["In Collection"],
                    "weights": m["Weights"],
                    "metrics": m["Results"][0]["Metrics"],
                    "dataset": m["Results"][0]["Dataset"],
                }
    assert set(rows) == wanted, sorted(wanted - set(rows))
    writer.json("metafiles.json", rows)

    # ---- training recipes
    recipes = {}
    for zc in ENTRIES:
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
            "losses": [c.model.head.loss["type"]],
            "init": {"on": "model" if c.model.get("init_cfg") else "backbone", **dict(init)},
            "train_pipeline": [t["type"] for t in train_steps],
            "shift_prob": bbox_t.get("shift_prob", None),
            "codec": dict(c.codec),
            "evaluator": {"type": c.val_evaluator.type, "score_mode": c.val_evaluator.get("score_mode")},
            "save_best": c.default_hooks.checkpoint.get("save_best"),
            "backbone": {k: v for k, v in c.model.backbone.items() if k != "init_cfg"},
        }
    writer.json("train_configs.json", recipes)

    # ---- the crops (MMPose works on BGR)
    coco_meta = parse_pose_metainfo(dict(from_file=str(cfg_root / "_base_" / "datasets" / "coco.py")))
    image_rgb = recipe.synthetic_image()
    pipeline = {"image_rgb": image_rgb, "bboxes_xyxy": BBOXES_XYXY}
    packed_by: dict[tuple[int, int], list] = {}
    for size in sorted({zc.input_size for zc in ENTRIES}):
        packed, crops, centers, scales = [], [], [], []
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
                "flip_indices": [int(j) for j in coco_meta["flip_indices"]],
            }
            results = GetBBoxCenterScale(padding=1.25).transform(results)
            results = TopdownAffine(input_size=size).transform(results)
            crops.append(results["img"][..., ::-1].copy())
            centers.append(np.asarray(results["input_center"], dtype=np.float32))
            scales.append(np.asarray(results["input_scale"], dtype=np.float32))
            packed.append(PackPoseInputs().transform(results))
        tag = f"{size[0]}x{size[1]}"
        pipeline.update(
            {f"crops_rgb_{tag}": np.stack(crops), f"input_center_{tag}": np.stack(centers)},
            **{f"input_scale_{tag}": np.stack(scales)},
        )
        packed_by[size] = packed
    writer.npz("pipeline.npz", **pipeline)

    def run_model(cfg) -> dict:
        """Single pass, head.predict flip test and the full inference path, float32 and float64."""
        model = MODELS.build(cfg.model).eval()
        fill(model, recipe)
        size = tuple(cfg.codec["input_size"])
        data = pseudo_collate(packed_by[size])
        batch = model.data_preprocessor(data, False)
        inputs, samples = batch["inputs"], batch["data_samples"]
        res = {"input_size": np.array(size)}
        for suffix, dtype in (("", torch.float32), ("_f64", torch.float64)):
            model.to(dtype)
            x = inputs.to(dtype)
            feats, feats_flip = model.extract_feat(x), model.extract_feat(x.flip(-1))
            raw = model.head.forward(feats)
            res["raw" + suffix] = (raw[:1, :1, ::4, ::4] if cfg.model.head.type == "HeatmapHead" else raw).numpy()
            preds = model.head.predict([feats, feats_flip], samples, test_cfg=dict(cfg.model.test_cfg))
            preds = preds[0] if isinstance(preds, tuple) else preds
            res["keypoints_crop_flip" + suffix] = np.concatenate([p.keypoints for p in preds])
            res["scores_flip" + suffix] = np.concatenate([p.keypoint_scores for p in preds])
            results = (
                model.test_step(data) if dtype == torch.float32 else model.predict(x, [s.clone() for s in samples])
            )
            res["keypoints_image_flip" + suffix] = np.concatenate([r.pred_instances.keypoints for r in results])
            res["scores_image_flip" + suffix] = np.concatenate([r.pred_instances.keypoint_scores for r in results])
        for key, v in res.items():
            assert np.isfinite(np.asarray(v, dtype=np.float64)).all(), f"{cfg.filename}: non-finite {key}"
        return res

    shapes_all = {}
    for zc in ENTRIES:
        cfg = Config.fromfile(str(cfg_root / rel(zc)))
        full = MODELS.build(cfg.model)
        shapes_all[zc.name] = {k: list(v.shape) for k, v in full.state_dict().items()}
        small = Config.fromfile(str(cfg_root / rel(zc)))
        small.model.backbone.update(init_cfg=None, **SMALL[small.model.backbone.type])
        small_backbone = MODELS.build(small.model.backbone)
        with torch.no_grad():
            channels = small_backbone(torch.zeros(1, 3, 64, 64))[-1].shape[1]
        small.model.head.in_channels = int(channels)
        if small.model.head.type == "HeatmapHead":
            small.model.head.deconv_out_channels = DECONV_SMALL
        res = run_model(small)
        writer.npz(f"small_{zc.name}.npz", **res)
        print(
            f"{zc.name}: {len(shapes_all[zc.name])} keys; small keypoints[0, :2] = {res['keypoints_crop_flip'][0, :2]}"
        )
        if zc.name in FULL:
            writer.npz(f"full_{zc.name}.npz", **run_model(cfg))
    path = out / "state_dict_shapes.json.gz"
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", filename="", mtime=0) as f:
        f.write(json.dumps(shapes_all).encode("utf-8"))  # mtime 0: the same bytes on every run
    writer.added(path)
    writer.print_sizes()


if __name__ == "__main__":
    main()
