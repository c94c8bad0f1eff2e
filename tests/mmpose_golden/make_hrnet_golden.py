#!/usr/bin/env python3
"""Write the HRNet golden files into tests/data/mmpose_hrnet/ with MMPose's code.

Run in the SEPARATE MMPose virtual environment of ``make_golden.py`` (same import shims; see README.md):

    cd <repo root> && /work/mmpose-venv-simcc/bin/python tests/mmpose_golden/make_hrnet_golden.py   # ~1 min, 2 CPUs

The configs are MMPose 1.3.2's HRNet-W32 / W48 top-down heatmap configs at 256x192 and 384x288 with the MSRA, DARK
and UDP codecs (:data:`CONFIGS`; the zoo has the MSRA ones, the DARK / UDP rows come with those codecs). Every value
below is computed by MMPose. What is written (read by ``tests/models/test_hrnet_parity.py``):

* ``versions.json``: mmpose / mmengine / torch / numpy versions, recipe version.
* ``metafiles.json``: config -> its row of ``hrnet_coco.yml`` / ``hrnet_dark_coco.yml`` / ``hrnet_udp_coco.yml``
  (``Weights`` URL, ``Results`` metrics and data set, collection, architecture).
* ``train_configs.json``: config -> training recipe (optimizer, lr, ``auto_scale_lr`` base batch, batch size, epochs,
  warm-up and multi-step schedules, losses, the backbone's ``init_cfg`` (ImageNet HRNet checkpoint), codec, test_cfg,
  train pipeline transforms).
* ``state_dict_shapes.json.gz``: config -> every state-dict key (in order) and shape of the model MMPose builds at
  full width.
* ``pipeline.npz``: the synthetic image, two boxes, and ``GetBBoxCenterScale`` + ``TopdownAffine`` crops (RGB),
  centers and scales at 192x256 and 288x384, without (``<w>x<h>``) and with ``use_udp`` (``<w>x<h>_udp``).
* ``small_<codec>_<w>x<h>.npz`` (codec ``msra``, ``dark``, ``udp``): the config with HRNet branch widths 8, 16, 32,
  64 and stage-1 width 8 (:data:`SMALL_EXTRA`; stem 64 as MMPose hard-codes it; same modules and blocks), recipe-filled,
  on the pipeline's crops (UDP: the ``use_udp`` crops), in float32 and float64 (``_f64``): ``raw``: heatmap 0 of
  crop 0 of the single pass [1, 1, h/4, w/4] (DARK's network and crops are MSRA's: the script asserts its heatmaps
  equal and stores none); ``keypoints_crop_flip`` / ``scores_flip``: ``head.predict`` with the config's flip test;
  ``keypoints_image_flip`` / ``scores_image_flip``: ``test_step`` (float32) or ``predict`` (float64). W32 and W48
  shrink to the same small network, so one file per codec and size serves both widths.
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

_DIR = "body_2d_keypoint/topdown_heatmap/coco"
#: (codec, width, (w, h)) -> MMPose config (relative to mmpose/.mim/configs)
CONFIGS: dict[tuple[str, int, tuple[int, int]], str] = {
    (codec, width, size): f"{_DIR}/td-hm_hrnet-w{width}{'' if codec == 'msra' else '_' + codec}"
    f"{'-' if codec != 'msra' else '_'}8xb{64 if width == 32 else 32}-210e_coco-{size[1]}x{size[0]}.py"
    for codec in ("msra", "dark", "udp")
    for width in (32, 48)
    for size in ((192, 256), (288, 384))
}
SIZES = ((192, 256), (288, 384))
#: the small network of the parity tests: ``models.backbones.hrnet.hrnet_extra(8, stage1_channels=8)``
SMALL_EXTRA = {
    "stage1": dict(num_modules=1, num_branches=1, block="BOTTLENECK", num_blocks=(4,), num_channels=(8,)),
    "stage2": dict(num_modules=1, num_branches=2, block="BASIC", num_blocks=(4, 4), num_channels=(8, 16)),
    "stage3": dict(num_modules=4, num_branches=3, block="BASIC", num_blocks=(4, 4, 4), num_channels=(8, 16, 32)),
    "stage4": dict(num_modules=3, num_branches=4, block="BASIC", num_blocks=(4, 4, 4, 4), num_channels=(8, 16, 32, 64)),
}


def main() -> None:
    out = output_dir(__doc__.split("\n")[0], "mmpose_hrnet")

    install_import_shims()
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
            "recipe_version": recipe.RECIPE_VERSION,
        },
    )

    # ---- metafile rows
    wanted = {f"configs/{c}" for c in CONFIGS.values()}
    rows = {}
    for yml in ("hrnet_coco.yml", "hrnet_dark_coco.yml", "hrnet_udp_coco.yml"):
        for m in yaml.safe_load((cfg_root / _DIR / yml).read_text())["Models"]:
            if m["Config"] in wanted:
                rows[m["Config"]] = {
                    "metafile": f"configs/{_DIR}/{yml}",
                    "name": m["Name"],
                    "collection": m["In Collection"],
                    "architecture": m["Metadata"]["Architecture"],
                    "weights": m["Weights"],
                    "metrics": m["Results"][0]["Metrics"],
                    "dataset": m["Results"][0]["Dataset"],
                }
    assert set(rows) == wanted, sorted(wanted - set(rows))
    writer.json("metafiles.json", rows)

    # ---- training recipes and full-width state dicts
    recipes, shapes = {}, {}
    for rel in CONFIGS.values():
        c = Config.fromfile(str(cfg_root / rel))
        warm, steps = c.param_scheduler
        recipes[f"configs/{rel}"] = {
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
            "losses": [c.model.head.loss.type],
            "use_target_weight": c.model.head.loss.get("use_target_weight"),
            "init": dict(c.model.backbone.init_cfg),
            "codec": dict(c.codec),
            "test_cfg": dict(c.model.test_cfg),
            "train_pipeline": [dict(t) for t in c.train_dataloader.dataset.pipeline],
            "evaluator": {"type": c.val_evaluator.type, "score_mode": c.val_evaluator.get("score_mode")},
            "save_best": c.default_hooks.checkpoint.save_best,
        }
        full = MODELS.build(c.model)
        shapes[f"configs/{rel}"] = {k: list(v.shape) for k, v in full.state_dict().items()}
        del full
    writer.json("train_configs.json", recipes)
    path = out / "state_dict_shapes.json.gz"
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", filename="", mtime=0) as f:
        f.write(json.dumps(shapes).encode("utf-8"))  # mtime 0: the same bytes on every run
    writer.added(path)

    # ---- crops (MMPose works on BGR), plain and UDP
    coco_meta = parse_pose_metainfo(dict(from_file=str(cfg_root / "_base_" / "datasets" / "coco.py")))
    flip = [int(i) for i in coco_meta["flip_indices"]]
    image_rgb = recipe.synthetic_image()
    pipeline = {"image_rgb": image_rgb, "bboxes_xyxy": BBOXES_XYXY}
    packed_by = {}
    for size in SIZES:
        for udp in (False, True):
            tag = f"{size[0]}x{size[1]}{'_udp' if udp else ''}"
            packed, centers, scales, crops = [], [], [], []
            for i, box in enumerate(BBOXES_XYXY):
                r = {
                    "img": np.ascontiguousarray(image_rgb[..., ::-1]),
                    "img_shape": image_rgb.shape[:2],
                    "ori_shape": image_rgb.shape[:2],
                    "bbox": box[None].copy(),
                    "bbox_score": np.ones(1, dtype=np.float32),
                    "id": i,
                    "img_id": 0,
                    "img_path": "synthetic",
                    "flip_indices": flip,
                }
                r = GetBBoxCenterScale(padding=1.25).transform(r)
                r = TopdownAffine(input_size=size, use_udp=udp).transform(r)
                centers.append(np.asarray(r["input_center"], dtype=np.float32))
                scales.append(np.asarray(r["input_scale"], dtype=np.float32))
                crops.append(r["img"][..., ::-1].copy())
                packed.append(PackPoseInputs().transform(r))
            packed_by[(size, udp)] = packed
            pipeline[f"input_center_{tag}"] = np.stack(centers)
            pipeline[f"input_scale_{tag}"] = np.stack(scales)
            pipeline[f"crops_rgb_{tag}"] = np.stack(crops)
    writer.npz("pipeline.npz", **pipeline)

    # ---- small-width models: single pass, flip test, full inference path
    raws = {}
    for size in SIZES:
        for codec in ("msra", "dark", "udp"):
            cfg = Config.fromfile(str(cfg_root / CONFIGS[(codec, 32, size)]))
            cfg.model.backbone.update(extra=SMALL_EXTRA, init_cfg=None)
            cfg.model.head.in_channels = 8
            model = MODELS.build(cfg.model).eval()
            fill(model, recipe)
            data = pseudo_collate(packed_by[(size, codec == "udp")])
            batch = model.data_preprocessor(data, False)
            inputs, samples = batch["inputs"], batch["data_samples"]
            res = {"input_size": np.array(size)}
            for sfx, dtype in (("", torch.float32), ("_f64", torch.float64)):
                model.to(dtype)
                x = inputs.to(dtype)
                feats, feats_flip = model.extract_feat(x), model.extract_feat(x.flip(-1))
                heat = model.head.forward(feats)
                assert tuple(heat.shape[2:]) == (size[1] // 4, size[0] // 4), heat.shape
                raws[(codec, size, sfx)] = heat.numpy()
                res["raw" + sfx] = heat[:1, :1].numpy()
                preds = model.head.predict([feats, feats_flip], samples, test_cfg=dict(cfg.model.test_cfg))
                res["keypoints_crop_flip" + sfx] = np.concatenate([p.keypoints for p in preds])
                res["scores_flip" + sfx] = np.concatenate([p.keypoint_scores for p in preds])
                results = model.test_step(data) if sfx == "" else model.predict(x, [s.clone() for s in samples])
                res["keypoints_image_flip" + sfx] = np.concatenate([r.pred_instances.keypoints for r in results])
                res["scores_image_flip" + sfx] = np.concatenate([r.pred_instances.keypoint_scores for r in results])
            if codec == "dark":  # the same network on the same crops as MSRA: only the decode differs
                for sfx in ("", "_f64"):
                    assert np.array_equal(raws[("dark", size, sfx)], raws[("msra", size, sfx)])
                    del res["raw" + sfx]
            for key, v in res.items():
                assert np.isfinite(v).all(), f"{codec} {size}: non-finite {key}"
            writer.npz(f"small_{codec}_{size[0]}x{size[1]}.npz", **res)
            print(f"{codec} {size}: keypoints_crop_flip[0, :2] = {res['keypoints_crop_flip'][0, :2].tolist()}")

    writer.print_sizes()


if __name__ == "__main__":
    main()
