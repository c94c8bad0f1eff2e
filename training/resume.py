"""What a training run writes to continue and to be used (``last.pth``, ``best.pth``, ``epoch_<N>.pth``: our checkpoint
format with MMPose's training-state keys), and ``--resume``, which reads it back."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from core.errors import UsageError
from models.checkpoints import CheckpointError, load_state_dict_strict, read_checkpoint, save_pose_checkpoint
from models.pose_model import TopdownPoseModel
from training.configs import TrainConfig
from training.loop import BEST_METRIC, TrainState


def save(
    path: Path, model: TopdownPoseModel, cfg: TrainConfig, state: TrainState, value: float | None, full: dict | None
) -> None:
    """Write a checkpoint; ``meta`` names the validation figure by its metric (``AP``: COCO, ``PCK``: MPII)."""
    metric = BEST_METRIC[cfg.model.dataset or "coco"]
    meta = {
        "config_name": cfg.name,
        "epoch": state.epoch,
        "iter": state.global_iter,
        metric: value,
        f"best_{metric}": state.best_ap if state.best_ap >= 0 else None,
        "train_config": cfg.to_dict(),
        "saved": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    save_pose_checkpoint(path, model, meta, extra=full)


def training_state(optimizer, scheduler, scaler, state: TrainState, world: int, batch: int, accumulate: int) -> dict:
    """What ``--resume`` restores, in MMPose's checkpoint keys (``optimizer``, ``param_schedulers``) plus the
    GradScaler, the position (epoch, step in the epoch: the sampler skips what was done) and torch's RNG state."""
    return {
        "optimizer": optimizer.state_dict(),
        "param_schedulers": [scheduler.state_dict()],
        "scaler": scaler.state_dict(),
        "train_state": {
            "epoch": state.epoch,
            "iter_in_epoch": state.iter_in_epoch,
            "global_iter": state.global_iter,
            "best_ap": state.best_ap,
            "best_epoch": state.best_epoch,
            "history": state.history,
            "world_size": world,
            "batch_size": batch,
            "accumulate": accumulate,
        },
        "torch_rng": torch.get_rng_state(),
    }


def resume(
    path: Path, model: TopdownPoseModel, optimizer, scheduler, scaler, world: int, batch: int, accumulate: int
) -> TrainState:
    """Load a :func:`training_state` checkpoint into ``model``, the optimizer, scheduler and GradScaler (and torch's
    RNG); returns the position to go on from.

    Raises:
        CheckpointError: the file holds no training state or does not fit the model.
        ValueError: it was written with another world size x batch x accumulation.
    """
    ckpt = read_checkpoint(path)
    if "train_state" not in ckpt:
        raise CheckpointError(f"{path} holds no training state (optimizer, schedule): cannot resume from it")
    ts = ckpt["train_state"]
    if (ts["world_size"], ts["batch_size"], ts["accumulate"]) != (world, batch, accumulate):
        raise UsageError(
            f"{path} was written by {ts['world_size']} processes x batch {ts['batch_size']} x accumulate "
            f"{ts['accumulate']}; resuming needs the same (got {world} x {batch} x {accumulate})"
        )
    load_state_dict_strict(model, ckpt["state_dict"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["param_schedulers"][0])
    scaler.load_state_dict(ckpt["scaler"])
    torch.set_rng_state(ckpt["torch_rng"])
    return TrainState(
        ts["epoch"], ts["iter_in_epoch"], ts["global_iter"], ts["best_ap"], ts["best_epoch"], list(ts["history"])
    )
