#!/usr/bin/env python3
"""Write the MSPN / RSN golden files into tests/data/mmpose_mspn/ with MMPose 1.3.2's own code.

Run in the SEPARATE MMPose virtual environment of ``make_golden.py`` (same import shims; see README.md):

    cd <repo root> && /work/mmpose-venv-simcc/bin/python tests/mmpose_golden/make_mspn_golden.py   # ~1 minute

The entries come from ``models/zoo/families/mspn_rsn.py`` (only their names, MMPose config paths and backbone arguments
are read; every value below is computed by MMPose). What is written (read by ``tests/models/test_mspn_parity.py``):

* ``versions.json``: mmpose / mmengine / torch / numpy / OpenCV versions, recipe version.
* ``metafiles.json``: for each entry's config, its row of ``mspn_coco.yml`` / ``rsn_coco.yml`` (``Weights``,
  ``Results`` metrics, data set, collection).
* ``configs.json``: for each entry's config, the model's backbone and head arguments, ``test_cfg``, the decoder and the
  codec list (training), and the training recipe (optimizer, lr, batch, epochs, schedule, losses, init).
* ``state_dict_shapes.json.gz``: every state-dict key (in order) and shape of each entry's full model.
* ``small_<name>.npz``: the entry's config with ``unit_channels`` 16, 2 units of (1, 2) blocks (its own number of
  stages, RSN steps, head, input size, decoder, test config), recipe-filled, on ``tests/data/mmpose_zoo/pipeline.npz``'s
  192x256 crops (recomputed here with MMPose's pipeline and checked equal), float32 and float64 (``_f64``):
  ``raw`` = the inference heatmaps (last stage, last unit) of sample 0, joints 0..1, every 4th row and column; ``levels_sum`` / ``levels_max``
  [L, B, K] the spatial sum / maximum of every level of ``head.forward`` (all stages and units); the flip-test
  ``head.predict`` keypoints (crop pixels) and scores; the full inference path's image keypoints and scores
  (``test_step`` in float32, ``predict`` on the float64 input).
* ``megvii.npz``: ``MegviiHeatmap`` encode (48x64 heatmaps of 192x256 crops, kernels 15, 11, 9, 7, 5; keypoints on
  and off the heatmap, invisible, on the border) and decode (kernel 5) of ``recipe_array("megvii/<case>", ...)``
  heatmaps (not stored: both sides rebuild them by name) in float32 and float64 and of hand-made edge maps (stored):
  maxima on the border band, negative and zero maps, ties.
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

#: The small models' backbone / head arguments (each entry keeps its num_stages and num_steps).
SMALL = {"unit_channels": 16, "num_units": 2, "num_blocks": [1, 2]}
KERNELS = (15, 11, 9, 7, 5)
RANDOM_CASES = {"random": (3, 17, 64, 48), "random_small": (2, 5, 8, 6)}


def edge_maps() -> np.ndarray:
    """[1, 10, 64, 48] float32 hand-made decode inputs."""
    hm = np.zeros((1, 10, 64, 48), np.float32)
    hm[0, 0, 0, 0] = 5.0  # corner
    hm[0, 1, 1, 20] = 5.0  # y = 1: outside the shift band (1 < y < H - 1)
    hm[0, 2, 30, 46] = 5.0  # x = W - 2: outside
    hm[0, 3, 2, 2] = 5.0  # the band's first pixel
    hm[0, 4] = -1.0  # all negative: -1
    # 5: all zero
    hm[0, 6, 20, 20] = hm[0, 6, 20, 21] = 3.0  # a tie
    hm[0, 7, 40, 10], hm[0, 7, 41, 11] = 4.0, 3.9  # shifted towards the second peak
    hm[0, 8, 63, 47] = 2.0  # the last pixel
    hm[0, 9, 10:13, 30:33] = 1.0  # a plateau
    return hm


def main() -> None:
    out = output_dir(__doc__.split("\n")[0], "mmpose_mspn")
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
    from mmpose.codecs import MegviiHeatmap
    from mmpose.datasets.datasets.utils import parse_pose_metainfo
    from mmpose.datasets.transforms import GetBBoxCenterScale, PackPoseInputs, TopdownAffine
    from mmpose.registry import MODELS

    from models.zoo.families.mspn_rsn import ENTRIES

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

    wanted = {e.mmpose_config: e.name for e in ENTRIES}
    rows = {}
    for yml in ("mspn_coco.yml", "rsn_coco.yml"):
        path = cfg_root / "body_2d_keypoint" / "topdown_heatmap" / "coco" / yml
        for m in yaml.safe_load(path.read_text())["Models"]:
            rows[m["Config"]] = {
                "metafile": str(path.relative_to(cfg_root.parent)),
                "collection": m["In Collection"],
                "weights": m["Weights"],
                "metrics": m["Results"][0]["Metrics"],
                "dataset": m["Results"][0]["Dataset"],
            }
    assert set(rows) == set(wanted), (sorted(rows), sorted(wanted))
    writer.json("metafiles.json", rows)

    configs = {}
    for e in ENTRIES:
        c = Config.fromfile(str(cfg_root / e.mmpose_config.removeprefix("configs/")))
        head = {k: v for k, v in c.model.head.items() if k not in ("loss", "decoder")}
        configs[e.mmpose_config] = {
            "backbone": dict(c.model.backbone),
            "head": {**head, "out_shape": list(head["out_shape"])},
            "losses": [{"type": x["type"], "loss_weight": x["loss_weight"]} for x in c.model.head.loss],
            "decoder": dict(c.model.head.decoder),
            "codec": [dict(x) for x in c.codec],
            "test_cfg": dict(c.model.test_cfg),
            "data_preprocessor": dict(c.model.data_preprocessor),
            "optimizer": dict(c.optim_wrapper.optimizer),
            "param_scheduler": [dict(s) for s in c.param_scheduler],
            "base_batch_size": c.auto_scale_lr.base_batch_size,
            "batch_size": c.train_dataloader.batch_size,
            "max_epochs": c.train_cfg.max_epochs,
            "train_pipeline": [dict(t) for t in c.train_dataloader.dataset.pipeline],
        }
    writer.json("configs.json", json.loads(json.dumps(configs, default=list)))

    # ---- the 192x256 crops of tests/data/mmpose_zoo/pipeline.npz, recomputed with MMPose's pipeline
    coco_meta = parse_pose_metainfo(dict(from_file=str(cfg_root / "_base_" / "datasets" / "coco.py")))
    image_rgb = recipe.synthetic_image()
    packed, crops = [], []
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
            "flip_indices": [int(x) for x in coco_meta["flip_indices"]],
        }
        r = TopdownAffine(input_size=(192, 256)).transform(GetBBoxCenterScale(padding=1.25).transform(r))
        crops.append(r["img"][..., ::-1].copy())
        packed.append(PackPoseInputs().transform(r))
    with np.load(REPO / "tests" / "data" / "mmpose_zoo" / "pipeline.npz") as p:
        assert np.array_equal(np.stack(crops), p["crops_rgb_192x256"]), "the zoo pipeline's crops differ"

    shapes = {}
    for e in ENTRIES:
        c = Config.fromfile(str(cfg_root / e.mmpose_config.removeprefix("configs/")))
        c.model.backbone.pop("init_cfg", None)
        full = MODELS.build(c.model)
        shapes[e.name] = {k: list(v.shape) for k, v in full.state_dict().items()}
        del full
        c.model.backbone.update(SMALL)
        c.model.head.update(unit_channels=SMALL["unit_channels"], num_units=SMALL["num_units"])
        stages = c.model.head.num_stages
        c.model.head.level_indices = list(range(stages * SMALL["num_units"]))
        c.model.head.loss = c.model.head.loss[: stages * SMALL["num_units"]]
        model = MODELS.build(c.model).eval()
        fill(model, recipe)
        batch = model.data_preprocessor(pseudo_collate(packed), False)
        inputs, samples = batch["inputs"], batch["data_samples"]
        res = {}
        for sfx, dtype in (("", torch.float32), ("_f64", torch.float64)):
            model.to(dtype)
            x = inputs.to(dtype)
            feats, feats_flip = model.extract_feat(x), model.extract_feat(x.flip(-1))
            levels = model.head.forward(feats)
            res["raw" + sfx] = levels[-1][:1, :2, ::4, ::4].numpy()
            res["levels_sum" + sfx] = torch.stack([h.sum((2, 3)) for h in levels]).numpy()
            res["levels_max" + sfx] = torch.stack([h.amax((2, 3)) for h in levels]).numpy()
            preds = model.head.predict([feats, feats_flip], samples, test_cfg=dict(c.model.test_cfg))
            res["keypoints_crop_flip" + sfx] = np.concatenate([p.keypoints for p in preds])
            res["scores_flip" + sfx] = np.concatenate([p.keypoint_scores for p in preds])
            if dtype == torch.float32:
                results = model.test_step(pseudo_collate(packed))
            else:
                results = model.predict(x, [s.clone() for s in samples])
            res["keypoints_image_flip" + sfx] = np.concatenate([r.pred_instances.keypoints for r in results])
            res["scores_image_flip" + sfx] = np.concatenate([r.pred_instances.keypoint_scores for r in results])
        writer.npz(f"small_{e.name}.npz", **res)
        print(f"{e.name}: {len(shapes[e.name])} keys; small keypoints[0, :2] = {res['keypoints_crop_flip'][0, :2]}")
    path = out / "state_dict_shapes.json.gz"
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", filename="", mtime=0) as f:
        f.write(json.dumps(shapes).encode("utf-8"))
    writer.added(path)

    # ---- the codec
    g = {}
    rs = np.random.RandomState(20261205)
    kp = rs.uniform(-20, 270, size=(1, 17, 2)).astype(np.float32)
    kp[0, 0], kp[0, 1], kp[0, 2], kp[0, 3], kp[0, 4] = [0, 0], [191.9, 255.9], [192.0, 10], [3.99, 252.0], [-0.5, 5]
    vis = (rs.uniform(size=(1, 17)) > 0.2).astype(np.float32)
    vis[0, :5] = 1
    g["encode_keypoints"], g["encode_visible"] = kp, vis
    for ks in KERNELS:
        enc = MegviiHeatmap(input_size=(192, 256), heatmap_size=(48, 64), kernel_size=ks).encode(kp, vis)
        g[f"encode_{ks}_heatmaps"] = enc["heatmaps"]
        g[f"encode_{ks}_weights"] = enc["keypoint_weights"]
    cases = {name: recipe.recipe_array(f"megvii/{name}", shape) for name, shape in RANDOM_CASES.items()}
    cases["random_f64"] = cases["random"].astype(np.float64) * 3.0
    cases["edge"] = g["edge_maps"] = edge_maps()
    for name, hm in cases.items():
        c5 = MegviiHeatmap(input_size=(192, 256), heatmap_size=(hm.shape[3], hm.shape[2]), kernel_size=5)
        dec = [c5.decode(h) for h in hm]
        g[f"decode_{name}_keypoints"] = np.concatenate([d[0] for d in dec])
        g[f"decode_{name}_scores"] = np.concatenate([d[1] for d in dec])
    writer.npz("megvii.npz", **g)
    writer.print_sizes()


if __name__ == "__main__":
    main()
