"""Training configs of the ResNeSt / SCNet SimpleBaselines (``models.zoo.families.resnest_scnet``): two Adam steps of
each backbone's config on coco-tiny's people at small width (the recipe itself -- batch, base batch, lr, schedule,
loss, codec, augmentation, init -- is checked against MMPose's config, tests/data/mmpose_resnest/train_configs.json,
by ``tests/training/test_configs.py::test_configs_follow_mmpose``)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tests.small_models import small_backbone  # noqa: E402

SMOKE = ("td-hm_resnest50", "td-hm_scnet101_coco-384x288")


def test_batches_follow_the_config_names():
    """``8xb<N>`` in MMPose's config name is the batch per GPU; the 384x288 8xb16/8xb32 configs scale lr from a
    smaller base batch (MMPose ``auto_scale_lr``), as tests/data/mmpose_resnest/train_configs.json records."""
    from models.zoo.families.resnest_scnet import ENTRIES
    from training.configs import get_train_config

    for entry in ENTRIES:
        cfg = get_train_config(entry.name)
        assert f"_8xb{cfg.batch_size}-" in entry.mmpose_config
        assert cfg.init is None and cfg.losses == ("keypoint_mse",) and cfg.model == entry
    assert get_train_config("td-hm_resnest200_coco-384x288").base_batch_size == 128
    assert get_train_config("td-hm_scnet101_coco-384x288").base_batch_size == 512


@pytest.mark.parametrize("name", SMOKE)
def test_config_smoke_trains_two_steps(name, coco_tiny):
    """The config's augmentation, codec and loss through two training steps at small width (depth 50): finite loss,
    backbone and head weights move."""
    from torch.utils.data import DataLoader

    from models.pose_model import TopdownPoseModel
    from training.configs import get_train_config
    from training.data import CocoTopDown
    from training.loop import TrainForward, TrainState, WarmupMultiStep, train_one_epoch

    cfg = get_train_config(name)
    model_cfg = small_backbone(cfg.model, resnet_depth=50).replace(deconv_out_channels=(16, 16, 16))
    data = CocoTopDown(coco_tiny / "test_coco.json", coco_tiny, model_cfg, train=True, augment=cfg.augment)
    torch.manual_seed(0)
    model = TopdownPoseModel(model_cfg)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loader = DataLoader(torch.utils.data.Subset(data, range(4)), batch_size=2)
    target = next(iter(loader))
    assert any(tuple(v.shape[-2:]) == model_cfg.heatmap_size[::-1] for v in target.values() if hasattr(v, "shape"))
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
    assert any(k.startswith("backbone.") for k in moved) and any(k.startswith("head.") for k in moved)
