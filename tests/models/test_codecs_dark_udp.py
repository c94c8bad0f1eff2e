"""DARK and UDP against MMPose 1.3.2 (goldens of tests/mmpose_golden/make_codec_golden.py in tests/data/mmpose_codecs):
the codecs' decode (incl. border peaks, flat / zero / negative maps) and encode, the blur, the flip test through the
card's decode, UDP's warp matrix and crops, an 8-channel ResNet-50 + DARK / + UDP through MMPose's full inference
path, and the ResNet+DARK zoo rows against MMPose's metafile, state dicts and training recipes.

The heatmaps are not stored: ``tests/mmpose_golden/codec_inputs.py`` rebuilds them by name on both sides.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from inference.runtime_base import Runtime
from models import geometry
from models.card import ModelCard, ModelCardError, card_for_config
from models.codecs_dark_udp import DarkHeatmap, UDPHeatmap, decode_heatmaps_with, gaussian_blur, heatmap_codec
from models.pose_model import TopdownPoseModel, build_pose_model
from models.tolerance import PARITY_FP32, PARITY_FP64
from models.zoo import ZOO, PoseModelConfig, get_config
from tests.golden import fill, load_npz

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "mmpose_codecs"
SIZES = (((192, 256), (48, 64), 2.0, 11), ((288, 384), (72, 96), 3.0, 17))
#: The ResNet+DARK rows (resnet_dark_coco.yml); the HRNet+DARK / +UDP rows are tests/models/test_hrnet_parity.py's.
DARK_ROWS = sorted(n for n, c in ZOO.items() if c.codec == "dark" and c.backbone == "resnet")
SMALL = {"backbone_base_channels": 8, "deconv_out_channels": (16, 16, 16)}
_YML = {"AP": "AP", "AP@0.5": "AP50", "AP@0.75": "AP75", "AR": "AR", "AR@0.5": "AR50"}


def _load_inputs():
    path = Path(__file__).resolve().parents[1] / "mmpose_golden" / "codec_inputs.py"
    spec = importlib.util.spec_from_file_location("codec_inputs", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


inputs = _load_inputs()


@functools.cache
def npz(name: str) -> dict[str, np.ndarray]:
    return load_npz(GOLDEN / name)


def report(what: str, dev: float, tol: float) -> float:
    print(f"[codec-parity] {what}: max deviation {dev:.3g}")
    assert dev <= tol, f"{what}: max deviation {dev:.3g} > {tol:g}"
    return dev


def dev_px(got, want, scale) -> float:
    """max |got - want| / scale in float64; NaN where and only where the golden has NaN."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, f"shape {got.shape} vs {want.shape}"
    assert (np.isnan(got) == np.isnan(want)).all(), "NaN positions differ"
    ok = ~np.isnan(want)
    return float(np.abs(got[ok] - want[ok]).max() / scale) if ok.any() else 0.0


def test_golden_versions():
    v = json.loads((GOLDEN / "versions.json").read_text())
    assert v["mmpose"] == "1.3.2"


@pytest.mark.parametrize("case", ["random", "random_f64", "edge", "edge_f64"])
@pytest.mark.parametrize("size", SIZES, ids=["48x64", "72x96"])
@pytest.mark.parametrize("name", ["dark", "udp"])
def test_decode_equals_mmpose(name, size, case):
    """Per-instance decode (MMPose ``MSRAHeatmap(unbiased=True).decode`` / ``UDPHeatmap.decode``), crop pixels
    normalised by the crop width; scores exactly; the input is not modified."""
    input_size, (w, h), sigma, blur = size
    tag = f"{name}_{w}x{h}"
    hm = (
        inputs.random_heatmaps(f"{tag}/random", (3, 17, h, w))
        if case.startswith("random")
        else inputs.edge_heatmaps(h, w)
    )
    hm = hm if case.endswith("f64") else hm.astype(np.float32)
    before = hm.copy()
    codec = heatmap_codec(name, input_size, (w, h), sigma, blur)
    kp, scores = codec.decode(hm)
    assert np.array_equal(hm, before)
    g = npz("codecs.npz")
    tol = PARITY_FP64 if case.endswith("f64") else PARITY_FP32
    report(f"{tag} {case} keypoints / w", dev_px(kp, g[f"{tag}_{case}_keypoints"], input_size[0]), tol)
    assert np.array_equal(scores, g[f"{tag}_{case}_scores"]) and scores.dtype == g[f"{tag}_{case}_scores"].dtype


@pytest.mark.parametrize("size", SIZES, ids=["48x64", "72x96"])
def test_gaussian_blur_equals_mmpose(size):
    _, (w, h), _, blur = size
    hm = inputs.random_heatmaps(f"dark_{w}x{h}/random", (3, 17, h, w)).astype(np.float32)[0, :2].copy()
    report(f"blur {w}x{h} k{blur}", dev_px(gaussian_blur(hm, blur), npz("codecs.npz")[f"blur_{w}x{h}"], 1.0), 0.0)


@pytest.mark.parametrize("size", SIZES, ids=["48x64", "72x96"])
@pytest.mark.parametrize("name", ["dark", "udp"])
def test_encode_equals_mmpose(name, size):
    input_size, (w, h), sigma, blur = size
    kp, vis = inputs.encode_keypoints(input_size)
    enc = heatmap_codec(name, input_size, (w, h), sigma, blur).encode(kp, vis)
    g = npz("codecs.npz")
    report(f"encode {name} {w}x{h}", dev_px(enc["heatmaps"], g[f"encode_{name}_{w}x{h}_heatmaps"], 1.0), 1e-6)
    assert np.array_equal(enc["keypoint_weights"], g[f"encode_{name}_{w}x{h}_weights"])
    assert enc["keypoint_weights"][0].tolist() == [1, 1, 1, 1, 0, 0]  # far outside -> 0, invisible -> 0


def _flip_card(name: str) -> ModelCard:
    cfg = get_config("td-hm_res50_dark")
    return card_for_config(cfg if name == "dark" else cfg.replace(codec="udp", shift_heatmap=False))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["dark", "udp"])
def test_flip_test_through_the_card_equals_mmpose_head_predict(name, dtype):
    """``ModelCard.decode(output, flipped)`` = MMPose ``HeatmapHead.predict`` with the DARK / UDP configs' test_cfg
    (UDP: no heatmap shift)."""
    g = npz("codecs.npz")
    card = _flip_card(name)
    assert card.output.flip_shift == bool(g[f"flip_{name}_shift_heatmap"])
    hm = inputs.random_heatmaps(f"flip_{name}", (2, 17, 64, 48)).astype(dtype)
    hm_flip = inputs.random_heatmaps(f"flip_{name}/flipped", (2, 17, 64, 48)).astype(dtype)
    out = card.decode(hm, hm_flip)
    sfx = "_f64" if dtype == "float64" else ""
    tol = PARITY_FP64 if dtype == "float64" else PARITY_FP32
    report(f"flip {name} {dtype} keypoints / w", dev_px(out[..., :2], g[f"flip_{name}{sfx}_keypoints"], 192), tol)
    report(f"flip {name} {dtype} scores", dev_px(out[..., 2], g[f"flip_{name}{sfx}_scores"], 1.0), tol)


def test_udp_warp_matrix_equals_mmpose():
    g = npz("codecs.npz")
    for row, want in zip(g["udp_warp_inputs"], g["udp_warp_matrices"]):
        cx, cy, sw, sh, rot, ow, oh = row
        got = geometry.get_udp_warp_matrix(np.array([cx, cy]), np.array([sw, sh]), rot, (int(ow), int(oh)))
        assert got.dtype == np.float32 and np.array_equal(got, want), (row, got, want)


@pytest.mark.parametrize("rot", ["", "_rot30"])
@pytest.mark.parametrize("size", [(192, 256), (288, 384)])
def test_udp_crops_equal_mmpose_topdown_affine(size, rot):
    """``crop_batch(use_udp=True)`` / ``crop_image`` = ``TopdownAffine(use_udp=True)`` (within one uint8 level, the
    OpenCV policy of ``models.tolerance``), its keypoints ``transformed_keypoints``; box 0 rotated 30 degrees."""
    p = npz("pipeline_udp.npz")
    tag = f"{size[0]}x{size[1]}{rot}"
    centers, scales = geometry.bbox_to_center_scale(p["bboxes_xyxy"], size)
    assert np.array_equal(centers, p[f"input_center_{tag}"]) and np.array_equal(scales, p[f"input_scale_{tag}"])
    for i, (c, s) in enumerate(zip(centers, scales)):
        r = 30.0 if rot and i == 0 else 0.0
        crop = geometry.crop_image(p["image_rgb"], c, s, size, r, use_udp=True)
        diff = np.abs(crop.astype(int) - p[f"crops_rgb_{tag}"][i].astype(int))
        assert diff.max() <= 1, (tag, i, diff.max())
        kp = geometry.transform_points(p["keypoints"], geometry.crop_warp_matrix(c, s, r, size, use_udp=True))
        report(f"udp keypoints {tag} box {i}", dev_px(kp, p[f"transformed_keypoints_{tag}"][i], 1.0), 1e-4)
    if not rot:
        batch = geometry.crop_batch(p["image_rgb"], centers, scales, size, use_udp=True)
        assert np.abs(batch.astype(int) - p[f"crops_rgb_{tag}"].astype(int)).max() <= 1


@functools.cache
def _small(name: str) -> tuple[PoseModelConfig, dict]:
    cfg = get_config("td-hm_res50_dark").replace(**SMALL)
    if name == "udp":
        cfg = cfg.replace(codec="udp", shift_heatmap=False)
    return cfg, fill(build_pose_model(cfg)).state_dict()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", ["dark", "udp"])
def test_small_resnet_model_matches_mmpose_test_step(name, dtype):
    """8-channel ResNet-50 + DARK (``td-hm_res50_dark``) and + UDP: MMPose's single pass, head flip test and
    ``test_step`` image keypoints (crops: MMPose's, ``TopdownAffine`` / ``TopdownAffine(use_udp=True)``)."""
    cfg, sd = _small(name)
    g = npz(f"small_res50_{name}.npz")
    if name == "udp":
        p = npz("pipeline_udp.npz")
        crops = p["crops_rgb_192x256"]
    else:
        p = load_npz(GOLDEN.parent / "mmpose_zoo" / "pipeline.npz")
        crops = p["crops_rgb_192x256"]
    sfx, tol, tdtype = ("_f64", PARITY_FP64, torch.float64) if dtype == "float64" else ("", PARITY_FP32, torch.float32)
    model = build_pose_model(cfg)
    model.load_state_dict(sd)
    x = model.preprocess(torch.from_numpy(crops)).to(tdtype)  # normalised in float32, as MMPose's data_preprocessor
    model.to(tdtype)
    with torch.no_grad():
        single, mirrored = model.head(model.backbone(x)).numpy(), model.head(model.backbone(x.flip(-1))).numpy()
    raw = single[:1, :1]
    report(f"{name} {dtype} single pass", dev_px(raw, g["raw" + sfx], max(1.0, np.abs(g["raw" + sfx]).max())), tol)
    decoded = model.card.decode(single, mirrored)
    report(f"{name} {dtype} flip keypoints / w", dev_px(decoded[..., :2], g["keypoints_crop_flip" + sfx], 192), tol)
    report(f"{name} {dtype} flip scores", dev_px(decoded[..., 2], g["scores_flip" + sfx], 1.0), tol)
    centers, scales = geometry.bbox_to_center_scale(p["bboxes_xyxy"], (192, 256))
    image_kp = geometry.keypoints_crop_to_image(decoded[..., :2], centers, scales, (192, 256))
    want = g["keypoints_image_flip" + sfx]
    report(f"{name} {dtype} image keypoints / box", dev_px(image_kp / scales[:, None], want / scales[:, None], 1), tol)
    report(f"{name} {dtype} image scores", dev_px(decoded[..., 2], g["scores_image_flip" + sfx], 1.0), tol)


# ---------------------------------------------------------------- the zoo rows


@pytest.mark.parametrize("name", DARK_ROWS)
def test_dark_row_equals_mmpose_metafile(name):
    cfg = get_config(name)
    row = json.loads((GOLDEN / "metafiles.json").read_text())[cfg.mmpose_config]
    assert row["collection"] == cfg.collection == "DarkPose" and row["dataset"] == "COCO"
    assert cfg.checkpoint_url == row["weights"]
    assert cfg.sha256_prefix == cfg.checkpoint_filename.rsplit("-", 1)[1][:8]
    assert cfg.published == {_YML[k]: v for k, v in row["metrics"].items()}


def test_every_resnet_dark_metafile_row_is_a_zoo_entry():
    rows = json.loads((GOLDEN / "metafiles.json").read_text())
    assert sorted(rows) == sorted(get_config(n).mmpose_config for n in DARK_ROWS) and len(rows) == 6


@pytest.mark.parametrize("name", DARK_ROWS)
def test_dark_row_codec_and_test_cfg_equal_mmpose_config(name):
    cfg = get_config(name)
    r = json.loads((GOLDEN / "train_configs.json").read_text())[cfg.mmpose_config]
    codec = r["codec"]
    assert codec["type"] == "MSRAHeatmap" and codec["unbiased"] is True and cfg.codec == "dark"
    assert tuple(codec["input_size"]) == cfg.input_size and tuple(codec["heatmap_size"]) == cfg.heatmap_size
    assert codec["sigma"] == cfg.sigma and codec.get("blur_kernel_size", 11) == cfg.blur_kernel_size
    assert r["test_cfg"]["flip_test"] == cfg.flip_test and r["test_cfg"]["shift_heatmap"] == cfg.shift_heatmap
    assert r["use_udp"] is cfg.use_udp is False
    assert r["init"]["checkpoint"] == f"torchvision://resnet{cfg.backbone_depth}"
    assert r["losses"] == ["KeypointMSELoss"]


@pytest.mark.parametrize("name", DARK_ROWS)
def test_dark_row_state_dict_keys_and_shapes_equal_mmpose(name):
    with gzip.open(GOLDEN / "state_dict_shapes.json.gz", "rt", encoding="utf-8") as f:
        expected = json.load(f)[get_config(name).mmpose_config]
    with torch.device("meta"):
        model = TopdownPoseModel(get_config(name))
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert list(ours) == list(expected) and ours == expected


# ---------------------------------------------------------------- the card and the config


def test_card_codec_round_trips_and_old_cards_load_unchanged(tmp_path):
    old = card_for_config(get_config("td-hm_res50"))
    d = old.to_dict()
    assert "codec" not in d["output"] and "blur_kernel_size" not in d["output"]
    assert ModelCard.from_dict(d).output.codec == "msra" and not old.use_udp
    card = card_for_config(get_config("td-hm_res152_dark_coco-384x288"))
    assert card.output.codec == "dark" and card.output.blur_kernel_size == 17
    again = ModelCard.load(card.save(tmp_path / "c.json"))
    assert again.output == card.output
    udp = card_for_config(get_config("td-hm_res50_dark").replace(codec="udp", shift_heatmap=False))
    assert udp.use_udp and udp.to_dict()["output"]["codec"] == "udp"


@pytest.mark.parametrize(
    ("output", "match"),
    [
        ({"codec": "dsnt"}, "output.codec"),
        ({"codec": "dark", "kind": "keypoints"}, "belongs to kind heatmap"),
        ({"codec": "dark", "blur_kernel_size": 10}, "blur_kernel_size"),
    ],
)
def test_card_rejects_bad_codec_fields(output, match):
    d = card_for_config(get_config("td-hm_res50_dark")).to_dict()
    d["output"].update(output)
    with pytest.raises(ModelCardError, match=match):
        ModelCard.from_dict(d)


def test_config_rejects_bad_codec_fields():
    with pytest.raises(ValueError, match="codec must be one of"):
        get_config("td-hm_res50").replace(codec="simcc")
    with pytest.raises(ValueError, match="needs a heatmap head"):
        get_config("ipr_res50").replace(codec="dark")
    with pytest.raises(ValueError, match="odd"):
        get_config("td-hm_res50").replace(blur_kernel_size=4)


def test_codec_shapes_and_errors():
    with pytest.raises(ValueError, match="single instance"):
        DarkHeatmap((192, 256), (48, 64)).encode(np.zeros((2, 17, 2)))
    with pytest.raises(ValueError, match="codec expects"):
        UDPHeatmap((192, 256), (48, 64)).decode(np.zeros((17, 32, 24), np.float32))
    with pytest.raises(ValueError, match="unknown heatmap codec"):
        decode_heatmaps_with("megvii2", np.zeros((1, 17, 64, 48), np.float32), (192, 256))
    with pytest.raises(ValueError, match="odd"):
        gaussian_blur(np.zeros((1, 8, 8), np.float32), 4)
    kp, sc = decode_heatmaps_with("udp", np.ones((2, 3, 64, 48), np.float32), (192, 256))
    assert kp.shape == (2, 3, 2) and kp.dtype == np.float32 and sc.shape == (2, 3)


def test_udp_decode_inverts_udp_encode_and_dark_decode_inverts_dark_encode():
    """A clean target decodes near its keypoint, with UDP's and DARK's own scales (within a quarter heatmap pixel
    for DARK; UDP's blurred log-Hessian step is coarser: within 0.2 heatmap pixel, 0.8 crop pixel)."""
    kp = np.array([[[70.3, 101.7], [120.9, 40.2]]], np.float32)
    for name, tol in (("dark", 0.35), ("udp", 0.8)):
        codec = heatmap_codec(name, (192, 256), (48, 64), 2.0, 11)
        got, scores = codec.decode(codec.encode(kp)["heatmaps"])
        assert np.abs(got - kp).max() < tol, (name, got, kp)
        assert scores.min() > 0.8


# ---------------------------------------------------------------- served: the card -> the service's estimator


class _TorchRuntime(Runtime):
    """The model's graph (preprocessing + network, float32 torch) behind the runtime interface: the service's
    estimator on it is the service's crop, decode, flip test and map back with torch's numbers."""

    active_providers = ["torch"]

    def __init__(self, model, card: ModelCard):
        w, h = card.input_size
        self.model_path = Path("torch.onnx")
        self.model = model.eval()
        self.input_names, self.input_shapes, self.input_dtypes = ["crops"], [[None, h, w, 3]], [np.dtype(np.uint8)]
        hm_w, hm_h = model.config.heatmap_size
        self.output_names, self.output_shapes = [card.output.name], [[None, model.config.num_keypoints, hm_h, hm_w]]

    def run(self, feeds):
        with torch.no_grad():
            x = self.model.preprocess(torch.from_numpy(np.asarray(feeds["crops"])))
            return [self.model(x).numpy()]


@pytest.mark.parametrize("name", ["dark", "udp"])
def test_service_estimator_equals_mmpose_test_step(name):
    """The service's estimator (``PoseEstimator`` on the card: its crop, UDP's for ``udp``; its decode and flip test;
    the map back to the image) on the synthetic image's boxes == MMPose's ``test_step``, the network run by torch."""
    from inference.pose_estimator import PoseEstimator

    cfg, sd = _small(name)
    model = build_pose_model(cfg)
    model.load_state_dict(sd)
    card = card_for_config(cfg)
    pe = PoseEstimator(card, _TorchRuntime(model, card), flip_test=True)
    p, g = npz("pipeline_udp.npz"), npz(f"small_res50_{name}.npz")
    crops, centers, scales = pe.crops_for(p["image_rgb"], p["bboxes_xyxy"])
    if name == "udp":  # the service cut MMPose's UDP crops
        assert np.abs(crops.astype(int) - p["crops_rgb_192x256"].astype(int)).max() <= 1
    got = pe.to_image(pe.predict_crops(crops), centers, scales)
    s = scales[:, None]
    want = g["keypoints_image_flip"]
    report(f"service {name} image keypoints / box", dev_px(got[..., :2] / s, want / s, 1), PARITY_FP32)
    report(f"service {name} scores", dev_px(got[..., 2], g["scores_image_flip"], 1.0), PARITY_FP32)


def test_udp_model_exports_and_serves_through_onnxruntime(tmp_path, cpu_settings):
    """``pose-export``'s path for a UDP model: the card says ``udp`` (crop and decode), and the service's estimator on
    onnxruntime gives torch's heatmaps on the service's UDP crops (raw outputs: DARK / UDP's refinement amplifies
    float32 noise of untrained maps, see ``export.pose.verification_card``)."""
    pytest.importorskip("onnxruntime")
    from export.pose import export_pose_model
    from inference.pose_estimator import PoseEstimator
    from inference.runtime import create_runtime

    cfg, sd = _small("udp")
    model = build_pose_model(cfg)
    model.load_state_dict(sd)
    p = npz("pipeline_udp.npz")
    centers, scales = geometry.bbox_to_center_scale(p["bboxes_xyxy"], cfg.input_size)
    crops = geometry.crop_batch(p["image_rgb"], centers, scales, cfg.input_size, use_udp=True)
    r = export_pose_model(model.eval(), tmp_path, crops, "synthetic UDP crops", name="small_udp")
    card = ModelCard.load(r.card_path)
    assert card.use_udp and card.output.codec == "udp" and card.output.flip_shift is False
    rt = create_runtime(r.onnx_path, cpu_settings)
    served, _, _ = PoseEstimator(card, rt, flip_test=True).crops_for(p["image_rgb"], p["bboxes_xyxy"])
    assert np.array_equal(served, crops)
    ort = rt.run({"crops": served})[0]
    ref = _TorchRuntime(model, card).run({"crops": served})[0]
    report("onnxruntime vs torch UDP heatmaps (relative)", dev_px(ort, ref, np.abs(ref).max()), PARITY_FP32)


# ---------------------------------------------------------------- training targets


@pytest.mark.parametrize("name", ["dark", "udp"])
def test_training_items_use_the_codecs_crop_and_targets(name, coco_tiny):
    """``pose-train``'s data (``training.data.CocoTopDown``) with a DARK / UDP config: the crop is the codec's
    (UDP: ``TopdownAffine(use_udp=True)``), the targets its encode of the keypoints in that crop (no augmentation:
    the keypoints are the annotation's mapped by the crop's matrix), and validation crops are the same crops."""
    from training.data import CocoTopDown, make_codec
    from training.transforms import AugmentConfig

    cfg, _ = _small(name)
    assert type(make_codec(cfg)) is (DarkHeatmap if name == "dark" else UDPHeatmap)
    ann = coco_tiny / "test_coco.json"
    train = CocoTopDown(ann, coco_tiny, cfg, train=True, augment=AugmentConfig(enabled=False))
    val = CocoTopDown(ann, coco_tiny, cfg, train=False, augment=None)
    inst = train.instances[0]
    item, val_item = train[0], val[0]
    center, scale = geometry.bbox_to_center_scale(inst.bbox[None], cfg.input_size)
    image = np.asarray(val_item["inputs"])
    from training.data import read_image_rgb

    rgb = read_image_rgb(inst.file)
    want = geometry.crop_image(rgb, center[0], scale[0], cfg.input_size, use_udp=cfg.use_udp)
    assert np.array_equal(image, want) and np.array_equal(item["inputs"], want)
    m = geometry.crop_warp_matrix(center[0], scale[0], 0.0, cfg.input_size, cfg.use_udp)
    kp = geometry.transform_points(inst.keypoints, m).astype(np.float32)
    enc = make_codec(cfg).encode(kp[None], inst.visible[None])
    assert np.array_equal(item["heatmaps"], enc["heatmaps"]) and item["heatmaps"].shape == (17, 64, 48)
    assert np.array_equal(item["keypoint_weights"], enc["keypoint_weights"][0])
