"""Pose models, zoo and checkpoints: parametrised over every zoo entry.

Full ResNet-50s are built where the real shapes matter (forward shapes, strict loading of MMPose-shaped
checkpoints); the deeper ResNets are built on torch's meta device for their shapes (no 60M-parameter allocation) and
loaded from MMPose-layout files at small width (the keys do not depend on the width); behaviour tests use the same
configs with small channel counts.
"""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from core.hashing import sha256_file
from models import checkpoints, zoo
from models.checkpoints import (
    FORMAT,
    CheckpointError,
    check_state_dict,
    load_pose_checkpoint,
    save_pose_checkpoint,
)
from models.codecs import flip_back_heatmaps, flip_back_keypoints
from models.heads import head_kind
from models.heads.heatmap import KIND as HEATMAP_KIND
from models.heads.integral import KIND as INTEGRAL_KIND
from models.heads.integral import IntegralRegressionHead, debias_coordinates, log_sum_exp_spatial
from models.heads.rle import KIND as RLE_KIND
from models.keypoints import flip_indices
from models.pose_model import TopdownPoseModel, build_pose_model
from models.zoo import METRIC_COLUMNS, RESNET_ZOO, ZOO, PoseModelConfig, get_config
from tests.small_models import small_backbone

DATA = Path(__file__).resolve().parents[1] / "data"
GOLDEN_SHAPES = DATA / "mmpose" / "state_dict_shapes.json"
INTEGRAL = sorted(n for n, c in RESNET_ZOO.items() if head_kind(c.head_kind) is INTEGRAL_KIND)
#: ResNet-50 entries whose MMPose-layout files are built and loaded at full size.
FULL_LOAD = sorted(json.loads(GOLDEN_SHAPES.read_text())) + [
    "td-reg_res50",
    "td-reg_res50_rle",
    "td-reg_res50_rle_mpii",
]


def golden_shapes(name: str) -> dict[str, list[int]]:
    """MMPose's state-dict keys and shapes of a zoo entry (tests/data/mmpose, tests/data/mmpose_zoo, or a family's
    tests/data/mmpose_*/state_dict_shapes.json.gz, keyed by entry name or MMPose config path)."""
    seed = json.loads(GOLDEN_SHAPES.read_text())
    if name in seed:
        return seed[name]
    for path in [
        DATA / "mmpose_zoo" / "state_dict_shapes.json.gz",
        *sorted(DATA.glob("mmpose_*/state_dict_shapes.json.gz")),
    ]:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            shapes = json.load(f)
        for key in (name, get_config(name).mmpose_config):
            if key in shapes:
                return shapes[key]
    raise KeyError(f"no MMPose state-dict shapes for {name!r}")


def mmpose_layout(state_dict: dict, cfg: PoseModelConfig) -> dict:
    """The state dict as the published file holds it: MMPose 0.x files (``top_down/`` URLs) name the head
    ``keypoint_head`` and RLE's loss ``keypoint_head.loss`` (renamed by MMPose 1.x's load hooks)."""
    if "/mmpose/top_down/" not in cfg.checkpoint_url:
        return dict(state_dict)
    out = {}
    for k, v in state_dict.items():
        k = k.replace("head.loss_module.", "head.loss.", 1) if k.startswith("head.loss_module.") else k
        out[k.replace("head.", "keypoint_head.", 1) if k.startswith("head.") else k] = v
    return out


def small(name: str, **changes) -> PoseModelConfig:
    """The zoo config with small channel counts (same head args and input size; ResNets at depth 18)."""
    return small_backbone(get_config(name), resnet_depth=18).replace(deconv_out_channels=(16, 16, 16), **changes)


def randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial weights (the default init gives near-constant heads) and BN statistics."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for k, v in model.state_dict().items():
            if v.is_floating_point() and "linspace" not in k:
                if k.endswith("running_var"):
                    v.copy_(torch.rand(v.shape, generator=g) + 0.5)
                else:
                    v.copy_(torch.randn(v.shape, generator=g) * (0.5 if v.ndim == 4 else 0.1))
    return model.eval()


# ---------------------------------------------------------------- zoo


def test_zoo_entries_match_the_published_mmpose_checkpoints():
    assert len(RESNET_ZOO) == 23 and set(RESNET_ZOO) <= set(ZOO)
    for name, cfg in ZOO.items():
        assert cfg.checkpoint_url.startswith("https://download.openmmlab.com/mmpose/"), name
        assert f"-{cfg.sha256_prefix}_" in cfg.checkpoint_filename, name
        assert set(cfg.published) == set(METRIC_COLUMNS[cfg.dataset]), name
        assert cfg.collection and cfg.arch and cfg.flip_test, name
        assert cfg.num_keypoints == (16 if cfg.dataset == "mpii" else 17)
        assert cfg.score_mode == (
            "bbox_rle" if head_kind(cfg.head_kind) is RLE_KIND and cfg.dataset == "coco" else "bbox_keypoint"
        )
    seed = ("ipr_res50", "ipr_res50_dsnt", "ipr_res50_debias", "td-hm_res50")
    assert [get_config(n).published["AP"] for n in seed] == [0.633, 0.674, 0.675, 0.718]
    assert get_config("td-reg_res152_rle_coco-384x288").published["AP"] == 0.749
    assert get_config("td-reg_res50_mpii").published == {"Mean": 0.826, "Mean@0.1": 0.180}
    assert (get_config("ipr_res50_debias").beta, get_config("ipr_res50_debias").debias) == (10.0, True)
    assert get_config("ipr_res50").heatmap_size == (64, 64)
    assert get_config("td-hm_res50").heatmap_size == (48, 64)
    big = get_config("td-hm_res152_coco-384x288")
    assert (big.input_size, big.heatmap_size, big.sigma, big.backbone_depth) == ((288, 384), (72, 96), 3.0, 152)
    assert {c.head_kind for c in RESNET_ZOO.values()} == {"integral", "heatmap", "regression", "rle"}


def test_zoo_table_lists_every_entry_grouped_with_its_figures():
    table = zoo.zoo_table()
    for name, cfg in ZOO.items():
        line = next(x for x in table.splitlines() if f"| {name} |" in x)
        assert cfg.checkpoint_url in line and cfg.arch in line
        assert all(f"{v:.3f}" in line for v in cfg.published.values())
    headers = [x for x in table.splitlines() if x.startswith("## ")]
    from models.zoo.tables import group_title

    assert len(headers) == len({(group_title(c.collection, c.backbone), c.dataset) for c in ZOO.values()})
    assert len({(c.collection, c.dataset) for c in RESNET_ZOO.values()}) == 9
    assert "## SimpleBaseline2D + ResNeXt (COCO" in table and "## HRNet (COCO" in table  # MMPose's page titles
    assert "| Arch | Input Size | Mean | Mean@0.1 | name | ckpt |" in table
    assert "| Arch | Input Size | AP | AP50 | AP75 | AR | AR50 | name | ckpt |" in table
    assert "| pose_resnet_152 | 384x288 | 0.750 |" in table  # MMPose writes input sizes as height x width


def test_pose_zoo_cli_lists_every_entry_and_downloads_by_url(tmp_path, capsys):
    from export.cli import zoo_main

    assert zoo_main(["list"]) == 0
    out = capsys.readouterr().out
    assert out == zoo.zoo_table() + "\n" and all(f"| {n} |" in out for n in ZOO)
    cfg = get_config("td-reg_res50_rle_mpii")  # an MMPose 0.x file: offline, the message says where to put it
    assert zoo_main(["download", cfg.name, "--offline", "--cache-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert cfg.checkpoint_url in err and cfg.sha256_prefix in err


def test_config_dict_round_trip_and_validation():
    cfg = small("ipr_res50_debias")
    d = json.loads(json.dumps(cfg.to_dict()))
    assert PoseModelConfig.from_dict(d) == cfg
    with pytest.raises(ValueError, match="unknown PoseModelConfig keys"):
        PoseModelConfig.from_dict({**d, "colour": "rgb"})
    with pytest.raises(ValueError, match="multiples of 32"):
        cfg.replace(input_size=(250, 256))
    with pytest.raises(ValueError, match="head_kind"):
        cfg.replace(head_kind="simcc")
    with pytest.raises(KeyError, match="known"):
        get_config("rtmpose")
    with pytest.raises(ValueError, match="keypoint_schema"):
        cfg.replace(keypoint_schema="h36m")
    with pytest.raises(ValueError, match="does not match keypoint_schema"):
        cfg.replace(keypoint_schema="mpii16")
    with pytest.raises(ValueError, match="score_mode"):
        cfg.replace(score_mode="oks")
    generic = cfg.replace(num_keypoints=5, keypoint_schema=None)
    assert generic.dataset is None and PoseModelConfig.from_dict(generic.to_dict()) == generic


def test_load_pretrained_without_network_says_where_to_put_the_file(tmp_path, monkeypatch):
    import urllib.error

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    cfg = get_config("ipr_res50_debias")
    for kwargs in ({}, {"offline": True}):
        with pytest.raises(FileNotFoundError) as e:
            checkpoints.load_pretrained("ipr_res50_debias", tmp_path, progress=False, **kwargs)
        msg = str(e.value)
        assert cfg.checkpoint_url in msg and str(tmp_path / cfg.checkpoint_filename) in msg and "055a7699" in msg
    assert list(tmp_path.iterdir()) == []  # no partial file left behind


def test_download_verifies_the_sha256_prefix(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"pose" * 1000)
    digest = sha256_file(src)
    dest = checkpoints.download(src.as_uri(), tmp_path / "cache" / "a.pth", digest[:8], progress=False)
    assert dest.read_bytes() == src.read_bytes()
    bad = "0" * 8 if not digest.startswith("0" * 8) else "1" * 8
    with pytest.raises(checkpoints.ChecksumError, match=bad):
        checkpoints.download(src.as_uri(), tmp_path / "cache" / "b.pth", bad, progress=False)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["a.pth"]


def test_cached_checkpoint_with_wrong_hash_is_rejected(tmp_path):
    cfg = get_config("td-hm_res50")
    (tmp_path / cfg.checkpoint_filename).write_bytes(b"not the checkpoint")
    with pytest.raises(checkpoints.ChecksumError, match="04af38ce"):
        checkpoints.load_pretrained("td-hm_res50", tmp_path)
    with pytest.raises(ValueError, match="cache_dir"):
        load_pose_checkpoint("td-hm_res50")  # a zoo name needs the checkpoint folder


# ---------------------------------------------------------------- full-size models


@pytest.mark.parametrize("name", sorted(RESNET_ZOO))
def test_builds_with_mmpose_keys_and_forward_shapes(name):
    cfg = get_config(name)
    device = "cpu" if cfg.backbone_depth <= 50 else "meta"  # ResNet-101/152: shapes without the allocation
    with torch.device(device):
        model = build_pose_model(name)
        assert {k: list(v.shape) for k, v in model.state_dict().items()} == golden_shapes(name)
        w, h = cfg.input_size
        with torch.no_grad():
            out = model(torch.zeros(1, 3, h, w))
    k = cfg.num_keypoints
    expected = {"integral": (1, k, 2), "regression": (1, k, 2), "rle": (1, k, 3)}
    assert tuple(out.shape) == expected.get(cfg.head_kind, (1, k, *cfg.heatmap_size[::-1]))
    if device == "cpu":
        assert torch.isfinite(out).all()


def _mmpose_file(path: Path, cfg: PoseModelConfig, model: torch.nn.Module | None = None) -> dict:
    """Write an MMPose-layout .pth (state_dict + meta with numpy arrays) of ``cfg``'s shapes (or ``model``'s
    weights) in the published file's key layout; returns the state dict in our names."""
    if model is None:
        state_dict = {}
        for i, (k, shape) in enumerate(golden_shapes(cfg.name).items()):
            if k.endswith("num_batches_tracked"):
                state_dict[k] = torch.zeros(shape, dtype=torch.int64)
            else:
                state_dict[k] = torch.full(shape, float(i % 7) / 7.0, dtype=torch.float32)
    else:
        state_dict = dict(model.state_dict())
    meta = {
        "mmpose_version": "1.0.0rc0",
        "dataset_meta": {"sigmas": np.full(17, 0.05, np.float32), "flip_indices": [0, 2, 1]},
    }
    torch.save({"state_dict": mmpose_layout(state_dict, cfg), "meta": meta}, path)
    return state_dict


@pytest.mark.parametrize("name", FULL_LOAD)
def test_strict_load_of_mmpose_shaped_checkpoint(name, tmp_path):
    """An MMPose-layout .pth under its published file name, at full size (0.x key layout where the file is 0.x)."""
    cfg = get_config(name)
    path = tmp_path / cfg.checkpoint_filename
    state_dict = _mmpose_file(path, cfg)
    model, metadata = load_pose_checkpoint(path)
    assert metadata["config_name"] == name and metadata["format"] == "mmpose"
    assert metadata["sha256"] == sha256_file(path)
    assert metadata["meta"]["dataset_meta"]["sigmas"][0] == pytest.approx(0.05)
    assert metadata["published"] == cfg.published
    assert ("converted" in metadata) == ("/mmpose/top_down/" in cfg.checkpoint_url)
    loaded = model.state_dict()
    for k in (next(iter(state_dict)), list(state_dict)[-1]):
        assert torch.equal(loaded[k], state_dict[k])
    assert not model.training


@pytest.mark.parametrize("name", sorted(n for n, c in RESNET_ZOO.items() if c.backbone_depth > 50))
def test_deep_entries_load_strictly_from_their_published_layout(name, tmp_path):
    """The ResNet-101/152 entries: an MMPose-layout file at 8-channel width (keys do not depend on the width) loads
    strictly into the entry's structure; the published file name alone picks the entry."""
    cfg = get_config(name)
    small_cfg = cfg.replace(backbone_base_channels=8, deconv_out_channels=(16, 16, 16))
    source = randomise(build_pose_model(small_cfg))
    path = tmp_path / cfg.checkpoint_filename
    _mmpose_file(path, cfg, source)
    model, meta = load_pose_checkpoint(path, config=small_cfg)
    assert ("converted" in meta) == ("/mmpose/top_down/" in cfg.checkpoint_url)
    x = torch.randn(1, 3, cfg.input_size[1], cfg.input_size[0])
    with torch.no_grad():
        assert torch.equal(model(x), source(x))
    assert checkpoints.config_for_mmpose_file(path) is cfg  # the file name picks the entry


# ---------------------------------------------------------------- checkpoint errors and our format


def test_mismatched_state_dict_names_missing_unexpected_and_misshaped_keys():
    model = build_pose_model(small("ipr_res50"))
    sd = dict(model.state_dict())
    sd.pop("head.simplebaseline_head.final_layer.bias")
    sd["head.extra.weight"] = torch.zeros(3)
    sd["backbone.conv1.weight"] = torch.zeros(8, 3, 3, 3)
    with pytest.raises(CheckpointError) as e:
        check_state_dict(model, sd)
    msg = str(e.value)
    assert "missing (1): head.simplebaseline_head.final_layer.bias" in msg
    assert "unexpected (1): head.extra.weight" in msg
    assert "backbone.conv1.weight: checkpoint [8, 3, 3, 3] vs model [8, 3, 7, 7]" in msg


class HistoryBuffer:
    """Stands for mmengine objects that MMPose checkpoints may carry in ``meta``."""

    restored = False

    def __init__(self):
        self.values = np.arange(3)

    def __setstate__(self, state):
        HistoryBuffer.restored = True  # must never run: the loader does not execute file classes
        self.__dict__.update(state)


def test_unknown_classes_in_meta_are_inert(tmp_path):
    model = randomise(build_pose_model(small("ipr_res50")))
    path = tmp_path / "with_objects.pth"
    torch.save({"state_dict": model.state_dict(), "meta": {"message_hub": HistoryBuffer(), "seed": 3}}, path)
    loaded, meta = load_pose_checkpoint(path, config=model.config)
    assert not HistoryBuffer.restored
    assert (
        meta["meta"]["message_hub"] == f"<opaque {HistoryBuffer.__module__}.HistoryBuffer>"
        and meta["meta"]["seed"] == 3
    )
    assert torch.equal(loaded.state_dict()["backbone.conv1.weight"], model.state_dict()["backbone.conv1.weight"])


def test_mmpose_file_of_unknown_config_needs_config(tmp_path):
    model = randomise(build_pose_model(small("ipr_res50_debias")))
    path = tmp_path / "my_finetune.pth"
    torch.save({"state_dict": model.state_dict(), "meta": {}}, path)
    with pytest.raises(CheckpointError, match="pass config="):
        load_pose_checkpoint(path)
    loaded, meta = load_pose_checkpoint(path, config=model.config)
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert meta["config"]["debias"] is True


def test_heatmap_checkpoint_initialises_an_integral_model(tmp_path):
    """MMPose's integral configs start from td-hm_res50: head.deconv_layers/final_layer are renamed."""
    hm_model = randomise(build_pose_model(small("td-hm_res50")))
    path = tmp_path / "td-hm.pth"
    torch.save({"state_dict": hm_model.state_dict(), "meta": {}}, path)
    model, meta = load_pose_checkpoint(path, config=small("ipr_res50", input_size=(192, 256)))
    assert "converted" in meta
    assert torch.equal(model.head.simplebaseline_head.final_layer.weight, hm_model.head.final_layer.weight)


def test_our_checkpoint_round_trip(tmp_path):
    model = randomise(build_pose_model(small("ipr_res50_debias")))
    path = save_pose_checkpoint(tmp_path / "ours.pth", model, {"epoch": 7, "AP": np.float64(0.5)})
    assert torch.load(path, weights_only=True)["format"] == FORMAT
    loaded, meta = load_pose_checkpoint(path)
    assert meta["format"] == "poseserve" and meta["meta"] == {"epoch": 7, "AP": 0.5}
    assert loaded.config == model.config
    x = torch.randn(2, 3, 256, 256)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_unreadable_and_missing_checkpoints(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_pose_checkpoint(tmp_path / "nope.pth")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"definitely not a zip or pickle")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_pose_checkpoint(bad)
    buf = io.BytesIO()
    torch.save([1, 2, 3], buf)
    (tmp_path / "list.pth").write_bytes(buf.getvalue())
    with pytest.raises(CheckpointError, match="expected a dict"):
        load_pose_checkpoint(tmp_path / "list.pth")


# ---------------------------------------------------------------- behaviour (small channel counts)


@pytest.mark.parametrize("name", sorted(RESNET_ZOO))
def test_flip_test_symmetry(name):
    """Flip test of the mirrored crops == the flip test of the crops, mirrored back (flip-back is an involution).

    Heatmap entries run with the MSRA decode: DARK's Newton step on a random network's noisy maps is ill-conditioned
    (offsets of thousands of pixels that float32 rounding makes asymmetric); its flip test is checked against MMPose in
    tests/models/test_codecs_dark_udp.py."""
    hm = head_kind(get_config(name).head_kind) is HEATMAP_KIND
    cfg = small(name, shift_heatmap=False, codec="msra") if hm else small(name)
    model = randomise(TopdownPoseModel(cfg), seed=1)
    w, h = cfg.input_size
    crops = np.random.default_rng(0).integers(0, 256, (2, h, w, 3), dtype=np.uint8)
    a = model.predict_keypoints(crops, flip_test=True)
    b = model.predict_keypoints(np.ascontiguousarray(crops[:, :, ::-1]), flip_test=True)
    single = model.predict_keypoints(crops, flip_test=False)
    idx = model.card.flip_index  # the config's schema: COCO-17 or MPII-16
    if head_kind(cfg.head_kind) is not HEATMAP_KIND:  # coordinates: x -> w - 1 - x
        mirrored = flip_back_keypoints(b, idx, w)
    else:  # unshifted heatmap column j mirrors onto W - 1 - j: in crop pixels x -> w - w / W - x
        mirrored = flip_back_keypoints(b, idx, w, shift=False)
        mirrored[..., 0] -= w / cfg.heatmap_size[0]
    found = a[..., 2] > 0  # MMPose marks maps whose maximum is <= 0 with location -1 (not mirrored)
    assert found.sum() >= cfg.num_keypoints
    np.testing.assert_allclose(mirrored[found], a[found], atol=1e-3)
    assert np.abs(single - a).max() > 1e-2  # the flipped pass really contributes


def test_flip_back_formulas_are_mmposes():
    """Pixels: x -> w - 1 - x is MMPose's normalised ``1 - x - 1 / w`` (shift_coords); heatmaps mirror, swap
    joints and shift one column right (shift_heatmap)."""
    idx = flip_indices()
    c = np.random.default_rng(0).random((1, 17, 2))
    back = flip_back_keypoints(c * 256, idx, 256) / 256
    np.testing.assert_allclose(back[0, :, 0], (1 - c[0, :, 0] - 1 / 256)[idx], atol=1e-12)
    np.testing.assert_allclose(back[0, :, 1], c[0, idx, 1], atol=1e-12)
    hm = np.random.default_rng(1).random((1, 17, 4, 5))
    out = flip_back_heatmaps(hm, idx, shift=True)
    np.testing.assert_array_equal(out[0, 1, :, 1:], hm[0, 2, :, ::-1][:, :-1])
    np.testing.assert_array_equal(out[0, 1, :, 0], hm[0, 2, :, -1])


@pytest.mark.parametrize("name", INTEGRAL)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_integral_head_stable_with_logits_up_to_100(name, dtype):
    cfg = get_config(name)
    head = IntegralRegressionHead(
        4, (16, 16), 17, beta=cfg.beta, debias=cfg.debias, deconv_out_channels=(4, 4), deconv_kernel_sizes=(4, 4)
    )
    g = torch.Generator().manual_seed(3)
    logits = torch.rand(3, 17, 64, 64, generator=g, dtype=torch.float64) * 200 - 100  # [-100, 100]
    logits[0] = logits[0] - logits[0].amax() + 100  # maps whose maximum is exactly 100
    logits[1, :4] = 100.0  # flat maps at 100
    logits[1, 4:8] = -100.0  # flat maps at -100 (C far below 1)
    logits[2] = logits[2] * 0.05  # mild logits where debias matters
    with torch.no_grad():
        coords, heatmaps = head.to(dtype).integrate(logits.to(dtype))
    assert coords.dtype == dtype and torch.isfinite(coords).all() and torch.isfinite(heatmaps).all()
    # reference: MMPose's formula evaluated in float64 (where exp(100) is finite) on the same logits
    logits = logits.to(dtype).double()
    p = torch.softmax(logits.flatten(2) * cfg.beta, dim=2).reshape(logits.shape)
    grid = torch.arange(64, dtype=torch.float64) / 64
    ref = torch.stack([(p * grid).sum((2, 3)), (p * grid[:, None]).sum((2, 3))], dim=-1)
    if cfg.debias:
        c = logits.flatten(2).exp().sum(2)[..., None]
        ref = c / (c - 1) * (ref - 1 / (2 * c))
    dev = (coords.double() - ref).abs().amax(dim=(1, 2))
    print(f"[stability] {name} {dtype}: max deviation from float64 per sample {dev.tolist()}")
    if dtype == torch.float32:
        assert dev.max() <= 1e-5
    else:
        # the head integrates float16 logits in float32; what is left is float16 rounding of the output
        assert dev.max() <= 1e-3


def test_naive_debias_overflows_where_ours_does_not():
    """Why C is computed in log space: MMPose's exp() of a 100 logit is inf in float32."""
    logits = torch.full((1, 1, 8, 8), 100.0)
    naive_c = logits.flatten(2).exp().sum(2)[..., None]
    coords = torch.full((1, 1, 2), 0.4)
    naive = naive_c / (naive_c - 1) * (coords - 1 / (2 * naive_c))
    assert not torch.isfinite(naive).all()
    ours = debias_coordinates(coords, log_sum_exp_spatial(logits))
    torch.testing.assert_close(ours, coords)


def test_debias_gradient_is_finite_on_both_branches():
    logits = torch.tensor([[[[5.0, -9.0], [-9.0, -9.0]]], [[[-20.0, -21.0], [-22.0, -20.5]]]], requires_grad=True)
    coords = torch.full((2, 1, 2), 0.3, requires_grad=True)
    out = debias_coordinates(coords, log_sum_exp_spatial(logits))
    out.sum().backward()
    assert torch.isfinite(logits.grad).all() and torch.isfinite(coords.grad).all()


def test_preprocess_casts_first_and_normalises():
    model = randomise(build_pose_model(small("ipr_res50_debias")))
    crops = torch.randint(0, 256, (2, 256, 256, 3), dtype=torch.uint8)
    x = model.preprocess(crops)
    assert x.shape == (2, 3, 256, 256) and x.is_contiguous() and x.dtype == torch.float32
    mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
    torch.testing.assert_close(x, (crops.permute(0, 3, 1, 2).float() - mean) / std)


@pytest.mark.parametrize("name", ["ipr_res50_debias", "td-hm_res50"])
def test_predict_keypoints_in_crop_pixels(name):
    model = randomise(build_pose_model(small(name)))
    w, h = model.config.input_size
    crops = np.random.RandomState(0).randint(0, 256, (2, h, w, 3)).astype(np.uint8)
    kp = model.predict_keypoints(crops, flip_test=False)
    assert kp.shape == (2, 17, 3) and kp.dtype == np.float32
    with torch.no_grad():
        out = model(model.preprocess(torch.from_numpy(crops))).numpy()
    if model.output_kind == "integral":
        np.testing.assert_allclose(kp[..., :2], out * [w, h], rtol=1e-6)
        assert (kp[..., 2] == 1).all()
    else:
        np.testing.assert_allclose(kp[..., 2], out.reshape(2, 17, -1).max(-1))
        hw, hh = model.config.heatmap_size
        argmax = out.reshape(2, 17, -1).argmax(-1)
        found = kp[..., 2] > 0  # maps with a maximum <= 0 decode to MMPose's -1 location
        assert found.sum() >= 17
        # the argmax cell, scaled to the crop, within the quarter-pixel refinement
        assert np.abs(kp[..., 0] - (argmax % hw) * (w / hw))[found].max() <= 0.25 * w / hw + 1e-4
        assert np.abs(kp[..., 1] - (argmax // hw) * (h / hh))[found].max() <= 0.25 * h / hh + 1e-4
        assert (kp[~found][:, :2] == -np.array([w / hw, h / hh], np.float32)).all()


def test_bad_inputs_raise_clear_errors():
    model = build_pose_model(small("td-hm_res50"))
    with pytest.raises(ValueError, match=r"\[B, 3, 256, 192\]"):
        model(torch.zeros(1, 3, 256, 256))
    with pytest.raises(ValueError, match="floating point"):
        model(torch.zeros(1, 3, 256, 192, dtype=torch.uint8))
    with pytest.raises(ValueError, match="RGB crops"):
        model.preprocess(torch.zeros(1, 3, 256, 192, dtype=torch.uint8))
    with pytest.raises(TypeError, match="zoo name"):
        build_pose_model(42)
    five = TopdownPoseModel(small("ipr_res50", num_keypoints=5, keypoint_schema=None))
    assert five.predict_keypoints(np.zeros((1, 256, 256, 3), np.uint8), flip_test=False).shape == (1, 5, 3)
    with pytest.raises(ValueError, match="no flip pairs"):
        five.predict_keypoints(np.zeros((1, 256, 256, 3), np.uint8), flip_test=True)
