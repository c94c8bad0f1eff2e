#!/usr/bin/env python3
"""Write the golden files of the ResNeSt and SCNet zoo rows into tests/data/mmpose_resnest/ with MMPose's code.

Run in the SEPARATE MMPose virtual environment of ``make_golden.py`` (same import shims; see README.md):

    cd <repo root> && /work/mmpose-venv/bin/python tests/mmpose_golden/make_resnest_golden.py   # ~1 minute, 2 CPUs

The entries come from ``models/zoo/families/resnest_scnet.py`` (only their names and MMPose config paths are read;
every value below is computed by MMPose 1.3.2). What is written (read by ``tests/models/test_resnest_scnet_parity.py``):

* ``versions.json``: mmpose / mmengine / torch / numpy versions, recipe version.
* ``metafiles.json``: every row of MMPose's ``resnest_coco.yml`` and ``scnet_coco.yml`` by config path: ``Weights``
  URL, ``Results`` metrics and data set, the row's ``Name``.
* ``train_configs.json``: each entry's training recipe as ``Config.fromfile`` reads it (the fields of
  ``make_zoo_golden.py``'s file of that name).
* ``state_dict_shapes.json.gz``: every state-dict key (in order) and shape of each entry's model at full width.
* ``small_<name>.npz``: the entry's config with an 8-channel stem and base (same depth, head, input size, test config;
  16-channel deconvolutions), recipe-filled, on the crops of ``tests/data/mmpose_zoo/pipeline.npz`` (recomputed here
  with ``GetBBoxCenterScale`` + ``TopdownAffine``, asserted within one uint8 level, the stored ones fed), in float32 and float64 (``_f64``): the raw
  heatmaps of sample 0, joint 0 subsampled by 4 (``raw``: ``[1, 1, h/4, w/4]``), ``head.predict``'s flip test (crop
  keypoints and scores) and the full inference path's image keypoints and scores (``test_step`` in float32,
  ``predict`` on the float64 input).
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

SMALL_WIDTH = 8
METAFILES = ("resnest_coco.yml", "scnet_coco.yml")


def main() -> None:
    out = output_dir(__doc__.split("\n")[0], "mmpose_resnest")

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

    from models.zoo.families.resnest_scnet import ENTRIES

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

    rows = {}
    for yml in METAFILES:
        path = cfg_root / "body_2d_keypoint" / "topdown_heatmap" / "coco" / yml
        for m in yaml.safe_load(path.read_text())["Models"]:
            rows[m["Config"]] = {
                "metafile": str(path.relative_to(cfg_root.parent)),
                "name": m["Name"],
                "collection": m["In Collection"],
                "weights": m["Weights"],
                "metrics": m["Results"][0]["Metrics"],
                "dataset": m["Results"][0]["Dataset"],
            }
    writer.json("metafiles.json", rows)

    def rel(zc) -> str:
        return zc.mmpose_config.removeprefix("configs/")

    recipes = {}
    for zc in ENTRIES:
        c = Config.fromfile(str(cfg_root / rel(zc)))
        warm, steps = c.param_scheduler
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
            "init": {"on": "backbone", **dict(c.model.backbone.init_cfg)},
            "train_pipeline": [t["type"] for t in train_steps],
            "shift_prob": bbox_t.get("shift_prob", None),
            "codec": dict(c.codec),
            "evaluator": {"type": c.val_evaluator.type, "score_mode": c.val_evaluator.get("score_mode")},
            "save_best": c.default_hooks.checkpoint.save_best,
        }
    writer.json("train_configs.json", recipes)

    # ---- crops as make_zoo_golden.py cuts them (its pipeline.npz crops, which the tests read, are fed)
    coco_meta = parse_pose_metainfo(dict(from_file=str(cfg_root / "_base_" / "datasets" / "coco.py")))
    flip = [int(i) for i in coco_meta["flip_indices"]]
    image_rgb = recipe.synthetic_image()
    zoo_pipeline = np.load(REPO / "tests" / "data" / "mmpose_zoo" / "pipeline.npz")
    packed_by = {}
    for size in {tuple(zc.input_size) for zc in ENTRIES}:
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
                "flip_indices": flip,
            }
            results = GetBBoxCenterScale(padding=1.25).transform(results)
            results = TopdownAffine(input_size=size).transform(results)
            # this OpenCV may differ from the one that wrote pipeline.npz by a level: the stored crop is the input
            stored = zoo_pipeline[f"crops_rgb_{size[0]}x{size[1]}"][i]
            assert np.abs(results["img"][..., ::-1].astype(int) - stored).max() <= 1, size
            crops.append(stored)
            results["img"] = np.ascontiguousarray(stored[..., ::-1])
            packed.append(PackPoseInputs().transform(results))
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
            if np.issubdtype(np.asarray(v).dtype, np.floating):
                assert np.isfinite(v).all(), f"{cfg.filename}: non-finite {key}"
        return res

    shapes_all = {}
    for zc in ENTRIES:
        cfg = Config.fromfile(str(cfg_root / rel(zc)))
        full = MODELS.build(cfg.model)
        shapes_all[zc.name] = {kk: list(v.shape) for kk, v in full.state_dict().items()}
        del full
        cfg.model.backbone.update(stem_channels=SMALL_WIDTH, base_channels=SMALL_WIDTH, init_cfg=None)
        cfg.model.head.in_channels = SMALL_WIDTH * 8 * 4
        cfg.model.head.deconv_out_channels = (16, 16, 16)
        res = run_model(cfg)
        writer.npz(f"small_{zc.name}.npz", **res)
        print(f"{zc.name}: {len(shapes_all[zc.name])} keys; keypoints[0, :2] = {res['keypoints_crop_flip'][0, :2]}")
    path = out / "state_dict_shapes.json.gz"
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", filename="", mtime=0) as f:
        f.write(json.dumps(shapes_all).encode("utf-8"))  # mtime 0: the same bytes on every run
    writer.added(path)
    writer.print_sizes()


if __name__ == "__main__":
    main()
