"""Initialisation as MMPose: integral configs from a SimpleBaseline (td-hm) checkpoint with the head keys renamed,
SimpleBaseline, DeepPose and RLE from torchvision's ImageNet ResNet (keys mapped, ``fc`` dropped), RLE-pretrained from
td-hm's backbone only; every config against MMPose's own config file (tests/data/mmpose_zoo/train_configs.json, read
by MMPose's ``Config``); the AMP choice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from core.settings import Settings  # noqa: E402
from models.checkpoints import (  # noqa: E402
    CheckpointError,
    imagenet_to_backbone_keys,
    load_backbone_weights,
    load_imagenet_backbone,
    save_pose_checkpoint,
)
from models.pose_model import TopdownPoseModel  # noqa: E402
from models.zoo import IMAGENET_RESNET, RESNET_ZOO, get_config  # noqa: E402
from models.zoo.families import dark, resnest_scnet, resnet_variants  # noqa: E402
from training.configs import CONFIGS, TrainConfig, get_train_config  # noqa: E402
from training.train import amp_dtype_for, initialise  # noqa: E402
from training.transforms import AugmentConfig  # noqa: E402

SMALL = dict(backbone_depth=18, backbone_base_channels=8, deconv_out_channels=(8, 8), deconv_kernel_sizes=(4, 4))


def test_integral_model_starts_from_a_heatmap_checkpoint(tmp_path):
    torch.manual_seed(1)
    heat = TopdownPoseModel(get_config("td-hm_res50").replace(name="hm", **SMALL))
    path = save_pose_checkpoint(tmp_path / "td-hm.pth", heat, {"epoch": 210})
    integral = TopdownPoseModel(get_config("ipr_res50_debias").replace(**SMALL))
    grid = integral.head.linspace_x.detach().clone()
    how = initialise(integral, str(path), Settings(cache_dir=tmp_path))
    assert "renamed" in how
    assert torch.equal(integral.backbone.conv1.weight, heat.backbone.conv1.weight)
    assert torch.equal(integral.head.simplebaseline_head.final_layer.weight, heat.head.final_layer.weight)
    assert torch.equal(integral.head.linspace_x, grid)  # the integral grid is the model's own


def test_fine_tune_from_an_mmpose_layout_checkpoint(tmp_path):
    torch.manual_seed(2)
    src = TopdownPoseModel(get_config("ipr_res50").replace(**SMALL))
    path = tmp_path / "mmpose_style.pth"  # mmengine's layout: state_dict + meta, no config
    torch.save({"state_dict": src.state_dict(), "meta": {"mmpose_version": "1.3.2", "epoch": 210}}, path)
    dst = TopdownPoseModel(get_config("ipr_res50").replace(**SMALL))
    assert "mmpose checkpoint" in initialise(dst, str(path), Settings(cache_dir=tmp_path))
    assert all(torch.equal(a, b) for a, b in zip(src.state_dict().values(), dst.state_dict().values()))


def test_imagenet_keys_map_onto_the_backbone(tmp_path):
    model = TopdownPoseModel(get_config("td-hm_res50").replace(backbone_depth=18))
    tv = {
        k[len("backbone.") :]: torch.randn_like(v) if v.is_floating_point() else v
        for k, v in model.state_dict().items()
        if k.startswith("backbone.")
    }
    tv["fc.weight"], tv["fc.bias"] = torch.zeros(1000, 512), torch.zeros(1000)
    mapped = imagenet_to_backbone_keys(tv)
    assert "backbone.fc.weight" not in mapped and "backbone.layer4.1.bn2.running_var" in mapped
    model.load_state_dict({**model.state_dict(), **mapped}, strict=True)
    assert torch.equal(model.backbone.layer1[0].conv1.weight, tv["layer1.0.conv1.weight"])


def test_imagenet_download_is_hash_checked_and_offline_names_the_url(tmp_path):
    model = TopdownPoseModel(get_config("td-hm_res50"))
    url, prefix = IMAGENET_RESNET[50]
    assert url.endswith(f"resnet50-{prefix}.pth")  # MMPose's torchvision://resnet50 (IMAGENET1K_V1)
    with pytest.raises(FileNotFoundError, match=prefix):
        load_imagenet_backbone(model, tmp_path, offline=True)
    (tmp_path / url.rsplit("/", 1)[-1]).write_bytes(b"not the weights")
    from models.checkpoints import ChecksumError

    with pytest.raises(ChecksumError, match=prefix):
        load_imagenet_backbone(model, tmp_path, offline=True)
    with pytest.raises(ValueError, match="base width 8"):
        load_imagenet_backbone(TopdownPoseModel(get_config("td-hm_res50").replace(**SMALL)), tmp_path)


#: MMPose's training recipes by config path: the zoo's, and the families' (tests/data/mmpose_*/train_configs.json).
RECIPES = {
    k: v
    for path in sorted((Path(__file__).resolve().parents[1] / "data").glob("mmpose_*/train_configs.json"))
    for k, v in json.loads(path.read_text()).items()
}
#: MMPose loss class -> ours (``training.losses.LOSSES``)
LOSS_NAMES = {
    "SmoothL1Loss": "smooth_l1",
    "KeypointMSELoss": "keypoint_mse",
    "JSDiscretLoss": "js_discrete",
    "RLELoss": "rle",
}


#: The ResNet+DARK rows and the ResNet variants (ResNetV1d, ResNeXt, SEResNet, AlexNet, ResNeSt, SCNet): SimpleBaseline
#: recipes, checked here (other families' own tests check theirs).
DARK_ROWS = {c.name for c in (*dark.ENTRIES, *resnet_variants.ENTRIES, *resnest_scnet.ENTRIES)}


@pytest.mark.parametrize(
    "name", sorted(n for n in CONFIGS if n in RESNET_ZOO or n in DARK_ROWS or n.startswith("quick"))
)
def test_configs_follow_mmpose(name):
    """The configs of the ResNet families (with DARK) and the quick ones against MMPose's config files."""
    cfg = get_train_config(name)
    assert cfg.model.name == name
    if name.startswith("quick"):
        assert cfg.model.backbone_depth == 18 and cfg.init is None and cfg.model.checkpoint_url is None
        assert cfg.losses == (("rle",) if name == "quick-rle" else ("smooth_l1", "js_discrete"))
        return
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
    assert cfg.losses == tuple(LOSS_NAMES[x] for x in r["losses"])
    ckpt = r["init"].get("checkpoint")
    if ckpt is None or ckpt.startswith("mmcls://") or "pretrain_models/scnet" in ckpt:
        # no init_cfg; or OpenMMLab's ImageNet classifiers (mmcls://, SCNet's pretrain_models), not loadable here
        assert cfg.init is None and cfg.model.backbone != "resnet"
    elif ckpt.startswith("torchvision://resnet"):
        assert cfg.init == "imagenet" and ckpt == f"torchvision://resnet{cfg.model.backbone_depth}"
    else:  # MMPose's pretrain_models copy of td-hm_res50: the zoo's hash-verified checkpoint stands in
        assert "pretrain_models/td-hm_res50_8xb64-210e_coco-256x192" in ckpt and cfg.init == "td-hm_res50"
    assert cfg.init_backbone_only == (r["init"]["on"] == "backbone" and r["init"].get("prefix") == "backbone.")
    a = cfg.augment
    assert a.enabled and a.half_body == ("RandomHalfBody" in r["train_pipeline"])
    assert a.shift_prob == (r["shift_prob"] if r["shift_prob"] is not None else AugmentConfig().shift_prob)
    assert r["codec"]["input_size"] == list(cfg.model.input_size)
    assert r["codec"].get("sigma", cfg.model.sigma) == cfg.model.sigma
    assert r["evaluator"]["type"] == ("MpiiPCKAccuracy" if cfg.model.dataset == "mpii" else "CocoMetric")
    assert (r["evaluator"]["score_mode"] or "bbox_keypoint") == cfg.model.score_mode
    assert r["save_best"] == {"coco": "coco/AP", "mpii": "PCK"}[cfg.model.dataset]


def test_config_validation_names_the_mismatch():
    cfg = get_train_config("td-reg_res50")
    with pytest.raises(ValueError, match="regression heads have no sigmas for rle"):
        cfg.replace(losses=("rle",))
    with pytest.raises(ValueError, match="no heatmaps"):
        cfg.replace(losses=("smooth_l1", "keypoint_mse"))
    with pytest.raises(ValueError, match="no coordinates"):
        get_train_config("td-hm_res101").replace(losses=("smooth_l1",))
    assert isinstance(get_train_config("td-reg_res50_rle_mpii"), TrainConfig)


def test_rle_pretrained_takes_only_the_heatmap_models_backbone(tmp_path):
    """MMPose ``Pretrained(prefix='backbone.')``: the backbone of a td-hm checkpoint, the RLE head (and its flow)
    untouched; a checkpoint of another depth is refused, naming the keys."""
    hm = TopdownPoseModel(get_config("td-hm_res50").replace(**SMALL))
    for p in hm.parameters():
        torch.nn.init.normal_(p)
    path = save_pose_checkpoint(tmp_path / "hm.pth", hm)
    rle = TopdownPoseModel(get_config("td-reg_res50_rle-pretrained").replace(**SMALL))
    head_before = {k: v.clone() for k, v in rle.head.state_dict().items()}
    settings = Settings(cache_dir=tmp_path, offline=True)
    how = initialise(rle, str(path), settings, backbone_only=True)
    assert how.startswith("backbone of")
    assert all(torch.equal(a, b) for a, b in zip(rle.backbone.state_dict().values(), hm.backbone.state_dict().values()))
    assert all(torch.equal(v, rle.head.state_dict()[k]) for k, v in head_before.items())
    deeper = TopdownPoseModel(get_config("td-reg_res101_rle").replace(**{**SMALL, "backbone_depth": 34}))
    with pytest.raises(CheckpointError, match="missing"):
        load_backbone_weights(deeper, path)


def test_amp_choice():
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    assert amp_dtype_for("off", cpu) is None and amp_dtype_for("bf16", cpu) == torch.bfloat16
    assert amp_dtype_for("auto", cuda) == torch.float16 and amp_dtype_for("fp16", cuda) == torch.float16
    assert amp_dtype_for("auto", cpu) in (None, torch.bfloat16)
    with pytest.raises(ValueError, match="fp16 needs CUDA"):
        amp_dtype_for("fp16", cpu)
