"""Training configs of the mobile zoo family (``models.zoo.families.mobile``) against MMPose's own config files
(tests/data/mmpose_mobile/train_configs.json, read by MMPose's ``Config`` in make_mobile_golden.py), and a two-step
smoke run of each backbone at the parity tests' small widths.

The entries take the ``SimpleBaseline2D`` / ``RLE`` collection recipes of ``training.configs``: optimizer, lr, batch,
schedule, loss, codec, augmentation and evaluator equal MMPose's. The initialisation does not yet: MMPose starts the
heatmap models from mmcls's ImageNet MobileNetV2 / ShuffleNet checkpoints (``mmcls://mobilenet_v2`` ...) and the RLE
model's backbone from MMPose 0.x's ``mobilenetv2_coco_256x192`` checkpoint, while the collection recipes name
torchvision's ImageNet ResNet (``init="imagenet"``, which fails loudly on these backbones: the file's keys do not fit);
:func:`test_initialisation_follows_mmpose` records that gap as a strict xfail.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from models.zoo.families.mobile import ENTRIES  # noqa: E402
from tests.models.test_mobile_parity import SMALL  # noqa: E402
from training.configs import get_train_config  # noqa: E402
from training.transforms import AugmentConfig  # noqa: E402

RECIPES = json.loads(
    (Path(__file__).resolve().parents[1] / "data" / "mmpose_mobile" / "train_configs.json").read_text()
)
NAMES = [c.name for c in ENTRIES]
LOSS_NAMES = {"KeypointMSELoss": "keypoint_mse", "RLELoss": "rle"}


@pytest.mark.parametrize("name", NAMES)
def test_recipe_follows_mmpose(name):
    cfg = get_train_config(name)
    r = RECIPES[cfg.model.mmpose_config]
    assert cfg.model == cfg.model.replace(name=name) and cfg.model.backbone_args
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
    a = cfg.augment
    assert a.enabled and a.half_body == ("RandomHalfBody" in r["train_pipeline"])
    assert a.shift_prob == (r["shift_prob"] if r["shift_prob"] is not None else AugmentConfig().shift_prob)
    assert r["codec"]["input_size"] == list(cfg.model.input_size)
    assert r["codec"].get("sigma", cfg.model.sigma) == cfg.model.sigma
    assert r["evaluator"]["type"] == "CocoMetric"
    assert (r["evaluator"]["score_mode"] or "bbox_keypoint") == cfg.model.score_mode
    assert r["save_best"] == "coco/AP"


@pytest.mark.xfail(
    strict=True,
    reason="MMPose's initial weights (mmcls ImageNet MobileNetV2 / ShuffleNet; RLE: MMPose 0.x mobilenetv2_coco) "
    "are not implemented",
)
@pytest.mark.parametrize("name", NAMES)
def test_initialisation_follows_mmpose(name):
    cfg = get_train_config(name)
    ckpt = RECIPES[cfg.model.mmpose_config]["init"]["checkpoint"]
    assert ckpt.startswith("mmcls://") or "mobilenetv2_coco_256x192" in ckpt
    assert cfg.init not in ("imagenet", None)


@pytest.mark.parametrize("name", ["td-hm_mobilenetv2", "td-hm_shufflenetv1", "td-hm_shufflenetv2", NAMES[-1]])
def test_smoke_trains_two_steps(name, coco_tiny):
    """The config's data, augmentation, codec and loss through two Adam steps on coco-tiny's people at small width:
    finite losses, backbone and head weights move (and RLE's flow)."""
    from torch.utils.data import DataLoader, Subset

    from models.pose_model import TopdownPoseModel
    from training.data import CocoTopDown
    from training.loop import TrainForward, TrainState, WarmupMultiStep, train_one_epoch

    cfg = get_train_config(name)
    model_cfg = cfg.model.replace(backbone_args=SMALL[cfg.model.backbone], deconv_out_channels=(16, 16, 16))
    data = CocoTopDown(coco_tiny / "test_coco.json", coco_tiny, model_cfg, train=True, augment=cfg.augment)
    torch.manual_seed(0)
    model = TopdownPoseModel(model_cfg)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, WarmupMultiStep(2, warmup_iters=1))
    records, state = [], TrainState()
    train_one_epoch(
        TrainForward(model, cfg.losses),
        DataLoader(Subset(data, range(4)), batch_size=2),
        opt,
        sched,
        torch.amp.GradScaler("cpu", enabled=False),
        state,
        torch.device("cpu"),
        log_interval=1,
        log=records.append,
    )
    assert state.global_iter == 2 and len(records) == 2
    assert all(np.isfinite(r["loss"]) for r in records) and set(cfg.losses) <= set(records[0])
    moved = [k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.equal(v, before[k])]
    assert any(k.startswith("backbone.layer") for k in moved) and any(k.startswith("head.") for k in moved)
    if cfg.model.head_kind == "rle":
        assert any(".flow_model." in k for k in moved)
