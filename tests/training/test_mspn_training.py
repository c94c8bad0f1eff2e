"""MSPN / RSN training (``models.heads.mspn``, ``models.megvii_heatmap.MultiLevelMegviiHeatmap``,
``training.losses.mspn_levels_loss``, ``training.configs.mspn``) against MMPose 1.3.2.

* the recipe of each entry against its MMPose config (tests/data/mmpose_mspn/configs.json, written by
  tests/mmpose_golden/make_mspn_golden.py): optimizer, lr, batch, base batch, schedule, codec kernels, level indices,
  loss list, augmentation, validation without OKS-NMS (train_evaluators.json);
* ``KeypointOHKMMSELoss`` and ``MSPNHead.loss`` values from MMPose's own classes (tests/data/mmpose_mspn/
  train_loss.npz, tests/mmpose_golden/make_mspn_train_golden.py), float64 within ``PARITY_FP64``;
* the multi-level Megvii targets, and two training steps at small width.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from models.megvii_heatmap import MegviiHeatmap, MultiLevelMegviiHeatmap, megvii_levels  # noqa: E402
from models.tolerance import PARITY_FP64  # noqa: E402
from models.zoo.families.mspn_rsn import ENTRIES  # noqa: E402
from tests.golden import fill, load_npz, recipe  # noqa: E402
from training.configs import get_train_config  # noqa: E402
from training.losses import MSPN_MSE_WEIGHT, keypoint_ohkm_mse_loss, pose_loss  # noqa: E402
from training.transforms import AugmentConfig  # noqa: E402

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "mmpose_mspn"
CONFIGS = json.loads((GOLDEN / "configs.json").read_text())
EVALUATORS = json.loads((GOLDEN / "train_evaluators.json").read_text())
NAMES = sorted(c.name for c in ENTRIES)


def _f64(name: str, shape: tuple[int, ...], square: bool = False) -> torch.Tensor:
    a = recipe.recipe_array(name, shape).astype(np.float64)
    return torch.from_numpy(a**2 if square else a)


def _weights(name: str, shape: tuple[int, int]) -> torch.Tensor:
    return torch.from_numpy((recipe.recipe_array(name, shape) > -0.85).astype(np.float64))


@pytest.mark.parametrize("name", NAMES)
def test_recipe_follows_mmpose(name):
    cfg = get_train_config(name)
    c = CONFIGS[cfg.model.mmpose_config]
    assert cfg.model == ENTRIES[[e.name for e in ENTRIES].index(name)]
    assert c["optimizer"] == {"type": "Adam", "lr": cfg.lr}
    assert (cfg.epochs, cfg.batch_size, cfg.base_batch_size) == (c["max_epochs"], c["batch_size"], c["base_batch_size"])
    warmup, steps = c["param_scheduler"]
    assert warmup == {
        "type": "LinearLR",
        "begin": 0,
        "end": cfg.warmup_iters,
        "start_factor": cfg.warmup_factor,
        "by_epoch": False,
    }
    assert steps["milestones"] == list(cfg.milestones) and steps["gamma"] == cfg.gamma and steps["by_epoch"]
    assert steps["end"] == cfg.epochs
    assert cfg.losses == ("mspn_levels",)
    head, a = c["head"], cfg.model.backbone_args
    kernels, levels = megvii_levels(a["num_stages"], a["num_units"])
    assert list(levels) == head["level_indices"] and [x["kernel_size"] for x in c["codec"]] == list(kernels)
    units = a["num_units"]
    expect = ([{"type": "KeypointMSELoss", "loss_weight": MSPN_MSE_WEIGHT}] * (units - 1)) + [
        {"type": "KeypointOHKMMSELoss", "loss_weight": 1.0}
    ]
    assert c["losses"] == expect * a["num_stages"]
    # MSPN: torchvision://resnet50 (stem and downsample paths, MSPN.init_weights); RSN: no init_cfg (random)
    ckpt = c["backbone"].get("init_cfg", {}).get("checkpoint")
    assert (cfg.init, ckpt) in (("imagenet", "torchvision://resnet50"), (None, None))
    assert (cfg.init == "imagenet") == (cfg.model.backbone == "mspn") and not cfg.init_backbone_only
    pipeline = [t["type"] for t in c["train_pipeline"]]
    assert "RandomHalfBody" in pipeline and cfg.augment == AugmentConfig()
    assert next(t for t in c["train_pipeline"] if t["type"] == "GenerateTarget")["multilevel"]
    evaluator = EVALUATORS[cfg.model.mmpose_config]  # CocoMetric(nms_mode='none')
    assert evaluator["type"] == "CocoMetric" and (evaluator["nms_mode"] == "oks_nms") == cfg.val_oks_nms


def test_ohkm_loss_matches_mmpose():
    g = load_npz(GOLDEN / "train_loss.npz")
    pred = _f64("mspn_train/ohkm_pred", (3, 17, 8, 6))
    target = _f64("mspn_train/ohkm_target", (3, 17, 8, 6), square=True)
    loss = keypoint_ohkm_mse_loss(pred, target, _weights("mspn_train/ohkm_weights", (3, 17)))
    assert abs(float(loss) - float(g["ohkm"])) <= PARITY_FP64 * max(1.0, abs(float(g["ohkm"])))
    with pytest.raises(ValueError, match="topk"):
        keypoint_ohkm_mse_loss(pred[:, :5], target[:, :5], torch.ones(3, 5))


@pytest.mark.parametrize("stages,units", [(1, 4), (2, 2), (3, 4)])
def test_mspn_head_loss_matches_mmpose(stages, units):
    """``train_forward`` + ``pose_loss(("mspn_levels",))`` with the kind's ``levels`` == ``MSPNHead.loss``."""
    from models.heads.mspn import KIND, MSPNHead

    g = load_npz(GOLDEN / "train_loss.npz")
    tag = f"{stages}x{units}"
    head = fill(MSPNHead(stages, units, (16, 12), 8, 17)).double()
    feats = [
        [_f64(f"mspn_train/feat_{tag}_{s}_{u}", (2, 8, 4 * 2**u, 3 * 2**u)) for u in range(units)]
        for s in range(stages)
    ]
    outputs = KIND.train_forward(head, feats)
    assert outputs["level_heatmaps"].shape == (stages * units, 2, 17, 16, 12)
    levels = KIND.loss_kwargs(head)["levels"]
    num_levels = max(levels[0]) + 1
    targets = {
        "level_heatmaps": _f64(f"mspn_train/target_{tag}", (2, num_levels, 17, 16, 12), square=True),
        "keypoint_weights": _weights(f"mspn_train/weights_{tag}", (2, 17)),
    }
    with torch.no_grad():
        total, _ = pose_loss(("mspn_levels",), outputs, targets, **KIND.loss_kwargs(head))
    want = float(g[f"loss_kpt_{tag}"])
    print(f"[mspn-train] MSPNHead.loss {tag}: relative deviation {abs(float(total) - want) / want:.3g}")
    assert abs(float(total) - want) <= PARITY_FP64 * want
    with pytest.raises(ValueError, match="needs levels"):
        pose_loss(("mspn_levels",), outputs, targets)


def test_multilevel_targets_are_megvii_per_kernel():
    kp = np.array([[[10.0, 20.0], [100.0, 200.0], [191.0, 255.0], [-5.0, 4.0], [50.0, 60.0]]], np.float32)
    vis = np.array([[1, 1, 1, 1, 0]], np.float32)
    kernels, levels = megvii_levels(3, 4)
    assert kernels == (15, 11, 9, 7, 5) and levels == (0, 1, 2, 3) * 2 + (1, 2, 3, 4)
    enc = MultiLevelMegviiHeatmap((192, 256), (48, 64), kernels).encode(kp, vis)
    assert enc["level_heatmaps"].shape == (5, 5, 64, 48) and enc["level_heatmaps"].dtype == np.float32
    for i, k in enumerate(kernels):
        one = MegviiHeatmap((192, 256), (48, 64), k).encode(kp, vis)
        np.testing.assert_array_equal(enc["level_heatmaps"][i], one["heatmaps"])
        np.testing.assert_array_equal(enc["keypoint_weights"], one["keypoint_weights"])
    np.testing.assert_array_equal(enc["heatmaps"], enc["level_heatmaps"][-1])
    assert megvii_levels(1, 2) == ((7, 5), (0, 1))
    with pytest.raises(ValueError, match="1-4 units"):
        megvii_levels(2, 5)


@pytest.mark.parametrize("name", ["td-hm_2xmspn50", "td-hm_rsn18"])
def test_config_smoke_trains_two_steps(name, coco_tiny):
    """Multi-level targets, every level's loss, two Adam steps at small width: finite loss, weights move."""
    from torch.utils.data import DataLoader

    from models.pose_model import TopdownPoseModel
    from training.data import CocoTopDown
    from training.loop import TrainForward, TrainState, WarmupMultiStep, train_one_epoch

    cfg = get_train_config(name)
    small = {"unit_channels": 16, "num_units": 2, "num_blocks": [1, 2]}
    model_cfg = cfg.model.replace(backbone_args={**cfg.model.backbone_args, **small})
    data = CocoTopDown(coco_tiny / "test_coco.json", coco_tiny, model_cfg, train=True, augment=cfg.augment)
    torch.manual_seed(0)
    model = TopdownPoseModel(model_cfg)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loader = DataLoader(torch.utils.data.Subset(data, range(4)), batch_size=2)
    batch = next(iter(loader))
    stages = model_cfg.backbone_args["num_stages"]
    assert batch["level_heatmaps"].shape == (2, 2 + (stages > 1), 17, 64, 48)
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
    assert state.global_iter == 2 and all(np.isfinite(r["loss"]) for r in records)
    moved = [k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.equal(v, before[k])]
    assert any(k.startswith("backbone.") for k in moved)
    assert all(any(k.startswith(f"head.predict_layers.{i}.") for k in moved) for i in range(stages * 2))


def test_mspn_starts_from_imagenet_resnet50_as_mmpose(tmp_path, monkeypatch):
    """MMPose ``MSPN.init_weights`` with ``torchvision://resnet50``: ``conv1`` / ``bn1`` into ``top``, ``layer*`` (with
    ``downsample.0/1`` -> ``downsample.conv/bn``) into EVERY stage's downsample path, the rest as initialised; a
    smaller MSPN (not ResNet-50's blocks) is refused. The ImageNet file is a torchvision-layout dict of our ResNet-50 (same key names)."""
    import models.checkpoints.load as load
    from models.checkpoints import CheckpointError, load_imagenet_backbone
    from models.pose_model import build_pose_model
    from models.zoo import get_config

    tv = {
        k: torch.randn_like(v) if v.is_floating_point() else v
        for k, v in build_pose_model("td-hm_res50").backbone.state_dict().items()
    }
    tv["fc.weight"], tv["fc.bias"] = torch.zeros(1000, 2048), torch.zeros(1000)
    path = tmp_path / "resnet50-0676ba61.pth"
    torch.save(tv, path)
    monkeypatch.setattr(
        load, "imagenet_weights", lambda depth, base, *a, **k: path if (depth, base) == (50, 64) else None
    )
    torch.manual_seed(0)
    model = build_pose_model("td-hm_2xmspn50")
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    assert load_imagenet_backbone(model, tmp_path, offline=True) == path
    b = model.backbone.state_dict()
    assert torch.equal(b["top.top.0.conv.weight"], tv["conv1.weight"]) and torch.equal(
        b["top.top.0.bn.running_var"], tv["bn1.running_var"]
    )
    for s in (0, 1):
        d = f"multi_stage_mspn.{s}.downsample."
        assert torch.equal(b[d + "layer3.5.conv2.weight"], tv["layer3.5.conv2.weight"])
        assert torch.equal(b[d + "layer2.0.downsample.conv.weight"], tv["layer2.0.downsample.0.weight"])
        assert torch.equal(b[d + "layer4.0.downsample.bn.bias"], tv["layer4.0.downsample.1.bias"])
    loaded = {k for k in b if not torch.equal(b[k], before[k])}
    untouched = [k for k in b if "downsample.layer" not in k and not k.startswith("top.") and k in loaded]
    assert not untouched  # the units' skip / up-sampling layers keep their initialisation
    cfg = get_config("td-hm_mspn50")
    small = build_pose_model(cfg.replace(backbone_args={**cfg.backbone_args, "num_units": 2, "num_blocks": [1, 2]}))
    with pytest.raises(CheckpointError, match="misfit"):
        load_imagenet_backbone(small, tmp_path, offline=True)
