"""Load checkpoints into our model with strict key checking: a whole pose model (:func:`load_pose_checkpoint`,
MMPose's files or ours), or only its backbone (:func:`load_backbone_weights`, :func:`load_imagenet_backbone`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from core.hashing import sha256_file
from models.checkpoints.checkpoint_files import FORMAT, CheckpointError, extract_state_dict, json_safe, read_checkpoint
from models.checkpoints.downloads import imagenet_hrnet_weights, imagenet_weights, load_pretrained
from models.checkpoints.remap import (
    imagenet_hrnet_to_backbone_keys,
    imagenet_to_backbone_keys,
    imagenet_to_mspn_keys,
    mmpose_v1_keys,
)
from models.pose_model import TopdownPoseModel, build_pose_model
from models.zoo import ZOO, PoseModelConfig, get_config
from models.zoo.families.hrnet import hrnet_width


def load_imagenet_backbone(
    model: TopdownPoseModel, cache_dir: str | os.PathLike, offline: bool = False, progress: bool = True
) -> Path:
    """Initialise ``model.backbone`` with torchvision's ImageNet weights of its depth (MMPose
    ``init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')``), downloaded by URL with its
    SHA-256 prefix checked (:data:`models.zoo.IMAGENET_RESNET`) into ``cache_dir``; an HRNet backbone with MMPose's
    ImageNet HRNet of its width (``models.zoo.families.hrnet.IMAGENET_HRNET``, the configs' backbone ``init_cfg``);
    an MSPN backbone's stem and downsample paths with torchvision's ResNet-50 (MMPose ``MSPN.init_weights``).

    Args:
        model: a :class:`TopdownPoseModel` with ``backbone_base_channels`` 64 (the torchvision widths), or an HRNet
            of a published width (W32, W48).
        cache_dir: the checkpoint folder (``Settings.cache.checkpoints``).
        offline: never download (a missing file raises FileNotFoundError naming the URL and the path).
        progress: download progress bar.

    Returns:
        The weights file used.

    Raises:
        ValueError: no ImageNet weights for this depth / width.
        FileNotFoundError: offline or the download failed (the message names the URL and where to put the file).
        ChecksumError: wrong hash. CheckpointError: the file's keys / shapes do not fit the backbone.
    """
    cfg = model.config
    if cfg.backbone == "hrnet":
        dest = imagenet_hrnet_weights(hrnet_width(cfg), cache_dir, offline, progress)
        keys = set(model.backbone.state_dict())
        _load_backbone(model, imagenet_hrnet_to_backbone_keys(extract_state_dict(read_checkpoint(dest)), keys), dest)
        return dest
    if cfg.backbone == "mspn":
        dest = imagenet_weights(50, 64, cache_dir, offline, progress)
        _load_mspn_backbone(model, extract_state_dict(read_checkpoint(dest)), dest)
        return dest
    dest = imagenet_weights(cfg.backbone_depth, cfg.backbone_base_channels, cache_dir, offline, progress)
    _load_backbone(model, imagenet_to_backbone_keys(extract_state_dict(read_checkpoint(dest))), dest)
    return dest


def _load_mspn_backbone(model: TopdownPoseModel, state_dict: Mapping[str, torch.Tensor], source: Path) -> None:
    """torchvision ResNet-50 weights into an MSPN backbone's stem and every stage's downsample path
    (:func:`models.checkpoints.remap.imagenet_to_mspn_keys`, MMPose ``MSPN.init_weights``); the other MSPN layers
    keep their initialisation, as MMPose's non-strict load leaves them.

    Raises:
        CheckpointError: a mapped key the backbone lacks, or a shape that differs (a small-width MSPN, or not a
            ResNet-50); nothing is loaded then.
    """
    own = model.backbone.state_dict()
    mapped = {
        k[len("backbone.") :]: v
        for k, v in imagenet_to_mspn_keys(state_dict, len(model.backbone.multi_stage_mspn)).items()
    }
    bad = [k for k, v in mapped.items() if k not in own or tuple(own[k].shape) != tuple(v.shape)]
    if bad or not mapped:
        raise CheckpointError(
            f"{source}: not ResNet-50 weights for this MSPN backbone ({len(bad)} keys misfit, e.g. {bad[:3]})"
        )
    model.backbone.load_state_dict(mapped, strict=False)


def _load_backbone(model: TopdownPoseModel, state_dict: Mapping[str, torch.Tensor], source: Path) -> None:
    """Strictly load the ``backbone.*`` entries of ``state_dict`` (all of them, nothing else) into ``model.backbone``.

    Raises:
        CheckpointError: keys / shapes that do not fit (``source`` named).
    """
    holder = nn.Module()
    holder.backbone = model.backbone
    try:
        check_state_dict(holder, state_dict)
    except CheckpointError as e:
        raise CheckpointError(f"{source}: {e}") from None
    model.backbone.load_state_dict({k[len("backbone.") :]: v for k, v in state_dict.items()}, strict=True)


def load_backbone_weights(model: TopdownPoseModel, path: str | os.PathLike) -> Path:
    """Initialise ``model.backbone`` from the ``backbone.*`` weights of a pose checkpoint (MMPose's or ours), as
    MMPose's ``init_cfg=dict(type='Pretrained', prefix='backbone.', checkpoint=...)`` does; the head is left as it is.

    Args:
        model: a :class:`TopdownPoseModel`.
        path: the checkpoint file.

    Returns:
        ``path``.

    Raises:
        FileNotFoundError: no such file. CheckpointError: unreadable, or its backbone keys / shapes do not fit.
    """
    path = Path(path)
    sd = mmpose_v1_keys(extract_state_dict(read_checkpoint(path)))
    _load_backbone(model, {k: v for k, v in sd.items() if k.startswith("backbone.")}, path)
    return path


def check_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], max_listed: int = 20) -> None:
    """Strict comparison of ``state_dict`` with ``model.state_dict()``.

    Raises:
        CheckpointError: listing (up to ``max_listed`` each) the missing keys, the unexpected keys and
            the keys whose shapes differ (with both shapes).
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    misshaped = [
        f"{k}: checkpoint {list(state_dict[k].shape)} vs model {list(expected[k].shape)}"
        for k in expected
        if k in state_dict and tuple(state_dict[k].shape) != tuple(expected[k].shape)
    ]
    if not (missing or unexpected or misshaped):
        return

    def fmt(title: str, items: list[str]) -> str:
        more = f" ... and {len(items) - max_listed} more" if len(items) > max_listed else ""
        return f"  {title} ({len(items)}): " + ", ".join(items[:max_listed]) + more

    parts = [fmt(t, i) for t, i in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)) if i]
    raise CheckpointError("state dict does not match the model:\n" + "\n".join(parts))


def load_state_dict_strict(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> nn.Module:
    """:func:`check_state_dict`, then ``model.load_state_dict(strict=True)``; returns ``model``."""
    check_state_dict(model, state_dict)
    model.load_state_dict(dict(state_dict), strict=True)
    return model


def config_for_mmpose_file(path: str | os.PathLike, digest: str | None = None) -> PoseModelConfig:
    """The zoo entry an MMPose checkpoint file belongs to: the entry whose SHA-256 prefix starts the file's digest,
    else the one whose prefix is the 8 hex digits in the file name (``...-<sha8>[_<date>].pth``, OpenMMLab's
    ``publish_model`` convention).

    Args:
        path: the file.
        digest: its hex SHA-256 (computed when None).

    Raises:
        CheckpointError: neither matches an entry (the message lists the entries).
    """
    path = Path(path)
    digest = sha256_file(path) if digest is None else digest
    for cfg in ZOO.values():
        if cfg.sha256_prefix and digest.startswith(cfg.sha256_prefix):
            return cfg
    m = re.search(r"-([0-9a-f]{8})(?:_\d{8})?\.pth$", path.name)
    if m:
        for cfg in ZOO.values():
            if cfg.sha256_prefix == m.group(1):
                return cfg
    raise CheckpointError(
        f"cannot tell which model config {path.name} belongs to (its SHA-256 {digest[:8]}... matches no zoo "
        f"entry); pass config= one of {sorted(ZOO)} or a PoseModelConfig"
    )


def _checkpoint_path(
    path_or_zoo_name: str | os.PathLike,
    cache_dir: str | os.PathLike | None,
    config: str | PoseModelConfig | dict | None,
    offline: bool,
) -> tuple[Path, str | PoseModelConfig | dict | None]:
    """The checkpoint file of :func:`load_pose_checkpoint`'s argument (a zoo name's published file, downloaded if
    needed, or a path) and the config override (a zoo name's own when none was given)."""
    name = os.fspath(path_or_zoo_name)
    if name in ZOO and not Path(name).is_file():
        if cache_dir is None:
            raise ValueError(f"zoo name {name!r} needs cache_dir (the checkpoint folder, Settings().cache.checkpoints)")
        path = load_pretrained(name, cache_dir, offline=offline)
        if config is None:
            config = name
        return path, config
    return Path(name), config


def _checkpoint_config(
    ckpt: Mapping, path: Path, digest: str, config: str | PoseModelConfig | dict | None
) -> tuple[str, PoseModelConfig]:
    """``(format, config)`` of a read checkpoint: ``"poseserve"`` (ours, config stored in the file) or ``"mmpose"``
    (config found by :func:`config_for_mmpose_file`); ``config`` (zoo name, config or dict) overrides either."""
    cfg = None
    if ckpt.get("format") == FORMAT:
        fmt = "poseserve"
        if config is None:
            try:
                cfg = PoseModelConfig.from_dict(ckpt["config"])
            except (KeyError, TypeError, ValueError) as e:
                raise CheckpointError(f"{path}: invalid stored config: {e}") from e
    else:
        fmt = "mmpose"
        cfg = None if config is not None else config_for_mmpose_file(path, digest)
    if config is not None:
        cfg = get_config(config) if isinstance(config, str) else config
        if isinstance(cfg, dict):
            cfg = PoseModelConfig.from_dict(cfg)
    return fmt, cfg


def load_pose_checkpoint(
    path_or_zoo_name: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
    config: str | PoseModelConfig | dict | None = None,
    offline: bool = False,
) -> tuple[TopdownPoseModel, dict]:
    """Build the right model and load a checkpoint into it with strict key checking.

    Args:
        path_or_zoo_name: a zoo name (the published MMPose checkpoint is taken from / downloaded into
            ``cache_dir``, see :func:`load_pretrained`) or a path to an MMPose ``.pth`` or to one of ours.
        cache_dir: checkpoint folder for zoo names (``Settings.cache.checkpoints``); required for them.
        offline: never download a zoo checkpoint.
        config: override the config (zoo name, :class:`PoseModelConfig` or dict). Needed for an MMPose
            file that the zoo does not know (its name and hash match no entry).

    Returns:
        ``(model, metadata)``: the model in eval mode, and a JSON-able dict with ``format``
        (``"mmpose"`` or ``"poseserve"``), ``config`` (the config dict), ``config_name``,
        ``checkpoint`` (file path), ``sha256`` (of the file), ``published`` (zoo AP/AR, may be empty) and
        ``meta`` (the file's own metadata).

    Raises:
        FileNotFoundError: no such file / download impossible (the message says where to put it).
        CheckpointError: unreadable file, unknown config, or keys / shapes that do not match.
    """
    path, config = _checkpoint_path(path_or_zoo_name, cache_dir, config, offline)
    ckpt = read_checkpoint(path)
    digest = sha256_file(path)
    fmt, cfg = _checkpoint_config(ckpt, path, digest, config)
    meta = ckpt.get("meta", {})

    model = build_pose_model(cfg)
    state_dict = extract_state_dict(ckpt)
    converted = None
    if fmt == "mmpose":
        renamed = mmpose_v1_keys(state_dict)
        if list(renamed) != list(state_dict):
            converted = "MMPose 0.x keys renamed as MMPose 1.x does (keypoint_head -> head, loss -> loss_module)"
        state_dict = renamed
    # keys written for another head (an integral model initialised from a td-hm checkpoint, as MMPose does)
    state_dict, remapped = model.kind.remap_state_dict(state_dict, model)
    converted = "; ".join(x for x in (converted, remapped) if x) or None
    try:
        load_state_dict_strict(model, state_dict)
    except CheckpointError as e:
        raise CheckpointError(f"{path} (config {cfg.name!r}): {e}") from None
    metadata = {
        "format": fmt,
        "config_name": cfg.name,
        "config": cfg.to_dict(),
        "checkpoint": str(path),
        "sha256": digest,
        "published": dict(cfg.published),
        "meta": json_safe(meta),
    }
    if converted:
        metadata["converted"] = converted
    return model.eval(), metadata
