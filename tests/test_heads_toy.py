"""The toy head kind ``simcc_toy`` (models/heads/simcc_toy.py): built, run, decoded and trained through its HeadKind."""

import numpy as np
import torch

from models.heads import HEAD_KINDS, head_kind
from models.pose_model import build_pose_model, scale_head_logits
from models.zoo import get_config
from training.configs import TrainConfig
from training.loop import TrainForward
from training.losses import pose_loss


def test_toy_head_kind_builds_runs_decodes_and_trains():
    assert "simcc_toy" in HEAD_KINDS
    cfg = get_config("td-reg_res50").replace(
        name="toy", head_kind="simcc_toy", backbone_depth=18, backbone_base_channels=8, input_size=(64, 96)
    )
    torch.manual_seed(0)
    model = build_pose_model(cfg)
    crops = np.random.default_rng(0).integers(0, 256, (2, 96, 64, 3), dtype=np.uint8)
    scale_head_logits(model, crops)
    out = model(model.preprocess(torch.from_numpy(crops)))
    assert out.shape == (2, 17, 3)
    kp = head_kind("simcc_toy").decode(cfg, out.detach().numpy())
    assert kp.shape == (2, 17, 3) and (kp[..., 0] < 64).all() and (kp[..., 1] < 96).all()
    flipped = model.predict_keypoints(crops, flip_test=True)
    assert flipped.shape == (2, 17, 3) and np.isfinite(flipped).all()
    # training: targets from its codec, its outputs, the default loss; gradients reach the head
    targets = model.kind.codec(cfg).encode(np.array([[[10.0, 20.0]] * 17]), np.ones((1, 17)))
    targets = {k: torch.from_numpy(np.repeat(v, 2, axis=0)) for k, v in targets.items()}
    train = TrainConfig(name="toy", model=cfg, losses=model.kind.default_losses)
    loss, _ = pose_loss(train.losses, TrainForward(model, train.losses).outputs(torch.from_numpy(crops)), targets)
    loss.backward()
    assert torch.isfinite(loss) and model.head.fc.weight.grad.abs().sum() > 0
