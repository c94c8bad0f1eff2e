"""Pose export: zoo configs (random weights, small channel counts, real structure) -> ONNX + card, verified against
torch through onnxruntime by the tolerance policy, linted for TensorRT; the card drives the service.

Exported here: the seed zoo and one entry per new graph kind (DeepPose COCO, RLE + MPII-16, heatmap + MPII-16, and
the deepest / largest RLE graph, ResNet-152 at 384x288, and HRNet-W32 at small width). The other ResNet-101/152 entries repeat the same operators
(``bench/export_time.py`` exports and lints every entry)."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from export.lint import lint_onnx  # noqa: E402
from export.pose import (  # noqa: E402
    PoseExportError,
    ServingPoseGraph,
    crops_from_images,
    export_pose_model,
    synthetic_crops,
    verification_card,
    verify,
)
from inference.runtime import create_runtime  # noqa: E402
from models.card import ModelCard, ModelCardError  # noqa: E402
from models.heads import head_kind  # noqa: E402
from models.heads.heatmap import KIND as HEATMAP  # noqa: E402
from models.heads.integral import KIND as INTEGRAL  # noqa: E402
from models.heads.rle import KIND as RLE  # noqa: E402
from models.pose_model import build_pose_model, scale_head_logits  # noqa: E402
from models.tolerance import EXPORT_TOLERANCE_PX, assert_close  # noqa: E402
from models.zoo import RESNET_ZOO, get_config  # noqa: E402
from models.zoo.families import hrnet, resnet_variants  # noqa: E402
from tests.small_models import small_backbone  # noqa: E402

pytestmark = pytest.mark.slow  # ONNX exports: seconds each

#: The entries exported here: the ResNet zoo, HRNet and the ResNet variants (the other families export in their own
#: test files).
ZOO = {**RESNET_ZOO, **{c.name: c for c in (*hrnet.ENTRIES, *resnet_variants.ENTRIES)}}
#: Entries exported at their backbone's shallowest depth (same blocks): a random 8-channel SE-ResNet-152 at 384x288
#: reaches activations of ~6e4, where float32 rounding differs between onnxruntime and torch by up to 0.9 of a
#: heatmap value and peaks move (measured by the helper that ported it); at depth 50 the graph is well conditioned.
SHALLOW = {"td-hm_seresnet152_coco-384x288"}
#: HRNet entries exported with one module in stages 3 and 4 (same modules, repeated fewer times): at small width W32
#: and W48 are one graph, and DARK / UDP differ from it only in the card, so the breadth entries check the card, the
#: codec and the input size; ``td-hm_hrnet-w32`` (representative) keeps MMPose's 4 and 3 modules. A CI-time cut:
#: about 40 s of export and torch reference per HRNet entry at full module count.
HRNET_ONE_MODULE = {c.name for c in hrnet.ENTRIES} - {"td-hm_hrnet-w32"}


# Small widths keep the CPU export fast; depth, head kind, beta, debias and input size stay the zoo's.
def small_config(name: str):
    """The zoo entry at small width (``tests.small_models.small_backbone``; :data:`SHALLOW` entries at depth 50,
    :data:`HRNET_ONE_MODULE` with one module per HRNet stage) with 32-channel deconvolutions (as many as the entry
    has: none for HRNet)."""
    cfg = get_config(name)
    small = small_backbone(
        cfg, resnet_depth=50 if name in SHALLOW else None, hrnet_modules=1 if name in HRNET_ONE_MODULE else None
    )
    return small.replace(deconv_out_channels=(32,) * len(cfg.deconv_out_channels))


@pytest.fixture(scope="module")
def tiny_crops(coco_tiny):
    """name -> 4 real crops of coco-tiny images at the config's input size."""
    images = sorted(coco_tiny.glob("*.jpg"))
    return lambda size, n=4: crops_from_images(images, size, n)


def small_model(name: str, crops: np.ndarray, seed: int = 0, logit_std: float | None = None):
    """A small random model whose head logits have a real spread on real crops (``scale_head_logits``), so
    keypoints depend on the image and the checks below can fail."""
    torch.manual_seed(seed)
    return scale_head_logits(build_pose_model(small_config(name)), crops, logit_std)


SEED = ("ipr_res50", "ipr_res50_debias", "ipr_res50_dsnt", "td-hm_res50")
#: One entry of every head kind x keypoint schema and every input size, the deepest included: the always-run set.
REPRESENTATIVE = (
    *SEED,
    "td-reg_res50",
    "td-reg_res50_rle_mpii",
    "td-hm_res50_mpii",
    "td-reg_res152_rle_coco-384x288",
    "td-hm_hrnet-w32",  # HRNet: multi-branch graph, nearest upsampling (Resize), no deconvolutions
)
#: Every zoo entry (small widths, real depth, head, input size and keypoint schema): each exports and serves. The
#: entries beyond :data:`REPRESENTATIVE` are marked ``zoo_breadth`` (and slow): about 10 s of export each.
EXPORTED = tuple(
    n if n in REPRESENTATIVE else pytest.param(n, marks=[pytest.mark.slow, pytest.mark.zoo_breadth], id=n)
    for n in sorted(ZOO)
)


def test_the_representative_set_covers_every_head_kind_schema_and_size():
    kinds = {(get_config(n).head_kind, get_config(n).keypoint_schema) for n in REPRESENTATIVE}
    assert kinds == {(c.head_kind, c.keypoint_schema) for c in ZOO.values()} - {("regression", "mpii16")} | {
        ("regression", "coco17")
    }
    assert {get_config(n).input_size for n in REPRESENTATIVE} == {c.input_size for c in ZOO.values()}


def _parametrized(test) -> dict[str, set[str]]:
    """The zoo names a test is parametrised over, each with the names of its marks."""
    (mark,) = [m for m in test.pytestmark if m.name == "parametrize"]
    return {p if isinstance(p, str) else p.values[0]: set() if isinstance(p, str) else {m.name for m in p.marks}
            for p in mark.args[1]}  # fmt: skip


def test_every_zoo_entry_is_exported_and_served_once_and_only_the_representative_set_always_runs():
    for test in (
        test_zoo_config_round_trips_through_onnxruntime,
        test_every_entry_serves_through_the_pipeline_with_flip_test,
    ):
        names = _parametrized(test)
        assert sorted(names) == sorted(ZOO), test.__name__
        assert {n for n, marks in names.items() if not marks} == set(REPRESENTATIVE), test.__name__
        assert all(marks == {"slow", "zoo_breadth"} for n, marks in names.items() if n not in REPRESENTATIVE)


class _Exports(dict):
    """name -> (model, PoseExport), each exported on first use (a ``-m`` / ``-k`` selection exports only its own)."""

    def __init__(self, out, tiny_crops, threads):
        super().__init__()
        self.out, self.tiny_crops, self.threads = out, tiny_crops, threads

    def __missing__(self, name):
        crops = self.tiny_crops(get_config(name).input_size, 2)
        model = small_model(name, crops)  # a trained model's spread for its head kind
        self[name] = (model, export_pose_model(model, self.out, crops, "2 coco-tiny crops", threads=self.threads))
        return self[name]


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_crops, cpu_settings):
    """name -> (model, PoseExport) for the configs of :data:`EXPORTED`, each exported once per test module."""
    return _Exports(tmp_path_factory.mktemp("pose-export"), tiny_crops, cpu_settings.intra_op_threads)


@pytest.mark.parametrize("name", EXPORTED)
def test_zoo_config_round_trips_through_onnxruntime(exported, tiny_crops, cpu_settings, name):
    model, r = exported[name]
    assert r.max_abs_diff_px <= EXPORT_TOLERANCE_PX  # small models at logit std 2: far inside the bound
    card = ModelCard.load(r.card_path)
    assert card.model_path() == r.onnx_path.resolve()
    cfg = get_config(name)
    w, h = cfg.input_size
    assert (card.input.name, card.input.layout, card.input.dtype, card.input.color) == ("crops", "NHWC", "uint8", "RGB")
    assert (card.input.width, card.input.height) == (w, h)
    assert card.input.mean is None and card.input.std is None  # normalisation is inside the graph
    if head_kind(cfg.head_kind) is not HEATMAP:
        assert (card.output.name, card.output.kind, card.output.coord_units) == ("coords", "keypoints", "normalized")
    else:
        assert (card.output.name, card.output.kind) == ("heatmaps", "heatmap")
    assert card.output.codec == cfg.codec and card.use_udp == cfg.use_udp  # msra / dark / udp: decode and crop
    assert card.flip_test_in_graph is False and card.flip_index is not None
    assert card.keypoints["name"] == cfg.keypoint_schema and len(card.keypoint_names) == cfg.num_keypoints
    assert card.extra["verification"]["max_abs_diff"] == r.max_abs_diff_px
    assert card.extra["config"]["name"] == name
    assert card.extra["evaluation"] == {"dataset": cfg.dataset, "score_mode": cfg.score_mode}

    proto = onnx.load(str(r.onnx_path))
    opset = {o.domain: o.version for o in proto.opset_import}[""]
    assert opset >= 17
    batch_dim = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param and not batch_dim.HasField("dim_value")
    # the uint8 input feeds a Cast directly (TensorRT holds no uint8 intermediate tensors)
    readers = [n.op_type for n in proto.graph.node if "crops" in n.input]
    assert readers == ["Cast"], readers
    # and the whole graph is what TensorRT 10's ONNX parser takes (export/lint.py: ops, types, batch axis, opset)
    report = lint_onnx(r.onnx_path)
    assert report.ok and not report.warnings, report.describe()
    assert report.tensor_types["UINT8"] == 1 and set(report.tensor_types) <= {"UINT8", "FP32", "INT64", "BOOL"}

    # dynamic batch: 3 crops in one call == one by one == torch, all decoded by the card (DARK / UDP cards: through
    # the MSRA decode, as export.pose.verify measures the graph; their decode is MMPose's in test_codecs_dark_udp.py)
    card = verification_card(card)
    crops = tiny_crops((w, h), 3)
    rt = create_runtime(r.onnx_path, cpu_settings)
    raw = rt.run({"crops": crops})[0]
    assert raw.shape[:2] == (3, cfg.num_keypoints) and raw.shape[2:] == {"regression": (2,), "rle": (3,)}.get(
        cfg.head_kind, raw.shape[2:]
    )
    batched = card.decode(raw)
    assert batched.shape == (3, cfg.num_keypoints, 3) and batched.dtype == np.float32
    single = np.concatenate([card.decode(rt.run({"crops": crops[i : i + 1]})[0]) for i in range(3)])
    assert_close(batched, single, EXPORT_TOLERANCE_PX, "batch of 3 vs one by one")
    assert_close(batched, _torch_keypoints(model, card, crops, False), EXPORT_TOLERANCE_PX, "ort vs torch")
    # the keypoints depend on the crop (the check above could fail)
    assert np.abs(batched[0, :, :2] - batched[1, :, :2]).max() > 1.0
    if head_kind(cfg.head_kind) is RLE:  # the score channel: 1 - mean sigma, in (0, 1), and depends on the joint
        assert 0 < batched[..., 2].min() and batched[..., 2].max() < 1 and batched[..., 2].std() > 1e-3

    # served: the service's estimator with the flip test (card decode + flip-back) == torch's flip test
    from inference.pose_estimator import PoseEstimator

    pe = PoseEstimator(card, rt, flip_test=True)
    assert_close(
        pe.predict_crops(crops), _torch_keypoints(model, card, crops, True), EXPORT_TOLERANCE_PX, "served flip test"
    )


def _torch_keypoints(model, card: ModelCard, crops: np.ndarray, flip_test: bool) -> np.ndarray:
    """``model.predict_keypoints`` decoded by ``card`` instead of the model's own card."""
    x = model.preprocess(torch.from_numpy(crops))
    with torch.no_grad():
        if not flip_test:
            return card.decode(model(x).numpy())
        out = model(torch.cat([x, x.flip(-1)])).numpy()
    return card.decode(out[: len(x)], out[len(x) :])


def test_verification_rejects_a_graph_that_does_not_match_the_model(exported, tiny_crops, cpu_settings):
    """A different model's weights are pixels off: rejected, and the verdict names the figures."""
    _, r = exported["ipr_res50"]
    crops = tiny_crops((256, 256), 2)
    other = ServingPoseGraph(small_model("ipr_res50", crops, seed=1)).eval()
    verdict = verify(other, r.onnx_path, crops, ModelCard.load(r.card_path), cpu_settings.intra_op_threads)
    assert not verdict.passed and verdict.max_abs_diff > 1.0
    assert verdict.exported_vs_fp64 > 1.0 and verdict.torch_fp32_vs_fp64 < EXPORT_TOLERANCE_PX
    assert "rejected" in verdict.describe()


def test_a_half_pixel_export_error_is_rejected_and_its_files_removed(tmp_path, tiny_crops, monkeypatch):
    """A 0.5 px error in the exported graph (simulated) is far outside fp32 noise: rejected, files removed."""
    import export.pose as ep

    crops = tiny_crops((256, 256), 2)
    real_run_onnx = ep.run_onnx
    monkeypatch.setattr(ep, "run_onnx", lambda *a, **k: real_run_onnx(*a, **k) + np.float32(0.5 / 256))
    with pytest.raises(PoseExportError, match=r"rejected.*vs float64 torch"):
        export_pose_model(small_model("ipr_res50", crops), tmp_path, crops, "test crops")
    assert not (tmp_path / "ipr_res50.onnx").exists() and not (tmp_path / "ipr_res50.json").exists()


def test_debias_with_huge_logits_exports_and_stays_finite_in_fp32_and_fp16(tmp_path, tiny_crops):
    """exp(logits) overflows fp32 above 88 and fp16 above 11; the log-space C keeps the graph finite. Beta 10 on
    such logits makes near-one-hot heatmaps that amplify fp32 rounding: the export must still pass (within
    0.05 px, or within the fp32 envelope of a float64 run) and the card records the verdict's figures."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    crops = tiny_crops((256, 256), 2)
    model = small_model("ipr_res50_debias", crops, logit_std=50.0)
    with torch.no_grad():
        logits = model.head.logits(model.backbone(model.preprocess(torch.from_numpy(crops))))
    assert logits.abs().max() > 100  # large enough to overflow a naive exp in fp32
    r = export_pose_model(model, tmp_path, crops, "test crops", name="debias_big")
    card = ModelCard.load(r.card_path)
    v = card.extra["verification"]
    assert v["max_abs_diff"] == r.max_abs_diff_px and v["crops"] == "test crops"
    if v["rule"] == "within fp32 noise":
        assert v["exported_vs_fp64"] <= 2 * v["torch_fp32_vs_fp64"] + EXPORT_TOLERANCE_PX
    fp32 = card.decode(ort.InferenceSession(str(r.onnx_path)).run(None, {"crops": crops})[0])
    m16 = convert_float_to_float16(onnx.load(str(r.onnx_path)), keep_io_types=True)
    fp16_path = tmp_path / "debias_big_fp16.onnx"
    onnx.save(m16, str(fp16_path))
    fp16 = card.decode(ort.InferenceSession(str(fp16_path)).run(None, {"crops": crops})[0])
    assert np.isfinite(fp32).all() and np.isfinite(fp16).all()
    # near-one-hot heatmaps may pick another peak after fp16 rounding, but nothing blows up
    assert (np.abs(fp16[..., :2] - 128.0) <= 256.0).all() and (np.abs(fp32[..., :2] - 128.0) <= 256.0).all()


@pytest.mark.parametrize("name", EXPORTED)
def test_every_entry_serves_through_the_pipeline_with_flip_test(exported, coco_tiny, cpu_settings, name):
    """Export -> card -> the service's pipeline (flip test on) on a coco-tiny image == torch on the same crops."""
    from inference.imageio import decode_image
    from inference.pipeline import PosePipeline
    from models.geometry import bbox_to_center_scale, bbox_xywh2xyxy, crop_batch, keypoints_crop_to_image

    model, r = exported[name]
    cfg = get_config(name)
    size = cfg.input_size
    data = json.loads((coco_tiny / "test_coco.json").read_text())
    image_info = data["images"][0]
    anns = [a for a in data["annotations"] if a["image_id"] == image_info["id"]]
    assert anns
    rgb = decode_image((coco_tiny / image_info["file_name"]).read_bytes())
    boxes = bbox_xywh2xyxy(np.asarray([a["bbox"] for a in anns], dtype=np.float32))

    settings = cpu_settings.model_copy(update={"pose_model": r.card_path, "flip_test": True})
    pipeline = PosePipeline.from_settings(settings, batching=False)
    got = pipeline.predict(rgb, boxes)

    centers, scales = bbox_to_center_scale(boxes, size)
    crops = crop_batch(rgb, centers, scales, size, use_udp=cfg.use_udp)
    torch_kpts = model.predict_keypoints(crops, flip_test=True)
    ref = keypoints_crop_to_image(torch_kpts[..., :2], centers, scales, size)
    assert got.keypoints.shape == (len(anns), cfg.num_keypoints, 3)
    np.testing.assert_allclose(got.centers, centers)
    # the policy's bound in crop pixels, in image pixels (the crop keeps the box's aspect: one ratio per box)
    assert_close(got.keypoints[..., :2], ref, EXPORT_TOLERANCE_PX * float((scales[:, 0] / size[0]).max()), "xy")
    assert_close(got.keypoints[..., 2], torch_kpts[..., 2], EXPORT_TOLERANCE_PX, "scores")
    if head_kind(cfg.head_kind) is INTEGRAL:
        np.testing.assert_allclose(got.keypoints[..., 2], 1.0)
    no_flip = keypoints_crop_to_image(model.predict_keypoints(crops, flip_test=False)[..., :2], centers, scales, size)
    assert np.abs(got.keypoints[..., :2] - no_flip).max() > 0.5  # the flip test really ran


def test_synthetic_crops_and_images_give_uint8_crops(coco_tiny, tmp_path):
    crops = synthetic_crops((192, 256), 3)
    assert crops.shape == (3, 256, 192, 3) and crops.dtype == np.uint8 and crops.std() > 10
    real = crops_from_images([coco_tiny], (192, 256), 2)
    assert real.shape == (2, 256, 192, 3) and real.dtype == np.uint8
    with pytest.raises(PoseExportError, match="no images"):
        crops_from_images([tmp_path], (192, 256))


@pytest.mark.slow
def test_the_card_is_embedded_in_the_onnx_and_serves_without_its_json(exported, tmp_path, cpu_settings):
    """An exported ONNX copied alone (no JSON beside it) still opens: its card is in the metadata, equal to the
    JSON's but for the model file's name; a plain ONNX without one names both places it looked."""
    import shutil

    import onnx

    from inference.pose_estimator import PoseEstimator as Estimator
    from inference.pose_estimator import load_card
    from models.card import CARD_METADATA_KEY

    _, r = exported["ipr_res50"]
    alone = tmp_path / "renamed.onnx"
    shutil.copy(r.onnx_path, alone)
    props = {p.key: p.value for p in onnx.load(str(alone), load_external_data=False).metadata_props}
    assert json.loads(props[CARD_METADATA_KEY]) == ModelCard.load(r.card_path).to_dict()
    card = load_card(alone)
    assert card.model_path() == alone.resolve() and card.model_file == "renamed.onnx"
    assert {**card.to_dict(), "model_file": ""} == {**ModelCard.load(r.card_path).to_dict(), "model_file": ""}
    est = Estimator.from_settings(alone, cpu_settings)
    crops = np.zeros((1, *card.input_size[::-1], 3), np.uint8)
    np.testing.assert_array_equal(
        est.predict_crops(crops), Estimator.from_settings(r.card_path, cpu_settings).predict_crops(crops)
    )
    plain = onnx.load(str(alone))
    del plain.metadata_props[:]
    onnx.save(plain, str(alone))
    with pytest.raises(ModelCardError, match="renamed.json, and renamed.onnx has no card in its metadata"):
        load_card(alone)
