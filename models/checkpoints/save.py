"""Save our checkpoint format (:data:`~models.checkpoints.checkpoint_files.FORMAT`): config + state dict + metadata."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch

from models.checkpoints.checkpoint_files import FORMAT, json_safe
from models.pose_model import TopdownPoseModel


def save_pose_checkpoint(
    path: str | os.PathLike, model: TopdownPoseModel, meta: Mapping | None = None, extra: Mapping | None = None
) -> Path:
    """Write our checkpoint format: config + state dict + metadata (JSON-able ``meta``, e.g. epoch, AP).

    Args:
        path: the file (parent folders are created). Written to ``<path>.tmp`` first and renamed, so an
            interrupted save never leaves a truncated checkpoint.
        model: the model (its ``config`` and weights; tensors are copied to the CPU).
        meta: JSON-able metadata (training: ``config_name``, ``epoch``, ``AP`` ...).
        extra: more top-level entries in MMPose's checkpoint layout (training state: ``optimizer``,
            ``param_schedulers``, ``scaler``, ``train_state``); plain tensors / numbers / containers only, so the
            file still loads with ``weights_only=True``.

    Returns:
        The path written. The file loads back with :func:`load_pose_checkpoint` (no config needed).

    Raises:
        ValueError: an ``extra`` key that clashes with the format's own keys.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": json_safe(dict(meta or {})),
    }
    clash = sorted(set(extra or {}) & set(payload))
    if clash:
        raise ValueError(f"extra checkpoint entries clash with the format's keys: {clash}")
    payload.update(extra or {})
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path
