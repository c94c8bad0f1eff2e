"""The hourglass / CPM training configs against MMPose's own config files (tests/data/mmpose_hgcpm/train_configs.json,
read by MMPose's ``Config``), and a two-step smoke run of each at small width (every stage supervised)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from models.zoo.families.hourglass_cpm import ENTRIES  # noqa: E402
from training.configs import get_train_config  # noqa: E402
from training.transforms import AugmentConfig  # noqa: E402

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "mmpose_hgcpm"
NAMES = sorted(e.name for e in ENTRIES)


@pytest.mark.parametrize("name", NAMES)
def test_recipe_equals_mmpose_config(name):
    t = json.loads((GOLDEN / "train_configs.json").read_text())[name]
    cfg = get_train_config(name)
    assert (t["optimizer"], t["lr"], t["base_batch_size"], t["batch_size"]) == (
        "Adam",
        cfg.lr,
        cfg.base_batch_size,
        cfg.batch_size,
    )
    assert (t["max_epochs"], t["val_interval"]) == (cfg.epochs, cfg.val_interval)
    assert t["warmup"] == {
        "type": "LinearLR",
        "start_factor": cfg.warmup_factor,
        "end": cfg.warmup_iters,
        "by_epoch": False,
    }
    assert t["steps"] == {"type": "MultiStepLR", "milestones": list(cfg.milestones), "gamma": cfg.gamma}
    assert t["loss"]["type"] == "KeypointMSELoss" and cfg.losses == ("keypoint_mse_stages",)  # per stage, summed
    assert t["init"] is None and cfg.init is None  # the backbones' own init, no pretrained weights
    assert t["train_pipeline"] == [
        "LoadImage",
        "GetBBoxCenterScale",
        "RandomFlip",
        "RandomHalfBody",
        "RandomBBoxTransform",
        "TopdownAffine",
        "GenerateTarget",
        "PackPoseInputs",
    ]
    assert cfg.augment == AugmentConfig()
    assert t["evaluator"] == {"type": "CocoMetric", "score_mode": None} and cfg.model.score_mode == "bbox_keypoint"


@pytest.mark.parametrize("name", ["td-hm_hourglass52_coco-256x256", "td-hm_cpm_coco-256x192"])
def test_config_smoke_trains_two_steps(name, coco_tiny):
    """The config's augmentation, codec and per-stage loss through the training step on the golden's small variant:
    two Adam steps on coco-tiny's people move every stage's weights and give a finite loss."""
    from torch.utils.data import DataLoader

    from models.pose_model import TopdownPoseModel
    from training.data import CocoTopDown
    from training.loop import TrainForward, TrainState, WarmupMultiStep, train_one_epoch

    cfg = get_train_config(name)
    small = json.loads((GOLDEN / "small.json").read_text())[name]
    model_cfg = cfg.model.replace(input_size=tuple(small["input_size"]), backbone_args=small["backbone_args"])
    data = CocoTopDown(coco_tiny / "test_coco.json", coco_tiny, model_cfg, train=True, augment=cfg.augment)
    torch.manual_seed(0)
    model = TopdownPoseModel(model_cfg)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, WarmupMultiStep(2, warmup_iters=1))
    records, state = [], TrainState()
    train_one_epoch(
        TrainForward(model, cfg.losses),
        DataLoader(torch.utils.data.Subset(data, range(4)), batch_size=2),
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
    moved = {k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.equal(v, before[k])}
    stages = model.head.num_stages
    if name.startswith("td-hm_hourglass"):  # every stack's head layer and hourglass are trained
        assert all(f"head.multi_final_layers.{i}.weight" in moved for i in range(stages))
        assert all(any(k.startswith(f"backbone.hourglass_modules.{i}.") for k in moved) for i in range(stages))
    else:  # CPM: every refinement stage (the heatmaps are the backbone's)
        assert any(k.startswith("backbone.stem.") for k in moved)
        assert all(any(k.startswith(f"backbone.out_convs.{i}.") for k in moved) for i in range(stages - 1))
