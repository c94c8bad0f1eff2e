"""HRNet (``models.backbones.hrnet``, zoo family ``models.zoo.families.hrnet``) against MMPose 1.3.2's own code.

Goldens in tests/data/mmpose_hrnet/ come from tests/mmpose_golden/make_hrnet_golden.py (MMPose in a separate venv;
parameters are filled on both sides by tests/mmpose_golden/recipe.py). Per HRNet zoo entry (the plain rows, and the
HRNet+DARK / HRNet+UDP rows of ``hrnet_dark_coco.yml`` / ``hrnet_udp_coco.yml``):

* the published figures, checkpoint URL, SHA-256 prefix, MMPose config and collection equal MMPose's metafile row;
* state-dict keys (in order) and shapes equal those of the model MMPose builds from the config (full width, built on
  torch's meta device here); the DARK / UDP configs' networks are the same (their rows come with those codecs);
* the entry at small width (branches 8 / 16 / 32 / 64, stage 1 8, stem 64; same modules, blocks, head, input size and
  test config) gives MMPose's single pass, flip test and image keypoints / scores through the service's decode
  (``ModelCard.decode``: MSRA, DARK or UDP, with or without the flip shift) and geometry (UDP: MMPose's
  ``TopdownAffine(use_udp=True)`` crops, which the service's crop reproduces): float64 within ``PARITY_FP64`` (the
  proof), float32 within ``PARITY_FP32``; and the service's estimator on the DARK / UDP entries gives MMPose's
  ``test_step`` keypoints.

Each comparison prints ``[hrnet-parity] <what>: max deviation <value>`` (``pytest -s``).
"""

from __future__ import annotations

import functools
import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from models import geometry
from models.backbones import backbone_spec
from models.backbones.hrnet import HRNET_W32, HRNET_W48, HRNet, from_config, hrnet_extra
from models.pose_model import TopdownPoseModel, build_pose_model
from models.tolerance import PARITY_FP32, PARITY_FP64
from models.zoo import ZOO, get_config
from models.zoo.families import hrnet as family
from tests.golden import fill, load_npz, recipe, reldev, reporter

report = reporter("hrnet-parity")

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "mmpose_hrnet"
NAMES = sorted(c.name for c in family.ENTRIES)
#: the small network of make_hrnet_golden.py (``SMALL_EXTRA``)
SMALL_EXTRA = hrnet_extra(8, stage1_channels=8)
_YML = {"AP": "AP", "AP@0.5": "AP50", "AP@0.75": "AP75", "AR": "AR", "AR@0.5": "AR50"}
#: codec -> (metafile, collection, MMPose codec type)
_CODECS = {
    "msra": ("hrnet_coco.yml", "HRNet", "MSRAHeatmap"),
    "dark": ("hrnet_dark_coco.yml", "DarkPose", "MSRAHeatmap"),
    "udp": ("hrnet_udp_coco.yml", "UDP", "UDPHeatmap"),
}


def small(name: str):
    return get_config(name).replace(backbone_args={"extra": SMALL_EXTRA})


@functools.cache
def _npz(name: str) -> dict[str, np.ndarray]:
    return load_npz(GOLDEN / name)


@functools.cache
def _json(name: str):
    if name.endswith(".gz"):
        with gzip.open(GOLDEN / name, "rt", encoding="utf-8") as f:
            return json.load(f)
    return json.loads((GOLDEN / name).read_text())


def test_golden_versions_and_family_in_the_zoo():
    v = _json("versions.json")
    assert v["mmpose"] == "1.3.2" and v["recipe_version"] == recipe.RECIPE_VERSION
    assert NAMES == sorted(
        f"td-hm_hrnet-w{w}{c}{s}" for w in (32, 48) for c in ("", "_dark", "_udp") for s in ("", "_coco-384x288")
    )
    assert all(ZOO[n] is c for n, c in zip(NAMES, sorted(family.ENTRIES, key=lambda c: c.name), strict=True))


@pytest.mark.parametrize("name", NAMES)
def test_entry_equals_mmpose_metafile(name):
    cfg = get_config(name)
    metafile, collection, codec_type = _CODECS[cfg.codec]
    row = _json("metafiles.json")[cfg.mmpose_config]
    assert row["metafile"].endswith(f"/{metafile}") and row["dataset"].lower() == cfg.dataset == "coco"
    assert cfg.mmpose_config.endswith(f"/{row['name']}.py")
    archs = ["HRNet"] if cfg.codec == "msra" else ["HRNet", collection]
    assert (cfg.collection, row["collection"], row["architecture"]) == (collection, collection, archs)
    assert cfg.checkpoint_url == row["weights"]
    assert cfg.sha256_prefix == cfg.checkpoint_filename.rsplit("-", 1)[1][:8]
    assert cfg.published == {_YML[k]: v for k, v in row["metrics"].items()}
    train = _json("train_configs.json")[cfg.mmpose_config]
    codec = train["codec"]
    assert codec["type"] == codec_type and tuple(codec["input_size"]) == cfg.input_size
    assert tuple(codec["heatmap_size"]) == cfg.heatmap_size and codec["sigma"] == cfg.sigma
    assert codec.get("unbiased", False) == (cfg.codec == "dark")
    assert codec.get("blur_kernel_size", 11) == cfg.blur_kernel_size == 11  # MMPose's default at both sizes
    affine = next(t for t in train["train_pipeline"] if t["type"] == "TopdownAffine")
    assert affine.get("use_udp", False) == cfg.use_udp == (cfg.codec == "udp")
    assert train["test_cfg"] == {"flip_test": cfg.flip_test, "flip_mode": "heatmap", "shift_heatmap": cfg.shift_heatmap}
    assert cfg.shift_heatmap == (cfg.codec != "udp")


def test_every_recorded_metafile_row_is_a_zoo_entry():
    """All rows of hrnet_coco.yml, hrnet_dark_coco.yml and hrnet_udp_coco.yml (4 each) are entries of the family."""
    rows = _json("metafiles.json")
    assert sorted(rows) == sorted(get_config(n).mmpose_config for n in NAMES) and len(rows) == 12
    for metafile, collection, _ in _CODECS.values():
        assert sum(r["metafile"].endswith(f"/{metafile}") and r["collection"] == collection for r in rows.values()) == 4


@pytest.mark.parametrize("config", sorted(json.loads(gzip.open(GOLDEN / "state_dict_shapes.json.gz").read())))
def test_state_dict_keys_and_shapes_equal_mmpose(config):
    """Every recorded config (plain, DARK and UDP: the same network) at full width, built from its zoo entry."""
    (cfg,) = [c for c in family.ENTRIES if c.mmpose_config == config]
    with torch.device("meta"):
        model = TopdownPoseModel(cfg)
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    expected = _json("state_dict_shapes.json.gz")[config]
    assert list(ours) == list(expected), (
        f"keys differ: missing {sorted(set(expected) - set(ours))[:5]}, unexpected {sorted(set(ours) - set(expected))[:5]}"
    )
    assert ours == expected


def test_the_zoo_extra_is_the_backbone_module_s():
    assert get_config("td-hm_hrnet-w32").backbone_args == {"extra": HRNET_W32}
    assert get_config("td-hm_hrnet-w48").backbone_args == {"extra": HRNET_W48}


@pytest.mark.parametrize("name", NAMES)
def test_heatmap_head_without_deconvolutions_reads_the_stride_4_branch(name):
    cfg = small(name)
    w, h = cfg.input_size
    assert backbone_spec("hrnet").stride == 4 and cfg.heatmap_size == (w // 4, h // 4)
    model = build_pose_model(cfg)
    assert model.backbone.out_channels == 8 and model.head.in_channels == 8
    assert list(model.state_dict())[-2:] == ["head.final_layer.weight", "head.final_layer.bias"]
    with torch.no_grad():
        out = model(torch.zeros(1, 3, h, w))
    assert out.shape == (1, 17, h // 4, w // 4)


def test_from_config_errors():
    cfg = get_config("td-hm_hrnet-w32")
    with pytest.raises(ValueError, match="backbone_args"):
        from_config(cfg.replace(backbone_args={}))
    with pytest.raises(ValueError, match="backbone_args"):
        from_config(cfg.replace(backbone_args={"extra": SMALL_EXTRA, "width": 8}))
    with pytest.raises(ValueError, match="stage4"):
        HRNet({k: v for k, v in SMALL_EXTRA.items() if k != "stage4"})
    bad = json.loads(json.dumps(SMALL_EXTRA))
    bad["stage3"]["num_channels"] = [8, 16]
    with pytest.raises(ValueError, match="num_branches"):
        HRNet(bad)
    bad = json.loads(json.dumps(SMALL_EXTRA))
    bad["stage2"]["block"] = "BOTTLE"
    with pytest.raises(ValueError, match="block"):
        HRNet(bad)


@functools.cache
def _filled_state(size: tuple[int, int]) -> dict:
    return fill(build_pose_model(small("td-hm_hrnet-w32").replace(input_size=size))).state_dict()


def _crops_tag(cfg) -> str:
    """The pipeline.npz suffix of the entry's crops: ``<w>x<h>``, UDP's ``<w>x<h>_udp``."""
    w, h = cfg.input_size
    return f"{w}x{h}{'_udp' if cfg.use_udp else ''}"


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", NAMES)
def test_small_width_model_matches_mmpose(name, dtype):
    """MMPose's single pass, flip test (the entry's decode: MSRA, DARK or UDP; ``shift_heatmap`` or not) and image
    keypoints at small width, on MMPose's crops (UDP: ``TopdownAffine(use_udp=True)``'s)."""
    cfg = small(name)
    w, h = cfg.input_size
    g, p = _npz(f"small_{cfg.codec}_{w}x{h}.npz"), _npz("pipeline.npz")
    # DARK's network and crops are MSRA's (the golden script asserts it): its single pass is MSRA's golden
    raw_golden = _npz(f"small_msra_{w}x{h}.npz") if cfg.codec == "dark" else g
    sfx, tol, tdtype = ("_f64", PARITY_FP64, torch.float64) if dtype == "float64" else ("", PARITY_FP32, torch.float32)
    model = build_pose_model(cfg)
    model.load_state_dict(_filled_state(cfg.input_size))
    assert tuple(g["input_size"]) == (w, h)
    assert (model.card.output.codec, model.card.use_udp) == (cfg.codec, cfg.use_udp)
    what = f"{name} (small) {dtype}"
    x = model.preprocess(torch.from_numpy(p[f"crops_rgb_{_crops_tag(cfg)}"])).to(tdtype)
    model.to(tdtype)
    with torch.no_grad():
        single, mirrored = model.head(model.backbone(x)).numpy(), model.head(model.backbone(x.flip(-1))).numpy()
    report(f"{what} single pass heatmap (relative)", reldev(single[:1, :1], raw_golden["raw" + sfx]), tol)
    decoded = model.card.decode(single, mirrored)
    keypoints, scores = decoded[..., :2], decoded[..., 2]
    want = g["keypoints_crop_flip" + sfx]
    report(f"{what} flip-test keypoints (normalised)", reldev(keypoints / [w, h], want / [w, h]), tol)
    report(f"{what} flip-test scores (relative)", reldev(scores, g["scores_flip" + sfx]), tol)
    assert np.abs(want[0] - want[1]).max() > 1.0 and want.std() > 1.0  # keypoints depend on the crop
    centers, scales = geometry.bbox_to_center_scale(p["bboxes_xyxy"], (w, h))
    np.testing.assert_allclose(centers, p[f"input_center_{_crops_tag(cfg)}"], rtol=1e-6)
    np.testing.assert_allclose(scales, p[f"input_scale_{_crops_tag(cfg)}"], rtol=1e-6)
    image_kp = geometry.keypoints_crop_to_image(keypoints, centers, scales, (w, h))
    dev = reldev(image_kp / scales[:, None, :], g["keypoints_image_flip" + sfx] / scales[:, None, :])
    report(f"{what} image keypoints (normalised by box scale)", dev, tol)
    report(f"{what} image scores (relative)", reldev(scores, g["scores_image_flip" + sfx]), tol)


@pytest.mark.parametrize("name", [n for n in NAMES if get_config(n).codec != "msra"])
def test_service_estimator_on_dark_and_udp_entries_equals_mmpose_test_step(name):
    """The service's estimator (``PoseEstimator`` on the entry's card: its crop, UDP's for UDP entries, which equals
    MMPose's within one uint8 level; its decode and flip test; the map back to the image) on the golden image's boxes
    == MMPose's ``test_step``, the small network run by torch in float32."""
    from inference.pose_estimator import PoseEstimator
    from models.card import card_for_config
    from tests.models.test_codecs_dark_udp import _TorchRuntime

    cfg = small(name)
    w, h = cfg.input_size
    p, g = _npz("pipeline.npz"), _npz(f"small_{cfg.codec}_{w}x{h}.npz")
    model = build_pose_model(cfg)
    model.load_state_dict(_filled_state(cfg.input_size))
    card = card_for_config(cfg)
    pe = PoseEstimator(card, _TorchRuntime(model, card), flip_test=True)
    crops, centers, scales = pe.crops_for(p["image_rgb"], p["bboxes_xyxy"])
    assert np.abs(crops.astype(int) - p[f"crops_rgb_{_crops_tag(cfg)}"].astype(int)).max() <= 1
    got = pe.to_image(pe.predict_crops(crops), centers, scales)
    s = scales[:, None, :]
    report(f"service {name} image keypoints (normalised by box scale)", reldev(got[..., :2] / s,
           g["keypoints_image_flip"] / s), PARITY_FP32)  # fmt: skip
    report(f"service {name} image scores (relative)", reldev(got[..., 2], g["scores_image_flip"]), PARITY_FP32)


@pytest.mark.parametrize("name", NAMES)
def test_mmpose_layout_checkpoint_loads_strictly(name, tmp_path):
    """An MMPose 1.x file (``state_dict`` + ``meta``) under the entry's published file name, at small width (keys do
    not depend on the width): the file name picks the entry and every key loads strictly."""
    from models import checkpoints

    cfg = get_config(name)
    source = fill(build_pose_model(small(name)))
    path = tmp_path / cfg.checkpoint_filename
    torch.save({"state_dict": dict(source.state_dict()), "meta": {"mmpose_version": "1.0.0rc1"}}, path)
    model, meta = checkpoints.load_pose_checkpoint(path, config=small(name))
    assert meta["format"] == "mmpose" and "converted" not in meta
    assert checkpoints.config_for_mmpose_file(path) is cfg  # the file name picks the entry
    w, h = cfg.input_size
    x = torch.from_numpy(recipe.recipe_array("hrnet_load_input", (1, 3, h, w)))
    with torch.no_grad():
        assert torch.equal(model(x), source(x))
