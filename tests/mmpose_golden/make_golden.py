#!/usr/bin/env python3
"""Write MMPose golden files into tests/data/mmpose/ using MMPose's own code.

Run in a SEPARATE virtual environment with MMPose installed (never in the project venv). Exact steps
used to produce the committed files (CPU only, no GPU, no model weights downloaded):

    python3 -m venv /work/mmpose-venv
    /work/mmpose-venv/bin/pip install /opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl
    #   (elsewhere: pip install "torch==2.13.*" --index-url https://download.pytorch.org/whl/cpu)
    /work/mmpose-venv/bin/pip install --no-deps mmpose==1.3.2 mmengine==0.10.7 mmdet==3.3.0 mmcv-lite==2.1.0
    /work/mmpose-venv/bin/pip install addict yapf rich termcolor matplotlib opencv-python-headless \
        json-tricks munkres scipy pillow pyyaml six shapely terminaltables tqdm pycocotools numpy
    cd <repo root> && /work/mmpose-venv/bin/python tests/mmpose_golden/make_golden.py

Import shims (applied by :func:`install_import_shims` before importing MMPose, nothing is patched
on disk):

* ``mmcv._ext``: mmcv-lite ships no compiled ops, yet ``mmcv.ops`` (imported transitively by
  ``mmpose.models``) looks its kernels up at import time. A stub module whose attributes are
  functions raising ``RuntimeError`` satisfies the import; none of the modules used here (ResNet,
  HeatmapHead, IntegralRegressionHead/DSNTHead, TopdownPoseEstimator, PoseDataPreprocessor) calls
  an mmcv op, and a call would fail loudly rather than compute something wrong.
* ``xtcocotools``: ``mmpose.datasets`` imports ``xtcocotools.coco.COCO`` at import time; the PyPI
  xtcocotools wheels are built against numpy 1.x and fail to import under numpy 2. It is aliased to
  pycocotools (the project it forks); no COCO evaluation runs here.
* torchvision is NOT installed and not needed: ``mmpose.utils.register_all_modules`` would import
  ``mmpose.visualization`` (which imports torchvision), so this script imports ``mmpose.models`` /
  ``mmpose.codecs`` / ``mmpose.datasets.transforms`` directly and sets the ``mmpose`` default scope.

What is written (all small, coordinates float32/float64; see tests/mmpose_golden/README.md):
``versions.json``, ``schema.json``, ``state_dict_shapes.json``, ``head_integral.npz``,
``softargmax.npz``, ``head_heatmap.npz``, ``codec.npz``, ``geometry.npz``, ``pipeline.npz``,
``model_<zoo name>.npz``. Weights are never stored: every parameter comes from
``tests/mmpose_golden/recipe.py`` by key name.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import types
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

# zoo name -> MMPose config (relative to mmpose/.mim/configs)
CONFIGS = {
    "ipr_res50": "body_2d_keypoint/integral_regression/coco/ipr_res50_8xb64-210e_coco-256x256.py",
    "ipr_res50_dsnt": "body_2d_keypoint/integral_regression/coco/ipr_res50_dsnt-8xb64-210e_coco-256x256.py",
    "ipr_res50_debias": "body_2d_keypoint/integral_regression/coco/ipr_res50_debias-8xb64-210e_coco-256x256.py",
    "td-hm_res50": "body_2d_keypoint/topdown_heatmap/coco/td-hm_res50_8xb64-210e_coco-256x192.py",
}
# the three integral variants at inference: (beta, debias)
INTEGRAL_VARIANTS = {"ipr": (1.0, False), "dsnt": (1.0, False), "debias": (10.0, True)}
BBOXES_XYXY = np.array([[60.0, 40.0, 210.0, 230.0], [150.5, 20.25, 300.0, 120.0]], dtype=np.float32)


def install_import_shims() -> None:
    """See the module docstring: stub ``mmcv._ext``, alias ``xtcocotools`` to pycocotools."""

    class _StubExt(types.ModuleType):
        def __getattr__(self, name: str):
            if name.startswith("__"):
                raise AttributeError(name)

            def _missing(*args, **kwargs):
                raise RuntimeError(f"mmcv._ext.{name} is a stub: mmcv-lite has no compiled ops")

            return _missing

    sys.modules.setdefault("mmcv._ext", _StubExt("mmcv._ext"))
    try:
        import xtcocotools.coco  # noqa: F401
    except Exception:
        import pycocotools
        import pycocotools.coco
        import pycocotools.cocoeval
        import pycocotools.mask

        for name, mod in (
            ("xtcocotools", pycocotools),
            ("xtcocotools.coco", pycocotools.coco),
            ("xtcocotools.cocoeval", pycocotools.cocoeval),
            ("xtcocotools.mask", pycocotools.mask),
        ):
            sys.modules[name] = mod


def load_recipe():
    spec = importlib.util.spec_from_file_location("golden_recipe", HERE / "recipe.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def fill(module, recipe, prefix: str = "") -> None:
    """Overwrite every parameter / buffer of ``module`` with the recipe value for ``prefix + key``."""
    import torch

    sd = module.state_dict()
    new = {}
    for k, v in sd.items():
        val = recipe.recipe_value(prefix + k, tuple(v.shape))
        new[k] = v if val is None else torch.from_numpy(val)
    module.load_state_dict(new, strict=True)


class GoldenWriter:
    """Writes golden files into one folder and remembers their sizes (:meth:`print_sizes`)."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.sizes: dict[str, int] = {}

    def added(self, path: Path) -> None:
        """Count a file written by other means."""
        self.sizes[path.name] = path.stat().st_size

    def npz(self, name: str, **arrays) -> None:
        np.savez_compressed(self.out / name, **arrays)
        self.added(self.out / name)

    def json(self, name: str, obj) -> None:
        (self.out / name).write_text(json.dumps(obj, indent=1) + "\n")  # insertion order kept (MMPose key order)
        self.added(self.out / name)

    def print_sizes(self) -> None:
        for name, n in sorted(self.sizes.items()):
            print(f"{n / 1024:8.1f} KiB  {self.out / name}")


def output_dir(description: str, default: str) -> Path:
    """``--out`` (default ``tests/data/<default>``), created."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--out", type=Path, default=REPO / "tests" / "data" / default)
    out: Path = ap.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    return out


def main() -> None:
    out = output_dir(__doc__.split("\n")[0], "mmpose")

    install_import_shims()
    import cv2
    import mmcv
    import mmengine
    import mmpose
    import mmpose.codecs  # noqa: F401  (registers codecs)
    import mmpose.models  # noqa: F401  (registers models)
    import torch
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import init_default_scope
    from mmpose.codecs import IntegralRegressionLabel, MSRAHeatmap
    from mmpose.codecs.utils import get_heatmap_maximum
    from mmpose.datasets.datasets.utils import parse_pose_metainfo
    from mmpose.datasets.transforms import GetBBoxCenterScale, PackPoseInputs, TopdownAffine
    from mmpose.registry import MODELS
    from mmpose.structures import PoseDataSample
    from mmpose.structures.bbox import bbox_xyxy2cs, get_warp_matrix

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
            "mmcv": mmcv.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "opencv": cv2.__version__,
            "recipe_version": recipe.RECIPE_VERSION,
        },
    )

    # ---- COCO schema as MMPose defines it (flip indices, sigmas)
    meta = parse_pose_metainfo(dict(from_file=str(cfg_root / "_base_" / "datasets" / "coco.py")))
    flip_indices = [int(i) for i in meta["flip_indices"]]
    save_json(
        "schema.json",
        {
            "flip_indices": flip_indices,
            "sigmas": [float(s) for s in meta["sigmas"]],
            "keypoint_names": [meta["keypoint_id2name"][i] for i in range(meta["num_keypoints"])],
        },
    )

    # ---- full models: key list + shapes, recipe-filled outputs on MMPose's own crops
    image_rgb = recipe.synthetic_image()
    pipeline = {"image_rgb": image_rgb, "bboxes_xyxy": BBOXES_XYXY}
    crops_by_size = {}
    for size in ((256, 256), (192, 256)):
        tag = f"{size[0]}x{size[1]}"
        packed, centers, scales, crops = [], [], [], []
        for i, box in enumerate(BBOXES_XYXY):
            results = {
                "img": np.ascontiguousarray(image_rgb[..., ::-1]),  # MMPose works on BGR images
                "img_shape": image_rgb.shape[:2],
                "ori_shape": image_rgb.shape[:2],
                "bbox": box[None].copy(),
                "bbox_score": np.ones(1, dtype=np.float32),
                "id": i,
                "img_id": 0,
                "img_path": "synthetic",
                "flip_indices": flip_indices,
            }
            results = GetBBoxCenterScale(padding=1.25).transform(results)
            results = TopdownAffine(input_size=size).transform(results)
            centers.append(np.asarray(results["input_center"], dtype=np.float32))
            scales.append(np.asarray(results["input_scale"], dtype=np.float32))
            crops.append(results["img"][..., ::-1].copy())  # back to RGB for storage
            packed.append(PackPoseInputs().transform(results))
        pipeline[f"input_center_{tag}"] = np.stack(centers)
        pipeline[f"input_scale_{tag}"] = np.stack(scales)
        pipeline[f"crops_rgb_{tag}"] = np.stack(crops)
        crops_by_size[size] = packed
    save_npz("pipeline.npz", **pipeline)

    shapes_all = {}
    for name, rel in CONFIGS.items():
        cfg = Config.fromfile(str(cfg_root / rel))
        model = MODELS.build(cfg.model).eval()
        fill(model, recipe)
        sd = model.state_dict()
        shapes_all[name] = {k: list(v.shape) for k, v in sd.items()}
        size = tuple(cfg.codec["input_size"])
        data = pseudo_collate(crops_by_size[size])
        batch = model.data_preprocessor(data, False)
        inputs, samples = batch["inputs"], batch["data_samples"]
        res = {}
        # float32 (as MMPose runs) and float64 (the same model and crops cast to double: a reference
        # free of float32 accumulation-order noise, which differs between CPUs / oneDNN kernels)
        for suffix, dtype in (("", torch.float32), ("_f64", torch.float64)):
            model.to(dtype)
            x = inputs.to(dtype)
            feats = model.extract_feat(x)
            feats_flip = model.extract_feat(x.flip(-1))
            if cfg.model.head.type == "HeatmapHead":
                res["heatmaps_single_0_k0to2" + suffix] = model.head.forward(feats)[0, :3].numpy()
                test_cfg = dict(cfg.model.test_cfg, output_heatmaps=True)
                preds, fields = model.head.predict([feats, feats_flip], samples, test_cfg=test_cfg)
                res["heatmaps_flip_0_k0to2" + suffix] = fields[0].heatmaps[:3].numpy()
            else:
                coords, _ = model.head.forward(feats)
                res["coords_single" + suffix] = coords.numpy()
                preds = model.head.predict([feats, feats_flip], samples, test_cfg=dict(cfg.model.test_cfg))
            res["keypoints_crop_flip" + suffix] = np.concatenate([p.keypoints for p in preds])
            res["scores_flip" + suffix] = np.concatenate([p.keypoint_scores for p in preds])
            # the full MMPose inference path: (preprocessor) -> flip test -> decode -> image coordinates;
            # float32 through test_step exactly as MMPose runs it, float64 through predict on the cast input
            if dtype == torch.float32:
                results = model.test_step(data)
            else:
                results = model.predict(x, [s.clone() for s in samples])
            res["keypoints_image_flip" + suffix] = np.concatenate([r.pred_instances.keypoints for r in results])
            res["scores_image_flip" + suffix] = np.concatenate([r.pred_instances.keypoint_scores for r in results])
        res["input_size"] = np.array(size)
        for k, v in res.items():
            if np.issubdtype(np.asarray(v).dtype, np.floating):
                assert np.isfinite(v).all(), f"{name}: non-finite {k}"
        save_npz(f"model_{name}.npz", **res)
        print(f"{name}: {len(sd)} keys; keypoints_crop_flip[0,:3] = {res['keypoints_crop_flip'][0, :3].tolist()}")
    save_json("state_dict_shapes.json", shapes_all)

    # ---- integral head (DSNTHead) with small channel counts, each variant
    feats = torch.from_numpy(recipe.recipe_array("head_feats", (2, 16, 8, 8)))
    feats_flip = torch.from_numpy(recipe.recipe_array("head_feats_flip", (2, 16, 8, 8)))
    codec_cfg = dict(type="IntegralRegressionLabel", input_size=(256, 256), heatmap_size=(64, 64), sigma=2.0)
    samples = [PoseDataSample(metainfo=dict(flip_indices=flip_indices, input_size=(256, 256))) for _ in range(2)]
    head_out = {"feats": feats.numpy(), "feats_flip": feats_flip.numpy()}
    for variant, (beta, debias) in INTEGRAL_VARIANTS.items():
        head = MODELS.build(
            dict(
                type="DSNTHead",
                in_channels=16,
                in_featuremap_size=(8, 8),
                num_joints=17,
                beta=beta,
                debias=debias,
                deconv_out_channels=(8, 8, 8),
                decoder=codec_cfg,
            )
        ).eval()
        fill(head, recipe, prefix="head.")
        coords, heatmaps = head.forward((feats,))
        head_out[f"{variant}_coords"] = coords.numpy()
        head_out[f"{variant}_heatmap_peak"] = heatmaps.flatten(2).amax(2).numpy()
        preds = head.predict([(feats,), (feats_flip,)], samples, test_cfg=dict(flip_test=True, shift_coords=True))
        head_out[f"{variant}_flip_keypoints"] = np.concatenate([p.keypoints for p in preds]).astype(np.float32)
    save_npz("head_integral.npz", **head_out)

    # ---- soft-argmax + debias on given logits (IntegralRegressionHead without deconv / final layer)
    base = recipe.recipe_array("softargmax_logits", (2, 17, 16, 16))
    scale = np.linspace(0.5, 12.0, 17, dtype=np.float32)[None, :, None, None]
    offset = np.linspace(-12.0, 40.0, 17, dtype=np.float32)[None, :, None, None]
    logits = (base * scale + offset).astype(np.float32)  # per-map max from about -10 to about 80
    sa = {"logits": logits}
    for tag, (beta, debias) in {"b1": (1.0, False), "b10_debias": (10.0, True), "b1_debias": (1.0, True)}.items():
        head = MODELS.build(
            dict(
                type="IntegralRegressionHead",
                in_channels=17,
                in_featuremap_size=(16, 16),
                num_joints=17,
                beta=beta,
                debias=debias,
                deconv_out_channels=None,
                final_layer=None,
            )
        ).eval()
        coords, _ = head.forward((torch.from_numpy(logits),))
        assert torch.isfinite(coords).all(), tag
        sa[f"{tag}_coords"] = coords.numpy()
    save_npz("softargmax.npz", **sa)

    # ---- SimpleBaseline heatmap head, small channels, flip test
    hfeats = torch.from_numpy(recipe.recipe_array("hm_head_feats", (2, 16, 4, 3)))
    hfeats_flip = torch.from_numpy(recipe.recipe_array("hm_head_feats_flip", (2, 16, 4, 3)))
    head = MODELS.build(
        dict(
            type="HeatmapHead",
            in_channels=16,
            out_channels=17,
            deconv_out_channels=(8, 8, 8),
            decoder=dict(type="MSRAHeatmap", input_size=(96, 128), heatmap_size=(24, 32), sigma=2),
        )
    ).eval()
    fill(head, recipe, prefix="head.")
    samples = [PoseDataSample(metainfo=dict(flip_indices=flip_indices, input_size=(96, 128))) for _ in range(2)]
    preds, fields = head.predict(
        [(hfeats,), (hfeats_flip,)],
        samples,
        test_cfg=dict(flip_test=True, flip_mode="heatmap", shift_heatmap=True, output_heatmaps=True),
    )
    save_npz(
        "head_heatmap.npz",
        feats=hfeats.numpy(),
        feats_flip=hfeats_flip.numpy(),
        heatmaps_0=head.forward((hfeats,))[0].numpy(),
        heatmaps_flip_0=fields[0].heatmaps.numpy(),
        keypoints_flip=np.concatenate([p.keypoints for p in preds]).astype(np.float32),
        scores_flip=np.concatenate([p.keypoint_scores for p in preds]).astype(np.float32),
    )

    # ---- codecs
    codec = IntegralRegressionLabel(input_size=(256, 256), heatmap_size=(64, 64), sigma=2.0, normalize=True)
    rng = np.random.RandomState(20240917)
    cases = []
    kp = rng.uniform(0, 255, size=(1, 17, 2)).astype(np.float32)
    cases.append((kp, np.ones((1, 17), np.float32)))
    kp = rng.uniform(-20, 275, size=(1, 17, 2)).astype(np.float32)
    kp[0, 0] = [0.0, 0.0]
    kp[0, 1] = [255.0, 255.0]
    kp[0, 2] = [255.5, 10.0]
    kp[0, 3] = [-0.4, 100.0]
    kp[0, 4] = [300.0, 300.0]  # Gaussian fully outside -> weight 0 in the heatmap codec
    kp[0, 5] = [-13.9, 128.0]  # Gaussian partly inside
    vis = (rng.uniform(size=(1, 17)) > 0.3).astype(np.float32)
    vis[0, :6] = 1.0
    cases.append((kp, vis))
    codec_out = {}
    for i, (kp, vis) in enumerate(cases):
        enc = codec.encode(kp, vis)
        codec_out[f"case{i}_keypoints"] = kp
        codec_out[f"case{i}_visible"] = vis
        for k in ("keypoint_labels", "keypoint_weights", "heatmaps"):
            codec_out[f"case{i}_{k}"] = np.asarray(enc[k])
    coords = rng.uniform(-0.1, 1.1, size=(3, 17, 2)).astype(np.float32)
    dec_kp, dec_sc = codec.decode(coords)
    codec_out.update(decode_coords=coords, decode_keypoints=dec_kp, decode_scores=dec_sc)
    hm = rng.standard_normal(size=(3, 17, 16, 12)).astype(np.float32)
    hm[0, 0] = -1.0  # max <= 0 -> location -1
    hm[0, 1, 5, 0] = 9.0  # max at the left border (no x refinement)
    hm[0, 2, 0, 7] = 9.0  # top border
    hm[0, 3, 15, 11] = 9.0  # bottom-right corner
    hm[0, 4, 7, 1] = 9.0  # x == 1 (MMPose refines only for 1 < x)
    hm[0, 5, 7, 10] = 9.0  # x == W - 2
    hm[0, 6, 3, 4] = 9.0  # equal neighbours -> no shift
    hm[0, 6, 3, 3] = hm[0, 6, 3, 5] = 1.0
    locs, vals = get_heatmap_maximum(hm)
    codec_out.update(maximum_heatmaps=hm, maximum_locs=locs, maximum_vals=vals)
    msra = MSRAHeatmap(input_size=(48, 64), heatmap_size=(12, 16), sigma=2)
    mk, ms = zip(*(msra.decode(h) for h in hm), strict=True)
    codec_out.update(msra_keypoints=np.concatenate(mk), msra_scores=np.concatenate(ms))
    msra_enc = msra.encode(cases[1][0] * np.float32(48 / 256), cases[1][1])
    codec_out.update(msra_encode_heatmaps=msra_enc["heatmaps"], msra_encode_weights=msra_enc["keypoint_weights"])
    save_npz("codec.npz", **codec_out)

    # ---- geometry: bbox_xyxy2cs, get_warp_matrix
    geo_cases = []
    for center, scale_wh, rot, size, shift in (
        ((160.0, 120.0), (200.0, 200.0), 0.0, (256, 256), (0.0, 0.0)),
        ((135.0, 135.0), (237.5, 237.5), 0.0, (256, 256), (0.0, 0.0)),
        ((225.25, 70.125), (186.875, 249.1667), 0.0, (192, 256), (0.0, 0.0)),
        ((50.0, 300.0), (80.0, 80.0), 30.0, (256, 256), (0.0, 0.0)),
        ((400.5, 10.5), (123.4, 164.5), -45.0, (192, 256), (0.1, -0.05)),
        ((1000.0, 2000.0), (3000.0, 4000.0), 90.0, (96, 128), (0.0, 0.0)),
    ):
        for inv in (False, True):
            m = get_warp_matrix(np.array(center, np.float32), np.array(scale_wh, np.float32), rot, size, shift, inv)
            geo_cases.append((center + scale_wh + (rot,) + size + shift + (float(inv),), m))
    boxes = np.array([[10, 20, 110, 220], [0.5, 0.25, 30.75, 10.5], [100, 100, 400, 150]], dtype=np.float32)
    c, s = bbox_xyxy2cs(boxes, padding=1.25)
    save_npz(
        "geometry.npz",
        warp_args=np.array([a for a, _ in geo_cases], dtype=np.float64),
        warp_matrices=np.stack([m for _, m in geo_cases]),
        cs_boxes=boxes,
        cs_centers=c,
        cs_scales=s,
        fix_scales_256x256=np.stack([TopdownAffine._fix_aspect_ratio(x[None], 1.0)[0] for x in s]),
        fix_scales_192x256=np.stack([TopdownAffine._fix_aspect_ratio(x[None], 0.75)[0] for x in s]),
    )

    writer.print_sizes()


if __name__ == "__main__":
    main()
