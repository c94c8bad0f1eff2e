#!/usr/bin/env python3
"""Write the golden files of the Lite-HRNet zoo rows into tests/data/mmpose_litehrnet/ with MMPose's code.

Run in the SEPARATE MMPose virtual environment of ``make_golden.py`` (same import shims; see README.md):

    cd <repo root> && /work/mmpose-venv/bin/python tests/mmpose_golden/make_litehrnet_golden.py   # ~1 minute, 2 CPUs

The entries come from ``models/zoo/families/litehrnet.py`` (only their names and MMPose config paths are read; every
value below is computed by MMPose 1.3.2). What is written (read by ``tests/models/test_litehrnet_parity.py``):

* ``versions.json``: mmpose / mmengine / torch / numpy versions, recipe version.
* ``metafiles.json``: each entry's row of ``litehrnet_coco.yml`` (``Weights`` URL, ``Results`` metrics, data set).
* ``train_configs.json``: each config's training recipe (optimizer, lr, ``auto_scale_lr`` base batch, batch size,
  epochs, warm-up and multi-step schedules, loss, initialisation, the backbone's ``extra``, the head's channels, the
  train pipeline's transforms and ``RandomBBoxTransform``'s arguments, codec, test config, evaluator).
* ``state_dict_shapes.json.gz``: every state-dict key (in order) and shape of each entry's full-width model.
* ``pipeline.npz``: ``GetBBoxCenterScale`` + ``TopdownAffine`` crops (RGB) of ``recipe.synthetic_image()`` in the two
  boxes of ``make_golden.py`` at 192x256 and 288x384 (cut here: ``mmpose_zoo/pipeline.npz``'s were cut by another
  OpenCV, whose bilinear warp differs in the last bit), and the boxes.
* ``small_<name>.npz``: the entry's config with a narrow ``extra`` (stored as ``small_extra``, JSON: stem 16
  channels, branches 16 / 32 / 64 / 128; same stages, modules, blocks, reduce ratios, iterative head, input size and
  test config), recipe-filled, on the crops of ``pipeline.npz``, float32 and float64 (``_f64``): the head's heatmaps of sample 0, joint 0 (``raw``), the whole heatmaps'
  maximum magnitude (``heatmap_absmax``), ``head.predict``'s flip-test crop keypoints and scores, and the full
  inference path's image keypoints and scores (``test_step`` in float32, ``predict`` on the float64 input).
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

#: The narrow test width: stem and branch channels (each branch doubles).
SMALL_STEM, SMALL_BRANCH = 16, 16


def small_extra(extra: dict) -> dict:
    """``extra`` with narrow channels (the test builds the same model from the stored JSON)."""
    spec = dict(extra["stages_spec"])
    spec["num_channels"] = [[SMALL_BRANCH * 2**b for b in range(len(c))] for c in spec["num_channels"]]
    stem = dict(extra["stem"], stem_channels=SMALL_STEM, out_channels=SMALL_STEM)
    return {**extra, "stem": stem, "stages_spec": {k: list(v) for k, v in spec.items()}}


def to_json(obj):
    """mmengine ConfigDict / tuples -> plain JSON values."""
    if isinstance(obj, dict):
        return {k: to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json(v) for v in obj]
    return obj


def main() -> None:
    out = output_dir(__doc__.split("\n")[0], "mmpose_litehrnet")

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

    from models.zoo.families.litehrnet import ENTRIES

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

    def rel(zc) -> str:
        return zc.mmpose_config.removeprefix("configs/")

    wanted = {zc.mmpose_config for zc in ENTRIES}
    yml = cfg_root / "body_2d_keypoint" / "topdown_heatmap" / "coco" / "litehrnet_coco.yml"
    rows = {
        m["Config"]: {
            "weights": m["Weights"],
            "metrics": m["Results"][0]["Metrics"],
            "dataset": m["Results"][0]["Dataset"],
            "collection": m["In Collection"],
        }
        for m in yaml.safe_load(yml.read_text())["Models"]
    }
    assert set(rows) == wanted, (sorted(rows), sorted(wanted))  # every COCO row of the metafile, no other
    writer.json("metafiles.json", rows)

    recipes = {}
    for zc in ENTRIES:
        c = Config.fromfile(str(cfg_root / rel(zc)))
        warm, steps = c.param_scheduler
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
            "losses": [c.model.head.loss.type],
            "init": to_json(c.model.get("init_cfg") or c.model.backbone.get("init_cfg")),
            "extra": to_json(c.model.backbone.extra),
            "head": {k: to_json(c.model.head.get(k)) for k in ("in_channels", "out_channels", "deconv_out_channels")},
            "train_pipeline": [t["type"] for t in c.train_dataloader.dataset.pipeline],
            "bbox_transform": next(
                {k: to_json(v) for k, v in t.items() if k != "type"}
                for t in c.train_dataloader.dataset.pipeline
                if t["type"] == "RandomBBoxTransform"
            ),
            "codec": to_json(dict(c.codec)),
            "test_cfg": to_json(dict(c.model.test_cfg)),
            "evaluator": {"type": c.val_evaluator.type, "score_mode": c.val_evaluator.get("score_mode")},
        }
    writer.json("train_configs.json", recipes)

    # ---- crops of the synthetic image, as make_zoo_golden.py cuts them (MMPose works on BGR), and packed
    coco_meta = parse_pose_metainfo(dict(from_file=str(cfg_root / "_base_" / "datasets" / "coco.py")))
    image_rgb = recipe.synthetic_image()
    pipeline = {"bboxes_xyxy": BBOXES_XYXY}
    packed_by = {}
    for size in sorted({zc.input_size for zc in ENTRIES}):
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
            results = GetBBoxCenterScale(padding=1.25).transform(results)
            results = TopdownAffine(input_size=size).transform(results)
            crops.append(results["img"][..., ::-1].copy())
            packed.append(PackPoseInputs().transform(results))
        pipeline[f"crops_rgb_{size[0]}x{size[1]}"] = np.stack(crops)
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
            heatmaps = model.head.forward(feats)
            res["raw" + suffix] = heatmaps[:1, :1].numpy()  # sample 0, joint 0: kept small
            res["heatmap_absmax" + suffix] = np.array(float(heatmaps.abs().max()))
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
        shapes_all[zc.name] = {k: list(v.shape) for k, v in full.state_dict().items()}
        del full
        extra = small_extra(to_json(cfg.model.backbone.extra))
        cfg.model.backbone.extra = extra
        cfg.model.head.in_channels = extra["stages_spec"]["num_channels"][-1][0]
        res = run_model(cfg)
        writer.npz(f"small_{zc.name}.npz", small_extra=np.array(json.dumps(extra)), **res)
        print(
            f"{zc.name}: {len(shapes_all[zc.name])} keys; |heatmaps| max {float(res['heatmap_absmax_f64']):.3g}; "
            f"small keypoints[0, :2] = {res['keypoints_crop_flip'][0, :2].tolist()}"
        )
    path = out / "state_dict_shapes.json.gz"
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", filename="", mtime=0) as f:
        f.write(json.dumps(shapes_all).encode("utf-8"))  # mtime 0: the same bytes on every run
    writer.added(path)
    writer.print_sizes()


if __name__ == "__main__":
    main()
