"""The Lite-HRNet training recipes (``training.configs.litehrnet``) against MMPose 1.3.2's configs
(``tests/data/mmpose_litehrnet/train_configs.json``, written by make_litehrnet_golden.py), and a two-step smoke run
of each at narrow width (16-channel stem and first branch) on coco-tiny."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("pycocotools")

from models.zoo.families.litehrnet import ENTRIES  # noqa: E402
from training.configs import get_train_config  # noqa: E402

RECIPES = json.loads(
    (Path(__file__).resolve().parents[1] / "data" / "mmpose_litehrnet" / "train_configs.json").read_text()
)
NAMES = [c.name for c in ENTRIES]


@pytest.mark.parametrize("name", NAMES)
def test_litehrnet_recipe_follows_mmpose(name):
    cfg = get_train_config(name)
    r = RECIPES[cfg.model.mmpose_config]
    assert r["optimizer"] == "Adam" and cfg.losses == ("keypoint_mse",) and r["losses"] == ["KeypointMSELoss"]
    assert (cfg.epochs, cfg.val_interval, cfg.batch_size, cfg.base_batch_size, cfg.lr) == (
        r["max_epochs"],
        r["val_interval"],
        r["batch_size"],
        r["base_batch_size"],
        r["lr"],
    )
    assert r["warmup"] == {"type": "LinearLR", "start_factor": cfg.warmup_factor, "end": cfg.warmup_iters,
                           "by_epoch": False}  # fmt: skip
    assert r["steps"] == {"type": "MultiStepLR", "milestones": list(cfg.milestones), "gamma": cfg.gamma}
    assert r["init"] is None and cfg.init is None  # from scratch, MMPose's LiteHRNet initialisation
    a = cfg.augment
    assert a.enabled and a.half_body == ("RandomHalfBody" in r["train_pipeline"])
    bt = r["bbox_transform"]
    assert (a.rotate_factor, list(a.scale_factor)) == (bt["rotate_factor"], bt["scale_factor"])
    assert set(bt) == {"rotate_factor", "scale_factor"}  # the other arguments are MMPose's defaults (ours too)
    assert r["codec"]["input_size"] == list(cfg.model.input_size) and r["codec"]["sigma"] == cfg.model.sigma
    assert r["evaluator"] == {"type": "CocoMetric", "score_mode": None} and cfg.model.score_mode == "bbox_keypoint"


def narrow(model_cfg):
    extra = json.loads(json.dumps(model_cfg.backbone_args["extra"]))
    extra["stem"].update(stem_channels=16, out_channels=16)
    extra["stages_spec"]["num_channels"] = [[16 * 2**b for b in range(len(c))] for c in extra["stages_spec"]["num_channels"]]  # fmt: skip
    return model_cfg.replace(backbone_args={"extra": extra})


@pytest.mark.slow
@pytest.mark.parametrize("name", ["td-hm_litehrnet-18", "td-hm_litehrnet-30_coco-384x288"])
def test_litehrnet_smoke_trains_two_steps(name, coco_tiny):
    """The recipe's data, augmentation, codec and loss through two Adam steps of a narrow model: finite losses, and
    backbone and head weights move."""
    from torch.utils.data import DataLoader

    from models.pose_model import TopdownPoseModel
    from training.data import CocoTopDown
    from training.loop import TrainForward, TrainState, WarmupMultiStep, train_one_epoch

    cfg = get_train_config(name)
    model_cfg = narrow(cfg.model)
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
    assert state.global_iter == 2 and all(np.isfinite(r["loss"]) for r in records)
    moved = [k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.equal(v, before[k])]
    assert any(k.startswith("backbone.stage2.") for k in moved) and any(k.startswith("head.") for k in moved)
