#!/usr/bin/env python3
"""Write the DARK / UDP codec goldens (tests/data/mmpose_codecs/) with MMPose 1.3.2's own code.

Run in the SEPARATE MMPose virtual environment of ``make_golden.py`` (same import shims; see README.md):

    cd <repo root> && /work/mmpose-venv/bin/python tests/mmpose_golden/make_codec_golden.py   # ~20 seconds

No network and no weights. Heatmaps and encode keypoints are not stored: both sides rebuild them by name with
``codec_inputs.py`` (+ - * / only). What is written (read by ``tests/models/test_codecs_dark_udp.py``):

* ``codecs.npz``:

  - ``<codec>_<W>x<H>_<case>_{keypoints,scores}``: ``MSRAHeatmap(unbiased=True)`` (codec ``dark``) or
    ``UDPHeatmap`` (``udp``) ``.decode`` per instance (as ``BaseHead.decode``) at 48x64 (crop 192x256, sigma 2, blur
    11) and 72x96 (288x384, sigma 3, blur 17), on ``random_heatmaps("<codec>_<W>x<H>/random", (3, 17, H, W))`` as
    float32 (``random``) and float64 (``random_f64``), and on ``edge_heatmaps(H, W)`` (``edge``, ``edge_f64``):
    border peaks, flat / zero / negative maps, ties, a delta, tiny maxima.
  - ``blur_<W>x<H>``: ``gaussian_blur`` of the first random instance's first two maps (float32, kernel 11 / 17).
  - ``encode_<codec>_<W>x<H>_{heatmaps,weights}``: ``encode`` of ``encode_keypoints(input_size)`` (fractional,
    crop corners, outside, invisible).
  - ``flip_<codec>[_f64]_{keypoints,scores}``: ``HeatmapHead.predict`` with the config's ``test_cfg`` (DARK:
    ``td-hm_res50_dark`` 256x192, ``shift_heatmap=True``; UDP: ``td-hm_hrnet-w32_udp`` 256x192,
    ``shift_heatmap=False``) on ``random_heatmaps("flip_<codec>", ...)`` and ``"flip_<codec>/flipped"``; the head's
    ``forward`` is the identity, so MMPose's ``flip_heatmaps``, average and decode run on the given maps.
  - ``udp_warp_{inputs,matrices}``: ``get_udp_warp_matrix`` on rows (cx, cy, sw, sh, rot, out_w, out_h).

* ``pipeline_udp.npz``: the synthetic image of ``recipe.synthetic_image()`` and ``make_golden.BBOXES_XYXY``, through
  ``GetBBoxCenterScale`` + ``TopdownAffine(use_udp=True)`` at 192x256 and 288x384: ``input_center``,
  ``input_scale``, ``crops_rgb`` and ``transformed_keypoints`` of ``keypoints``; the ``rot30`` entries give box 0 a
  ``bbox_rotation`` of 30 degrees.
* ``small_<model>.npz``: a recipe-filled 8-channel ResNet-50 (``stem_channels = base_channels = 8``, deconvolutions
  16) of ``td-hm_res50_dark-8xb64-210e_coco-256x192`` (``res50_dark``) and of the same config with the UDP codec,
  ``TopdownAffine(use_udp=True)`` and ``shift_heatmap=False`` (``res50_udp``, HRNet-UDP's settings on ResNet), on
  the synthetic image's two boxes: ``raw`` (sample 0, joint 0 heatmap), the flip-test crop keypoints and scores of
  ``head.predict``, and ``test_step``'s image keypoints and scores (float32; ``predict`` on the float64 input:
  ``_f64``).
* ``metafiles.json``: the rows of ``resnet_dark_coco.yml``; ``state_dict_shapes.json.gz``: every key and shape of
  the six ResNet+DARK models at full width; ``train_configs.json``: their training recipes (make_zoo_golden's layout,
  plus ``test_cfg`` and the val pipeline's ``use_udp``).
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

import codec_inputs  # noqa: E402
from make_golden import BBOXES_XYXY, GoldenWriter, fill, install_import_shims, load_recipe, output_dir  # noqa: E402

DARK_CONFIG = "body_2d_keypoint/topdown_heatmap/coco/td-hm_res50_dark-8xb64-210e_coco-256x192.py"
UDP_CONFIG = "body_2d_keypoint/topdown_heatmap/coco/td-hm_hrnet-w32_udp-8xb64-210e_coco-256x192.py"
METAFILE = "body_2d_keypoint/topdown_heatmap/coco/resnet_dark_coco.yml"
#: (input size, heatmap size, sigma, blur kernel) of the decode / encode cases
SIZES = (((192, 256), (48, 64), 2.0, 11), ((288, 384), (72, 96), 3.0, 17))
FLIP = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]  # COCO (checked in tests/data/mmpose/schema.json)
SMALL_WIDTH = 8
UDP_WARPS = (
    (96.0, 128.0, 150.0, 200.0, 0.0, 192, 256),
    (135.25, 135.0, 187.5, 250.0, 0.0, 192, 256),
    (135.25, 135.0, 187.5, 250.0, 30.0, 192, 256),
    (225.25, 70.125, 186.875, 249.16, -45.0, 288, 384),
    (10.0, 20.0, 64.0, 64.0, 90.0, 48, 64),
)


def codec_cases(arrays: dict) -> None:
    """Decode / encode / blur / warp cases of ``codecs.npz``."""
    from mmpose.codecs import MSRAHeatmap, UDPHeatmap
    from mmpose.codecs.utils import gaussian_blur
    from mmpose.structures.bbox import get_udp_warp_matrix

    for size, hm_size, sigma, blur in SIZES:
        w, h = hm_size
        for name in ("dark", "udp"):
            if name == "dark":
                codec = MSRAHeatmap(size, hm_size, sigma, unbiased=True, blur_kernel_size=blur)
            else:
                codec = UDPHeatmap(size, hm_size, sigma=sigma, blur_kernel_size=blur)
            tag = f"{name}_{w}x{h}"
            rand = codec_inputs.random_heatmaps(f"{tag}/random", (3, 17, h, w))
            edge = codec_inputs.edge_heatmaps(h, w)
            cases = {"random": rand.astype(np.float32), "random_f64": rand, "edge": edge.astype(np.float32)}
            cases["edge_f64"] = edge
            for case, hm in cases.items():
                with np.errstate(invalid="ignore", divide="ignore"):
                    kpts, scores = zip(*(codec.decode(hm[i].copy()) for i in range(len(hm))))
                arrays[f"{tag}_{case}_keypoints"] = np.concatenate(kpts)
                arrays[f"{tag}_{case}_scores"] = np.concatenate(scores)
            kp, vis = codec_inputs.encode_keypoints(size)
            enc = codec.encode(kp.copy(), vis.copy())
            arrays[f"encode_{tag}_heatmaps"] = enc["heatmaps"]
            arrays[f"encode_{tag}_weights"] = enc["keypoint_weights"]
        rand = codec_inputs.random_heatmaps(f"dark_{w}x{h}/random", (3, 17, h, w)).astype(np.float32)
        arrays[f"blur_{w}x{h}"] = gaussian_blur(rand[0, :2].copy(), blur)
    arrays["udp_warp_inputs"] = np.array(UDP_WARPS, np.float64)
    arrays["udp_warp_matrices"] = np.stack(
        [get_udp_warp_matrix(np.array([cx, cy]), np.array([sw, sh]), rot, (ow, oh)) for cx, cy, sw, sh, rot, ow, oh in
         UDP_WARPS]
    )  # fmt: skip


def flip_cases(arrays: dict, cfg_root: Path) -> None:
    """``HeatmapHead.predict`` with the DARK / UDP configs' flip test on given heatmaps."""
    import torch
    from mmengine.config import Config
    from mmpose.registry import MODELS
    from mmpose.structures import PoseDataSample

    for name, rel in (("dark", DARK_CONFIG), ("udp", UDP_CONFIG)):
        cfg = Config.fromfile(str(cfg_root / rel))
        head = MODELS.build(cfg.model.head).eval()
        head.forward = lambda feats: feats  # the given heatmaps are the network's output
        samples = [PoseDataSample(metainfo=dict(flip_indices=FLIP)) for _ in range(2)]
        hm = codec_inputs.random_heatmaps(f"flip_{name}", (2, 17, 64, 48))
        hm_flip = codec_inputs.random_heatmaps(f"flip_{name}/flipped", (2, 17, 64, 48))
        for suffix, dtype in (("", np.float32), ("_f64", np.float64)):
            a, b = torch.from_numpy(hm.astype(dtype)), torch.from_numpy(hm_flip.astype(dtype))
            with torch.no_grad():
                preds = head.predict([a, b], samples, test_cfg=dict(cfg.model.test_cfg))
            arrays[f"flip_{name}{suffix}_keypoints"] = np.concatenate([p.keypoints for p in preds])
            arrays[f"flip_{name}{suffix}_scores"] = np.concatenate([p.keypoint_scores for p in preds])
        arrays[f"flip_{name}_shift_heatmap"] = np.bool_(cfg.model.test_cfg.shift_heatmap)


def pipeline_cases(image_rgb: np.ndarray) -> tuple[dict, dict]:
    """``TopdownAffine(use_udp=True)`` crops; returns (arrays of pipeline_udp.npz, packed inputs by size)."""
    from mmpose.datasets.transforms import GetBBoxCenterScale, PackPoseInputs, TopdownAffine

    arrays = {"image_rgb": image_rgb, "bboxes_xyxy": BBOXES_XYXY}
    keypoints = np.array([[[80.0, 60.5], [120.25, 200.0], [200.0, 100.0], [300.0, 30.0], [5.0, 5.0]]], np.float32)
    arrays["keypoints"] = keypoints[0]
    packed_by = {}
    for size in ((192, 256), (288, 384)):
        tag = f"{size[0]}x{size[1]}"
        for rot_tag, rot in (("", 0.0), ("_rot30", 30.0)):
            centers, scales, crops, kpts, packed = [], [], [], [], []
            for i, box in enumerate(BBOXES_XYXY):
                results = {
                    "img": np.ascontiguousarray(image_rgb[..., ::-1]),
                    "img_shape": image_rgb.shape[:2],
                    "ori_shape": image_rgb.shape[:2],
                    "bbox": box[None].copy(),
                    "bbox_score": np.ones(1, dtype=np.float32),
                    "keypoints": keypoints.copy(),
                    "keypoints_visible": np.ones((1, 5), np.float32),
                    "id": i,
                    "img_id": 0,
                    "img_path": "synthetic",
                    "flip_indices": FLIP,
                }
                results = GetBBoxCenterScale(padding=1.25).transform(results)
                if rot and i == 0:
                    results["bbox_rotation"] = np.array([rot], np.float32)
                results = TopdownAffine(input_size=size, use_udp=True).transform(results)
                centers.append(np.asarray(results["input_center"], dtype=np.float32))
                scales.append(np.asarray(results["input_scale"], dtype=np.float32))
                crops.append(results["img"][..., ::-1].copy())
                kpts.append(results["transformed_keypoints"][0])
                if not rot:
                    results.pop("keypoints"), results.pop("keypoints_visible"), results.pop("transformed_keypoints")
                    packed.append(PackPoseInputs().transform(results))
            arrays[f"input_center_{tag}{rot_tag}"] = np.stack(centers)
            arrays[f"input_scale_{tag}{rot_tag}"] = np.stack(scales)
            arrays[f"crops_rgb_{tag}{rot_tag}"] = np.stack(crops)
            arrays[f"transformed_keypoints_{tag}{rot_tag}"] = np.stack(kpts)
            if packed:
                packed_by[size] = packed
    return arrays, packed_by


def small_model(cfg, packed: list, recipe) -> dict:
    """Single pass, head.predict flip test and the full inference path of the 8-channel model, float32 / float64."""
    import torch
    from mmengine.dataset import pseudo_collate
    from mmpose.registry import MODELS

    cfg.model.backbone.update(stem_channels=SMALL_WIDTH, base_channels=SMALL_WIDTH, init_cfg=None)
    cfg.model.head.in_channels = SMALL_WIDTH * 8 * 4
    cfg.model.head.deconv_out_channels = (16, 16, 16)
    model = MODELS.build(cfg.model).eval()
    fill(model, recipe)
    data = pseudo_collate(packed)
    batch = model.data_preprocessor(data, False)
    inputs, samples = batch["inputs"], batch["data_samples"]
    res = {"input_size": np.array(cfg.codec["input_size"])}
    with torch.no_grad():
        for suffix, dtype in (("", torch.float32), ("_f64", torch.float64)):
            model.to(dtype)
            x = inputs.to(dtype)
            feats, feats_flip = model.extract_feat(x), model.extract_feat(x.flip(-1))
            res["raw" + suffix] = model.head.forward(feats)[:1, :1].numpy()
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
            assert np.isfinite(v).all(), f"non-finite {key}"
    return res


def zoo_facts(cfg_root: Path, writer: GoldenWriter) -> None:
    """metafiles.json, state_dict_shapes.json.gz and train_configs.json of the ResNet+DARK rows."""
    import yaml
    from mmengine.config import Config
    from mmpose.registry import MODELS

    rows, shapes, recipes = {}, {}, {}
    for m in yaml.safe_load((cfg_root / METAFILE).read_text())["Models"]:
        rel = m["Config"].removeprefix("configs/")
        rows[m["Config"]] = {
            "name": m["Name"],
            "collection": m["In Collection"],
            "weights": m["Weights"],
            "metrics": m["Results"][0]["Metrics"],
            "dataset": m["Results"][0]["Dataset"],
        }
        c = Config.fromfile(str(cfg_root / rel))
        shapes[m["Config"]] = {k: list(v.shape) for k, v in MODELS.build(c.model).state_dict().items()}
        warm, steps = c.param_scheduler
        init = c.model.get("init_cfg") or c.model.backbone.get("init_cfg")
        train_steps = c.train_dataloader.dataset.pipeline
        bbox_t = next(t for t in train_steps if t["type"] == "RandomBBoxTransform")
        recipes[m["Config"]] = {  # make_zoo_golden.py's train_configs.json layout, plus test_cfg and use_udp
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
            "init": {"on": "model" if c.model.get("init_cfg") else "backbone", **dict(init)},
            "train_pipeline": [t["type"] for t in train_steps],
            "shift_prob": bbox_t.get("shift_prob", None),
            "codec": dict(c.codec),
            "evaluator": {"type": c.val_evaluator.type, "score_mode": c.val_evaluator.get("score_mode")},
            "save_best": c.default_hooks.checkpoint.save_best,
            "test_cfg": dict(c.model.test_cfg),
            "use_udp": [t.get("use_udp", False) for t in c.val_pipeline if t["type"] == "TopdownAffine"][0],
        }
    writer.json("metafiles.json", rows)
    writer.json("train_configs.json", recipes)
    path = writer.out / "state_dict_shapes.json.gz"
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", filename="", mtime=0) as f:
        f.write(json.dumps(shapes).encode("utf-8"))
    writer.added(path)


def main() -> None:
    out = output_dir(__doc__.split("\n")[0], "mmpose_codecs")
    install_import_shims()
    import cv2
    import mmpose
    import mmpose.codecs  # noqa: F401  (registers codecs)
    import mmpose.models  # noqa: F401  (registers models)
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    init_default_scope("mmpose")
    torch.set_grad_enabled(False)
    recipe = load_recipe()
    cfg_root = Path(mmpose.__file__).parent / ".mim" / "configs"
    writer = GoldenWriter(out)
    writer.json(
        "versions.json",
        {
            "mmpose": mmpose.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "opencv": cv2.__version__,
            "recipe_version": recipe.RECIPE_VERSION,
        },
    )
    arrays: dict = {}
    codec_cases(arrays)
    flip_cases(arrays, cfg_root)
    writer.npz("codecs.npz", **arrays)
    pipeline, packed_by = pipeline_cases(recipe.synthetic_image())
    writer.npz("pipeline_udp.npz", **pipeline)

    from mmpose.datasets.transforms import GetBBoxCenterScale, PackPoseInputs, TopdownAffine

    dark_packed = []
    for i, box in enumerate(BBOXES_XYXY):
        img = recipe.synthetic_image()
        results = {"img": np.ascontiguousarray(img[..., ::-1]), "img_shape": img.shape[:2], "ori_shape": img.shape[:2],
                   "bbox": box[None].copy(), "bbox_score": np.ones(1, dtype=np.float32), "id": i, "img_id": 0,
                   "img_path": "synthetic", "flip_indices": FLIP}  # fmt: skip
        results = TopdownAffine(input_size=(192, 256)).transform(GetBBoxCenterScale(padding=1.25).transform(results))
        dark_packed.append(PackPoseInputs().transform(results))
    writer.npz("small_res50_dark.npz", **small_model(Config.fromfile(str(cfg_root / DARK_CONFIG)), dark_packed, recipe))
    udp = Config.fromfile(str(cfg_root / DARK_CONFIG))
    udp.codec = dict(type="UDPHeatmap", input_size=(192, 256), heatmap_size=(48, 64), sigma=2)
    udp.model.head.decoder = udp.codec
    udp.model.test_cfg.shift_heatmap = False
    writer.npz("small_res50_udp.npz", **small_model(udp, packed_by[(192, 256)], recipe))
    zoo_facts(cfg_root, writer)
    writer.print_sizes()


if __name__ == "__main__":
    main()
