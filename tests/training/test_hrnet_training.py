"""HRNet's training recipe (``training.configs.hrnet``) against MMPose's configs (tests/data/mmpose_hrnet/
train_configs.json, written by tests/mmpose_golden/make_hrnet_golden.py), its ImageNet initialisation
(``models.checkpoints.load_imagenet_backbone`` on an HRNet), and two training steps at small width."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from models.checkpoints import ChecksumError, imagenet_hrnet_to_backbone_keys, load_imagenet_backbone
from models.pose_model import TopdownPoseModel
from models.zoo import get_config
from models.zoo.families.hrnet import ENTRIES, IMAGENET_HRNET, hrnet_width
from training.configs import INIT_IMAGENET, get_train_config

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "mmpose_hrnet"
RECIPES = json.loads((GOLDEN / "train_configs.json").read_text())
NAMES = sorted(c.name for c in ENTRIES)
SMALL_EXTRA = __import__("models.backbones.hrnet", fromlist=["hrnet_extra"]).hrnet_extra(8, stage1_channels=8)


@pytest.mark.parametrize("name", NAMES)
def test_recipe_follows_mmpose(name):
    cfg = get_train_config(name)
    assert cfg.model == get_config(name)  # the zoo entry, unchanged
    r = RECIPES[cfg.model.mmpose_config]
    assert r["optimizer"] == "Adam"
    assert (cfg.epochs, cfg.val_interval, cfg.batch_size, cfg.base_batch_size, cfg.lr) == (
        r["max_epochs"],
        r["val_interval"],
        r["batch_size"],
        r["base_batch_size"],
        r["lr"],
    )
    assert r["warmup"] == {
        "type": "LinearLR",
        "start_factor": cfg.warmup_factor,
        "end": cfg.warmup_iters,
        "by_epoch": False,
    }
    assert r["steps"] == {"type": "MultiStepLR", "milestones": list(cfg.milestones), "gamma": cfg.gamma}
    assert r["losses"] == ["KeypointMSELoss"] and cfg.losses == ("keypoint_mse",) and r["use_target_weight"]
    # the backbone's init_cfg: MMPose's ImageNet HRNet of the config's width, loaded into the backbone
    assert r["init"] == {"type": "Pretrained", "checkpoint": IMAGENET_HRNET[hrnet_width(cfg.model)][0]}
    assert cfg.init == INIT_IMAGENET and not cfg.init_backbone_only
    types = [t["type"] for t in r["train_pipeline"]]
    assert cfg.augment.enabled and cfg.augment.half_body == ("RandomHalfBody" in types)
    # the codec: the entry's (MSRA, DARK's unbiased MSRA, UDP) with MMPose's sigma; UDP's crops (use_udp) in training
    codec = {"MSRAHeatmap": "dark" if r["codec"].get("unbiased") else "msra", "UDPHeatmap": "udp"}[r["codec"]["type"]]
    assert cfg.model.codec == codec and r["codec"]["sigma"] == cfg.model.sigma
    assert list(r["codec"]["input_size"]) == list(cfg.model.input_size)
    assert list(r["codec"]["heatmap_size"]) == list(cfg.model.heatmap_size)
    (encoder,) = [t["encoder"] for t in r["train_pipeline"] if t["type"] == "GenerateTarget"]
    assert encoder == r["codec"]
    (affine,) = [t for t in r["train_pipeline"] if t["type"] == "TopdownAffine"]
    assert affine.get("use_udp", False) == cfg.model.use_udp
    assert r["evaluator"] == {"type": "CocoMetric", "score_mode": None} and r["save_best"] == "coco/AP"


def test_imagenet_table_is_the_configs_files():
    for width, (url, prefix) in IMAGENET_HRNET.items():
        assert url.endswith(f"/pretrain_models/hrnet_w{width}-{prefix}.pth")
    inits = {r["init"]["checkpoint"] for r in RECIPES.values()}
    assert inits == {url for url, _ in IMAGENET_HRNET.values()}


def test_imagenet_hrnet_keys_map_onto_the_backbone():
    """The classifier's modules and stage 4's extra fuse layers are left out (MMPose loads non-strictly); every
    backbone key comes from the file."""
    model = TopdownPoseModel(get_config("td-hm_hrnet-w32").replace(backbone_args={"extra": SMALL_EXTRA}))
    own = model.backbone.state_dict()
    file = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in own.items()}
    extra = ("incre_modules.0.0.conv1.weight", "downsamp_modules.0.0.weight", "final_layer.0.weight")
    extra += ("classifier.weight", "stage4.2.fuse_layers.1.0.0.0.weight")
    file.update({k: torch.zeros(3) for k in extra})
    mapped = imagenet_hrnet_to_backbone_keys(file, set(own))
    assert set(mapped) == {f"backbone.{k}" for k in own}
    model.load_state_dict({**model.state_dict(), **mapped}, strict=True)
    assert torch.equal(model.backbone.stage4[2].fuse_layers[0][3][0].weight, file["stage4.2.fuse_layers.0.3.0.weight"])


def test_imagenet_download_is_hash_checked_and_offline_names_the_url(tmp_path):
    with torch.device("meta"):
        model = TopdownPoseModel(get_config("td-hm_hrnet-w48"))
    url, prefix = IMAGENET_HRNET[48]
    with pytest.raises(FileNotFoundError, match=prefix):
        load_imagenet_backbone(model, tmp_path, offline=True)
    (tmp_path / url.rsplit("/", 1)[-1]).write_bytes(b"not the weights")
    with pytest.raises(ChecksumError, match=prefix):
        load_imagenet_backbone(model, tmp_path, offline=True)
    small = TopdownPoseModel(get_config("td-hm_hrnet-w32").replace(backbone_args={"extra": SMALL_EXTRA}))
    with pytest.raises(ValueError, match="HRNet-W8"):
        load_imagenet_backbone(small, tmp_path, offline=True)


@pytest.mark.parametrize("name", ["td-hm_hrnet-w32_dark", "td-hm_hrnet-w32_udp"])
def test_dark_and_udp_training_items_use_the_codecs_crop_and_targets(name, coco_tiny):
    """``pose-train``'s data for the HRNet+DARK / +UDP recipes: the codec's targets (``DarkHeatmap`` /
    ``UDPHeatmap``, heatmaps of input / 4) on the codec's crop (UDP: ``TopdownAffine(use_udp=True)``)."""
    from models import geometry
    from models.codecs_dark_udp import DarkHeatmap, UDPHeatmap
    from training.data import CocoTopDown, make_codec, read_image_rgb
    from training.transforms import AugmentConfig

    cfg = get_train_config(name).model.replace(backbone_args={"extra": SMALL_EXTRA})
    codec = make_codec(cfg)
    assert type(codec) is (DarkHeatmap if cfg.codec == "dark" else UDPHeatmap)
    data = CocoTopDown(coco_tiny / "test_coco.json", coco_tiny, cfg, train=True, augment=AugmentConfig(enabled=False))
    inst, item = data.instances[0], data[0]
    center, scale = geometry.bbox_to_center_scale(inst.bbox[None], cfg.input_size)
    crop = geometry.crop_image(read_image_rgb(inst.file), center[0], scale[0], cfg.input_size, use_udp=cfg.use_udp)
    assert np.array_equal(item["inputs"], crop)
    m = geometry.crop_warp_matrix(center[0], scale[0], 0.0, cfg.input_size, cfg.use_udp)
    enc = codec.encode(geometry.transform_points(inst.keypoints, m).astype(np.float32)[None], inst.visible[None])
    assert np.array_equal(item["heatmaps"], enc["heatmaps"]) and item["heatmaps"].shape == (17, 64, 48)


@pytest.mark.parametrize("name", ["td-hm_hrnet-w32", "td-hm_hrnet-w32_udp"])
def test_recipe_smoke_trains_two_steps(coco_tiny, name):
    """The recipe's data, augmentation, codec (heatmaps of input / 4; UDP's crops and targets for ``_udp``) and loss
    through two Adam steps of a small HRNet on coco-tiny's people: the weights move and the loss is finite."""
    from torch.utils.data import DataLoader

    from training.data import CocoTopDown
    from training.loop import TrainForward, TrainState, WarmupMultiStep, train_one_epoch

    cfg = get_train_config(name)
    model_cfg = cfg.model.replace(backbone_args={"extra": SMALL_EXTRA})
    data = CocoTopDown(coco_tiny / "test_coco.json", coco_tiny, model_cfg, train=True, augment=cfg.augment)
    torch.manual_seed(0)
    model = TopdownPoseModel(model_cfg)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loader = DataLoader(torch.utils.data.Subset(data, range(4)), batch_size=2)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, WarmupMultiStep(2, warmup_iters=1))
    records, state = [], TrainState()
    train_one_epoch(
        TrainForward(model, cfg.losses),
        loader,
        opt,
        sched,
        torch.amp.GradScaler("cpu", enabled=False),
        state,
        torch.device("cpu"),
        log_interval=1,
        log=records.append,
    )
    assert state.global_iter == 2 and len(records) == 2
    assert all(np.isfinite(r["loss"]) for r in records) and "keypoint_mse" in records[0]
    moved = [k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.equal(v, before[k])]
    assert any(k.startswith("backbone.stage4.") for k in moved) and "head.final_layer.weight" in moved
