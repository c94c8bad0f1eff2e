#!/usr/bin/env python3
"""Write the golden files of the ResNetV1d / ResNeXt / SEResNet / AlexNet zoo rows into tests/data/mmpose_resvar/.

Run in the SEPARATE MMPose virtual environment of ``make_golden.py`` (same import shims; see README.md):

    cd <repo root> && /work/mmpose-venv/bin/python tests/mmpose_golden/make_resvar_golden.py   # ~1 minute, 2 CPUs

The entries come from ``models/zoo/families/resnet_variants.py`` (only their names and MMPose config paths are read;
every value below is computed by MMPose 1.3.2). What is written (read by ``tests/models/test_resvar_parity.py``):

* ``versions.json``: mmpose / mmengine / torch / numpy / OpenCV versions, recipe version.
* ``metafiles.json``: every row of ``topdown_heatmap/coco/{resnetv1d,resnext,seresnet,alexnet}_coco.yml`` by config
  (``Weights``, ``Results``), so a row the zoo lacks is seen too.
* ``model_configs.json``: per entry, what its config sets: backbone type and arguments, head ``in_channels``,
  ``out_channels``, deconvolutions, codec (input / heatmap size, sigma) and ``test_cfg``.
* ``train_configs.json``: per MMPose config, its training recipe in ``make_zoo_golden.py``'s layout (optimizer, lr,
  base batch, batch, schedule, loss, ``init_cfg``, train pipeline, codec, evaluator, ``save_best``).
* ``state_dict_shapes.json.gz``: every state-dict key (in order) and shape of each entry at full width.
* ``small_<name>.npz``: the entry's config at small width (ResNet variants: ``stem_channels`` and ``base_channels``
  8, ResNeXt ``groups=4, width_per_group=2``; head 16-channel deconvolutions; same depth, input size, test config),
  recipe-filled, on ``tests/data/mmpose_zoo/pipeline.npz``'s crops (MMPose's pipeline runs again here: its centers
  and scales are checked equal, and the stored crops replace its own, which another OpenCV may round differently in a
  few pixels), float32 and float64 (``_f64``): heatmap 0 of crop 0 at every 4th pixel (``raw``), ``head.predict``'s
  flip-test crop keypoints and scores, and the full inference path's image keypoints and scores (``test_step`` in
  float32, ``predict`` on the float64 input).
* ``full_td-hm_alexnet.npz``: the same for AlexNet at full width (AlexNet has no width argument; 5.6 M parameters).
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

METAFILES = ("resnetv1d_coco.yml", "resnext_coco.yml", "seresnet_coco.yml", "alexnet_coco.yml")
SMALL_WIDTH = 8
#: ResNeXt at small width: conv2 of stage i has groups * width_per_group * 2**i channels (8, 16, 32, 64).
SMALL_RESNEXT = {"groups": 4, "width_per_group": 2}
FULL = ("td-hm_alexnet",)


def train_recipe(c) -> dict:
    """A config's training recipe, in ``make_zoo_golden.py``'s ``train_configs.json`` layout (``init`` is
    ``{"on": None}`` where neither the model nor the backbone has an ``init_cfg``: AlexNet, SEResNet-152)."""
    warm, steps = c.param_scheduler
    init = c.model.get("init_cfg") or c.model.backbone.get("init_cfg")
    train_steps = c.train_dataloader.dataset.pipeline
    bbox_t = next(t for t in train_steps if t["type"] == "RandomBBoxTransform")
    return {
        "optimizer": c.optim_wrapper.optimizer.type,
        "lr": c.optim_wrapper.optimizer.lr,
        "base_batch_size": c.auto_scale_lr.base_batch_size,
        "batch_size": c.train_dataloader.batch_size,
        "max_epochs": c.train_cfg.max_epochs,
        "val_interval": c.train_cfg.val_interval,
        "warmup": {"type": warm.type, "start_factor": warm.start_factor, "end": warm.end, "by_epoch": warm.by_epoch},
        "steps": {"type": steps.type, "milestones": list(steps.milestones), "gamma": steps.gamma},
        "losses": [c.model.head.loss["type"]],
        "init": {"on": "model" if c.model.get("init_cfg") else "backbone", **dict(init)} if init else {"on": None},
        "train_pipeline": [t["type"] for t in train_steps],
        "shift_prob": bbox_t.get("shift_prob", None),
        "codec": dict(c.codec),
        "evaluator": {"type": c.val_evaluator.type, "score_mode": c.val_evaluator.get("score_mode")},
        "save_best": c.default_hooks.checkpoint.save_best,
    }


def main() -> None:  # noqa: C901 (one straight script)
    out = output_dir(__doc__.split("\n")[0], "mmpose_resvar")

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

    from models.zoo.families.resnet_variants import ENTRIES

    init_default_scope("mmpose")
    torch.set_grad_enabled(False)
    recipe = load_recipe()
    cfg_root = Path(mmpose.__file__).parent / ".mim" / "configs"
    coco_dir = cfg_root / "body_2d_keypoint" / "topdown_heatmap" / "coco"
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

    rows = {}
    for name in METAFILES:
        for m in yaml.safe_load((coco_dir / name).read_text())["Models"]:
            rows[m["Config"]] = {
                "metafile": name,
                "name": m["Name"],
                "weights": m["Weights"],
                "metrics": m["Results"][0]["Metrics"],
                "dataset": m["Results"][0]["Dataset"],
            }
    writer.json("metafiles.json", rows)

    # ---- crops as make_zoo_golden.py cuts them (MMPose works on BGR); they must equal mmpose_zoo/pipeline.npz's
    stored = np.load(REPO / "tests" / "data" / "mmpose_zoo" / "pipeline.npz")
    coco_meta = parse_pose_metainfo(dict(from_file=str(cfg_root / "_base_" / "datasets" / "coco.py")))
    image_rgb = recipe.synthetic_image()
    assert np.array_equal(image_rgb, stored["image_rgb"])
    packed_by = {}
    for size in ((192, 256), (288, 384)):
        packed, crops = [], []
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
            results = TopdownAffine(input_size=size).transform(GetBBoxCenterScale(padding=1.25).transform(results))
            tag = f"{size[0]}x{size[1]}"
            assert np.array_equal(results["input_center"], stored[f"input_center_{tag}"][i])
            assert np.array_equal(results["input_scale"], stored[f"input_scale_{tag}"][i])
            crops.append(results["img"][..., ::-1].astype(int))
            results["img"] = np.ascontiguousarray(stored[f"crops_rgb_{tag}"][i][..., ::-1])  # the stored crop
            packed.append(PackPoseInputs().transform(results))
        # another OpenCV may round a few pixels of warpAffine differently (5.0.0 wrote the stored crops)
        print(
            f"crops {size}: max |this OpenCV - stored| = {np.abs(np.stack(crops) - stored[f'crops_rgb_{tag}']).max()}"
        )
        packed_by[size] = packed

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
            res["raw" + suffix] = model.head.forward(feats)[:1, :1, ::4, ::4].numpy()
            preds = model.head.predict([feats, feats_flip], samples, test_cfg=dict(cfg.model.test_cfg))
            res["keypoints_crop_flip" + suffix] = np.concatenate([p.keypoints for p in preds])
            res["scores_flip" + suffix] = np.concatenate([p.keypoint_scores for p in preds])
            results = (
                model.test_step(data) if dtype == torch.float32 else model.predict(x, [s.clone() for s in samples])
            )
            res["keypoints_image_flip" + suffix] = np.concatenate([r.pred_instances.keypoints for r in results])
            res["scores_image_flip" + suffix] = np.concatenate([r.pred_instances.keypoint_scores for r in results])
        for key, v in res.items():
            assert np.isfinite(v).all(), f"{cfg.filename}: non-finite {key}"
        return res

    shapes, model_cfgs, recipes = {}, {}, {}
    for zc in ENTRIES:
        path = cfg_root / zc.mmpose_config.removeprefix("configs/")
        cfg = Config.fromfile(str(path))
        head, codec = cfg.model.head, cfg.codec
        recipes[zc.mmpose_config] = train_recipe(cfg)
        model_cfgs[zc.name] = {
            "backbone": {k: v for k, v in cfg.model.backbone.items() if k != "init_cfg"},
            "head": {
                "type": head.type,
                "in_channels": head.in_channels,
                "out_channels": head.out_channels,
                "deconv_out_channels": list(head.get("deconv_out_channels", (256, 256, 256))),
                "deconv_kernel_sizes": list(head.get("deconv_kernel_sizes", (4, 4, 4))),
            },
            "codec": {
                "type": codec.type,
                "input_size": list(codec.input_size),
                "heatmap_size": list(codec.heatmap_size),
                "sigma": codec.sigma,
            },
            "test_cfg": dict(cfg.model.test_cfg),
        }
        full = MODELS.build(cfg.model)
        shapes[zc.name] = {k: list(v.shape) for k, v in full.state_dict().items()}
        del full
        if zc.name in FULL:
            res = run_model(cfg)
            writer.npz(f"full_{zc.name}.npz", **res)
            print(
                f"{zc.name}: {len(shapes[zc.name])} keys; full keypoints[0, :2] = {res['keypoints_crop_flip'][0, :2]}"
            )
            continue
        small = Config.fromfile(str(path))
        small.model.backbone.update(stem_channels=SMALL_WIDTH, base_channels=SMALL_WIDTH, init_cfg=None)
        if small.model.backbone.type == "ResNeXt":
            small.model.backbone.update(SMALL_RESNEXT)
        small.model.head.in_channels = SMALL_WIDTH * 8 * 4
        small.model.head.deconv_out_channels = (16, 16, 16)
        res = run_model(small)
        writer.npz(f"small_{zc.name}.npz", **res)
        print(f"{zc.name}: {len(shapes[zc.name])} keys; small keypoints[0, :2] = {res['keypoints_crop_flip'][0, :2]}")
    writer.json("model_configs.json", model_cfgs)
    writer.json("train_configs.json", recipes)
    path = out / "state_dict_shapes.json.gz"
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", filename="", mtime=0) as f:
        f.write(json.dumps(shapes).encode("utf-8"))  # mtime 0: the same bytes on every run
    writer.added(path)
    writer.print_sizes()


if __name__ == "__main__":
    main()
