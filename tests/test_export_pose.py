"""Pose export: every zoo config (random weights, small channel counts, real structure) -> ONNX + card,
verified against torch through onnxruntime; the card drives the service's PoseEstimator end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from export.pose import (  # noqa: E402
    PoseExportError,
    ServingPoseGraph,
    decode_heatmaps_torch,
    export_pose_model,
    verification_crops,
    verify_onnx,
)
from models.card import ModelCard  # noqa: E402
from models.codecs import decode_heatmaps  # noqa: E402
from models.pose_model import build_pose_model  # noqa: E402
from models.zoo import ZOO, get_config  # noqa: E402

# Small widths keep the CPU export fast; depth, head kind, beta, debias and input size stay the zoo's.
SMALL = {"backbone_base_channels": 8, "deconv_out_channels": (32, 32, 32)}


def small_model(name: str, seed: int = 0, logit_std: float = 2.0):
    """A small random model whose head logits have a real spread (std ``logit_std`` on real crops).

    Freshly initialised, the head's logits are ~1e-6 (MMPose's init std 0.001 on tiny backbone
    features), so every crop would decode to the crop centre and any two models would agree; scaling
    the final 1x1 conv makes the keypoints depend on the image, so the checks below can fail.
    """
    torch.manual_seed(seed)
    model = build_pose_model(get_config(name).replace(**SMALL))
    crops, _ = verification_crops(model.config.input_size, 2)
    final = (
        model.head.final_layer if model.config.head_kind == "heatmap" else model.head.simplebaseline_head.final_layer
    )
    with torch.no_grad():
        feats = model.backbone(model.preprocess(torch.from_numpy(crops)))
        logits = model.head(feats) if model.config.head_kind == "heatmap" else model.head.logits(feats)
        final.weight.mul_(logit_std / float(logits.std()))
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """name -> (model, PoseExport) for every zoo config, exported once per test module."""
    out = tmp_path_factory.mktemp("pose-export")
    results = {}
    for name in sorted(ZOO):
        model = small_model(name)
        results[name] = (model, export_pose_model(model, out, num_check_crops=2))
    return results


@pytest.mark.parametrize("name", sorted(ZOO))
def test_every_zoo_config_round_trips_through_onnxruntime(exported, name):
    model, r = exported[name]
    assert r.max_abs_diff_px <= 1e-3
    card = ModelCard.load(r.card_path)
    assert card.model_path() == r.onnx_path.resolve()
    w, h = get_config(name).input_size
    assert (card.input.name, card.input.layout, card.input.dtype, card.input.color) == ("crops", "NHWC", "uint8", "RGB")
    assert (card.input.width, card.input.height) == (w, h)
    assert card.input.mean is None and card.input.std is None  # normalisation is inside the graph
    assert (card.output.kind, card.output.coord_units, card.output.coord_order) == ("keypoints", "input_pixels", "xy")
    assert card.flip_test_in_graph is False
    assert card.extra["verification"]["max_abs_diff_px"] == r.max_abs_diff_px
    assert card.extra["config"]["name"] == name

    proto = onnx.load(str(r.onnx_path))
    opset = {o.domain: o.version for o in proto.opset_import}[""]
    assert opset >= 17
    batch_dim = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param and not batch_dim.HasField("dim_value")

    # dynamic batch: 3 crops in one call == one by one == torch
    crops, _ = verification_crops((w, h), 3)
    sess = ort.InferenceSession(str(r.onnx_path), providers=["CPUExecutionProvider"])
    batched = sess.run(None, {"crops": crops})[0]
    assert batched.shape == (3, 17, 3) and batched.dtype == np.float32
    single = np.concatenate([sess.run(None, {"crops": crops[i : i + 1]})[0] for i in range(3)])
    np.testing.assert_allclose(batched, single, atol=1e-3)
    with torch.no_grad():
        ref = ServingPoseGraph(model).eval()(torch.from_numpy(crops)).numpy()
    np.testing.assert_allclose(batched, ref, atol=1e-3)
    # and == the models package's own numpy decode (models.codecs), independent of the in-graph decode
    np.testing.assert_allclose(batched, model.predict_keypoints(crops, flip_test=False), atol=1e-3)
    assert (batched[..., :2] > -w).all() and (batched[..., 0] < 2 * w).all()


def test_verification_detects_a_graph_that_does_not_match_the_model(exported):
    """Verification compares with the torch module: a different model's weights must fail it."""
    _, r = exported["ipr_res50"]
    other = ServingPoseGraph(small_model("ipr_res50", seed=1)).eval()
    crops, _ = verification_crops((256, 256), 2)
    assert verify_onnx(other, r.onnx_path, crops) > 1e-3


def test_an_export_error_is_rejected_even_where_fp32_noise_is_allowed(tmp_path, monkeypatch):
    """A 0.5 px error in the exported graph (simulated) is far outside fp32 noise: rejected, files removed."""
    import export.pose as ep

    real_run_onnx = ep.run_onnx
    monkeypatch.setattr(ep, "run_onnx", lambda path, crops: real_run_onnx(path, crops) + np.float32(0.5))
    with pytest.raises(PoseExportError, match="tolerance .* fp64"):
        export_pose_model(small_model("ipr_res50"), tmp_path, num_check_crops=2, strict=False)
    assert not (tmp_path / "ipr_res50.onnx").exists() and not (tmp_path / "ipr_res50.json").exists()


def test_in_graph_heatmap_decode_matches_the_numpy_codec():
    rng = np.random.default_rng(0)
    hm = rng.random((2, 17, 64, 48)).astype(np.float32) - 0.05
    hm[0, 3] = -1.0  # all-negative map: MMPose marks it -1 (then scaled)
    got = decode_heatmaps_torch(torch.from_numpy(hm), (192, 256)).numpy()
    kp, scores = decode_heatmaps(hm, (192, 256))
    np.testing.assert_allclose(got[..., :2], kp, atol=1e-5)
    np.testing.assert_allclose(got[..., 2], scores, atol=1e-6)


def test_flip_test_in_graph_is_recorded_and_matches_torch(tmp_path):
    model = small_model("ipr_res50_debias")
    r = export_pose_model(model, tmp_path, name="debias_flip", flip_test=True, num_check_crops=2)
    card = json.loads(r.card_path.read_text())
    assert card["flip_test_in_graph"] is True
    crops, _ = verification_crops((256, 256), 2)
    sess = ort.InferenceSession(str(r.onnx_path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"crops": crops})[0]
    with torch.no_grad():
        x = model.preprocess(torch.from_numpy(crops))
        want = (model.forward_flip_test(x) * 256.0).numpy()
        plain = (model(x) * 256.0).numpy()
    np.testing.assert_allclose(got[..., :2], want, atol=1e-3)
    np.testing.assert_allclose(got, model.predict_keypoints(crops, flip_test=True), atol=1e-3)
    assert np.abs(got[..., :2] - plain).max() > 1e-3  # the flip really is in the graph


def test_debias_graph_stays_finite_in_fp32_and_fp16_with_huge_logits(tmp_path):
    """exp(logits) overflows fp32 above 88 and fp16 above 11; the log-space C keeps the graph finite."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = small_model("ipr_res50_debias", logit_std=50.0)
    with torch.no_grad():
        crops, _ = verification_crops((256, 256), 2)
        logits = model.head.logits(model.backbone(model.preprocess(torch.from_numpy(crops))))
    assert logits.abs().max() > 100  # large enough to overflow a naive exp in fp32
    # beta 10 on logits of this size makes the softmax a near-one-hot that amplifies fp32 rounding: the
    # export may pass by the fp32-noise rule (recorded in the card), never by being far off
    r = export_pose_model(model, tmp_path, name="debias_big", crops=crops, crops_description="test crops", strict=False)
    verification = json.loads(r.card_path.read_text())["extra"]["verification"]
    if r.max_abs_diff_px > 1e-3:
        assert verification["onnxruntime_vs_fp64_px"] <= 2 * verification["torch_fp32_vs_fp64_px"] + 1e-3
    fp32 = ort.InferenceSession(str(r.onnx_path), providers=["CPUExecutionProvider"]).run(None, {"crops": crops})[0]
    assert np.isfinite(fp32).all()
    m16 = convert_float_to_float16(onnx.load(str(r.onnx_path)), keep_io_types=True)
    fp16_path = tmp_path / "debias_big_fp16.onnx"
    onnx.save(m16, str(fp16_path))
    fp16 = ort.InferenceSession(str(fp16_path), providers=["CPUExecutionProvider"]).run(None, {"crops": crops})[0]
    assert np.isfinite(fp16).all()
    # near-one-hot heatmaps may pick another peak after fp16 rounding, but nothing blows up
    assert (np.abs(fp16[..., :2] - 128.0) <= 256.0).all() and (np.abs(fp32[..., :2] - 128.0) <= 256.0).all()


def test_card_drives_the_service_pose_estimator_on_a_real_image(exported, coco_tiny):
    """Export -> card -> service PoseEstimator.predict on a coco-tiny image == torch on the same crops."""
    import cv2

    from models.geometry import bbox_xywh2xyxy, box_to_center_scale, crop_batch, keypoints_crop_to_image
    from service.pose import PoseEstimator

    model, r = exported["ipr_res50_debias"]
    data = json.loads((coco_tiny / "test_coco.json").read_text())
    image_info = data["images"][0]
    anns = [a for a in data["annotations"] if a["image_id"] == image_info["id"]]
    assert anns
    rgb = cv2.cvtColor(cv2.imread(str(coco_tiny / image_info["file_name"])), cv2.COLOR_BGR2RGB)
    boxes = bbox_xywh2xyxy(np.asarray([a["bbox"] for a in anns], dtype=np.float32))

    estimator = PoseEstimator.from_card(r.card_path)
    got = estimator.predict(rgb, boxes)

    centers, scales = box_to_center_scale(boxes, (256, 256))
    crops = crop_batch(rgb, centers, scales, (256, 256))
    with torch.no_grad():
        ref_crop = ServingPoseGraph(model).eval()(torch.from_numpy(crops)).numpy()
    ref = keypoints_crop_to_image(ref_crop[..., :2], centers, scales, (256, 256))
    assert got.shape == (len(anns), 17, 3)
    px_per_crop_px = float(scales.max() / 256.0)
    np.testing.assert_allclose(got[..., :2], ref, atol=1e-3 * max(px_per_crop_px, 1.0) + 1e-4)
    np.testing.assert_allclose(got[..., 2], 1.0)
    # keypoints land near their person (random weights put them around the crop centre)
    inside = (got[..., 0] >= boxes[:, None, 0] - scales[:, None, 0]) & (
        got[..., 0] <= boxes[:, None, 2] + scales[:, None, 0]
    )
    assert inside.all()
