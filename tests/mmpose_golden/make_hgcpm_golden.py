#!/usr/bin/env python3
"""Write the golden files of the stacked hourglass and CPM entries into tests/data/mmpose_hgcpm/ with MMPose's code.

Run in the SEPARATE MMPose virtual environment of ``make_golden.py`` (same import shims; see README.md):

    cd <repo root> && /work/mmpose-venv/bin/python tests/mmpose_golden/make_hgcpm_golden.py   # ~1 minute, 2 CPUs

The entries come from ``models/zoo/families/hourglass_cpm.py`` (names and MMPose config paths only; every value below
is computed by MMPose 1.3.2). What is written (read by ``tests/models/test_hourglass_cpm.py``):

* ``versions.json``: mmpose / mmengine / torch / numpy versions, recipe version.
* ``metafiles.json``: each entry's row of MMPose's model-zoo metafiles (``Weights``, ``Results``, ``In Collection``).
* ``train_configs.json``: each entry's training recipe as ``Config.fromfile`` reads it (optimizer, lr, base batch,
  batch, epochs, schedules, loss, backbone / head settings, codec, evaluator).
* ``state_dict_shapes.json.gz``: every state-dict key (in order) and shape of each entry's model at full width.
* ``small.json``: the small variant of each entry (:data:`SMALL`): backbone and head arguments and input size.
* ``small_<name>.npz``: that variant, recipe-filled, on the synthetic image's two boxes (``GetBBoxCenterScale`` +
  ``TopdownAffine`` crops, stored as ``crops_rgb`` with ``bboxes_xyxy``), float32 and float64 (``_f64``): every
  stage's heatmaps of sample 0, joints 0 and 1 (``stages`` [S, 2, H, W]), the flip-test prediction of ``head.predict`` (crop keypoints, scores) and
  the inference path's image keypoints and scores (``test_step`` in float32, ``predict`` on the float64 input); and
  ``CPMHead.loss`` (``loss_kpt``, KeypointMSELoss per stage summed) against heatmaps and keypoint weights that
  :func:`loss_targets` builds from the entry's name (the test rebuilds them), float64.

The small variants keep each backbone's fixed widths (the hourglass stem's 128 / 256 channels, CPM's 128 / 512) and
shrink the configurable ones and the input (the smallest multiples of 32 that keep the tests to seconds; the
hourglass' 3 levels need 32 pixels): hourglass 3 levels and 2 stacks (the
entries have 1: the inter-stack path is covered too), CPM 16-channel stages.
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

#: Small variants: backbone kind -> (backbone arguments, head arguments); input sizes by entry.
SMALL_BACKBONE = {
    "hourglass": {
        "downsample_times": 3,
        "num_stacks": 2,
        "stage_channels": [256, 16, 16, 16],
        "stage_blocks": [2, 2, 2, 4],
        "feat_channel": 16,
    },
    "cpm": {"feat_channels": 16, "middle_channels": 8, "num_stages": 6},
}
SMALL_INPUT = {
    "td-hm_hourglass52_coco-256x256": (32, 32),
    "td-hm_hourglass52_coco-384x384": (64, 64),
    "td-hm_cpm_coco-256x192": (32, 64),
    "td-hm_cpm_coco-384x288": (64, 96),
}


def loss_targets(recipe, name: str, shape: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Float64 target heatmaps [N, K, H, W] (squared recipe normals: >= 0, peaked) and keypoint weights [N, K] (about a
    fifth 0), rebuilt from ``name`` by the test (not stored)."""
    target = recipe.recipe_array(f"{name}_target_heatmaps", shape).astype(np.float64) ** 2
    weights = (recipe.recipe_array(f"{name}_target_weights", shape[:2]) > -0.85).astype(np.float64)
    return target, weights


def main() -> None:
    out = output_dir(__doc__.split("\n")[0], "mmpose_hgcpm")

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
    from mmengine.structures import InstanceData, PixelData
    from mmpose.datasets.datasets.utils import parse_pose_metainfo
    from mmpose.datasets.transforms import GetBBoxCenterScale, PackPoseInputs, TopdownAffine
    from mmpose.registry import MODELS

    from models.zoo.families.hourglass_cpm import ENTRIES

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
    wanted = {e.mmpose_config: e.name for e in ENTRIES}
    rows = {}
    for yml in sorted((cfg_root / "body_2d_keypoint").rglob("*.yml")):
        for m in (yaml.safe_load(yml.read_text()) or {}).get("Models", []):
            if m["Config"] in wanted:
                rows[wanted[m["Config"]]] = {
                    "metafile": str(yml.relative_to(cfg_root.parent)),
                    "config": m["Config"],
                    "collection": m["In Collection"],
                    "weights": m["Weights"],
                    "metrics": m["Results"][0]["Metrics"],
                    "dataset": m["Results"][0]["Dataset"],
                }
    assert set(rows) == set(wanted.values()), sorted(set(wanted.values()) - set(rows))
    writer.json("metafiles.json", rows)

    def config(e) -> Config:
        return Config.fromfile(str(cfg_root / e.mmpose_config.removeprefix("configs/")))

    recipes = {}
    for e in ENTRIES:
        c = config(e)
        warm, steps = c.param_scheduler
        recipes[e.name] = {
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
            "loss": dict(c.model.head.loss),
            "backbone": {k: v for k, v in c.model.backbone.items() if k != "init_cfg"},
            "head": {k: v for k, v in c.model.head.items() if k not in ("loss", "decoder")},
            "init": c.model.get("init_cfg") or c.model.backbone.get("init_cfg"),
            "train_pipeline": [t["type"] for t in c.train_dataloader.dataset.pipeline],
            "codec": dict(c.codec),
            "test_cfg": dict(c.model.test_cfg),
            "evaluator": {"type": c.val_evaluator.type, "score_mode": c.val_evaluator.get("score_mode")},
        }
    writer.json("train_configs.json", recipes)

    coco_meta = parse_pose_metainfo(dict(from_file=str(cfg_root / "_base_" / "datasets" / "coco.py")))
    flip_indices = [int(i) for i in coco_meta["flip_indices"]]
    image_rgb = recipe.synthetic_image()

    def packed(size):
        crops, items = [], []
        for i, box in enumerate(BBOXES_XYXY):
            results = {
                "img": np.ascontiguousarray(image_rgb[..., ::-1]),  # MMPose loads BGR
                "img_shape": image_rgb.shape[:2],
                "ori_shape": image_rgb.shape[:2],
                "bbox": box[None].copy(),
                "bbox_score": np.ones(1, dtype=np.float32),
                "id": i,
                "img_id": 0,
                "img_path": "synthetic",
                "flip_indices": flip_indices,
            }
            results = TopdownAffine(input_size=size).transform(GetBBoxCenterScale(padding=1.25).transform(results))
            crops.append(results["img"][..., ::-1].copy())
            items.append(PackPoseInputs().transform(results))
        return np.stack(crops), items

    shapes, small_json = {}, {}
    for e in ENTRIES:
        c = config(e)
        shapes[e.name] = {k: list(v.shape) for k, v in MODELS.build(c.model).state_dict().items()}
        # the small variant
        size = SMALL_INPUT[e.name]
        bb = SMALL_BACKBONE[e.backbone]
        stages = bb["num_stacks"] if e.backbone == "hourglass" else bb["num_stages"]
        c.model.backbone.update(init_cfg=None, **bb)
        c.model.head.num_stages = stages
        if e.backbone == "hourglass":
            c.model.head.in_channels = bb["feat_channel"]
        k = c.model.head.out_channels
        heatmap = (
            size[0] // (4 if e.backbone == "hourglass" else 8),
            size[1] // (4 if e.backbone == "hourglass" else 8),
        )
        codec = dict(c.codec, input_size=size, heatmap_size=heatmap)
        c.model.head.decoder = codec
        small_json[e.name] = {"backbone_args": bb, "input_size": list(size), "heatmap_size": list(heatmap)}
        model = MODELS.build(c.model).eval()
        fill(model, recipe)
        crops, items = packed(size)
        data = pseudo_collate(items)
        batch = model.data_preprocessor(data, False)
        inputs, samples = batch["inputs"], batch["data_samples"]
        res = {"crops_rgb": crops, "bboxes_xyxy": BBOXES_XYXY, "input_size": np.array(size)}
        target, weights = loss_targets(recipe, e.name, (2, k, heatmap[1], heatmap[0]))
        for suffix, dtype in (("", torch.float32), ("_f64", torch.float64)):
            model.to(dtype)
            x = inputs.to(dtype)
            feats, feats_flip = model.extract_feat(x), model.extract_feat(x.flip(-1))
            res["stages" + suffix] = torch.stack([s[0, :2] for s in model.head.forward(feats)]).numpy()
            preds = model.head.predict([feats, feats_flip], samples, test_cfg=dict(c.model.test_cfg))
            res["keypoints_crop_flip" + suffix] = np.concatenate([p.keypoints for p in preds])
            res["scores_flip" + suffix] = np.concatenate([p.keypoint_scores for p in preds])
            results = (
                model.test_step(data) if dtype == torch.float32 else model.predict(x, [s.clone() for s in samples])
            )
            res["keypoints_image_flip" + suffix] = np.concatenate([r.pred_instances.keypoints for r in results])
            res["scores_image_flip" + suffix] = np.concatenate([r.pred_instances.keypoint_scores for r in results])
            if dtype == torch.float64:
                loss_samples = [s.clone() for s in samples]
                for i, s in enumerate(loss_samples):
                    s.gt_fields = PixelData(heatmaps=torch.from_numpy(target[i]))
                    s.gt_instance_labels = InstanceData(keypoint_weights=torch.from_numpy(weights[i : i + 1]))
                res["loss_kpt_f64"] = model.head.loss(feats, loss_samples)["loss_kpt"].numpy()
        for key, v in res.items():
            assert np.isfinite(np.asarray(v, dtype=np.float64)).all(), f"{e.name}: non-finite {key}"
        writer.npz(f"small_{e.name}.npz", **res)
        print(
            f"{e.name}: {len(shapes[e.name])} keys; small keypoints[0, :2] = {res['keypoints_crop_flip'][0, :2].tolist()}"
        )
    writer.json("small.json", small_json)
    path = out / "state_dict_shapes.json.gz"
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", filename="", mtime=0) as f:
        f.write(json.dumps(shapes).encode("utf-8"))  # mtime 0: the same bytes on every run
    writer.added(path)
    writer.print_sizes()


if __name__ == "__main__":
    main()
