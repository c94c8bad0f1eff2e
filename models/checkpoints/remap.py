"""Key maps from other checkpoints' state dicts to our model's: MMPose 0.x -> 1.x (:func:`mmpose_v1_keys`),
torchvision ResNet -> our backbone (:func:`imagenet_to_backbone_keys`), MMPose's ImageNet HRNet -> ours
(:func:`imagenet_hrnet_to_backbone_keys`), torchvision ResNet-50 -> MSPN's stem and downsample paths
(:func:`imagenet_to_mspn_keys`). The head kinds' own filters live with them
(``models.heads``: ``remap_state_dict``).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch


def mmpose_v1_keys(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """MMPose 0.x checkpoint keys -> MMPose 1.x keys, as MMPose 1.3.2's load hooks rename them.

    * ``BasePoseEstimator._load_state_dict_pre_hook`` (``mmpose/models/pose_estimators/base.py``): drops
      ``data_preprocessor.mean`` / ``.std`` and renames ``keypoint_head`` -> ``head`` (0.x ``TopdownHeatmapSimpleHead``
      and ``DeepposeRegressionHead`` keep their layer names: ``deconv_layers``, ``final_layer``, ``fc``);
    * ``RLEHead._load_state_dict_pre_hook`` (``mmpose/models/heads/regression_heads/rle_head.py``):
      ``head.loss.*`` (0.x's ``RLELoss`` with its flow) -> ``head.loss_module.*``.

    1.x keys pass unchanged, so the function applies to any MMPose file.
    """
    out = {}
    for k, v in state_dict.items():
        if k in ("data_preprocessor.mean", "data_preprocessor.std"):
            continue
        k = k.replace("keypoint_head", "head")
        if k.startswith("head.loss."):
            k = "head.loss_module." + k[len("head.loss.") :]
        out[k] = v
    return out


def imagenet_to_backbone_keys(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvision ResNet keys -> our backbone's: ``conv1.weight`` -> ``backbone.conv1.weight`` etc.; the
    classifier ``fc.*`` is dropped (MMPose loads ``torchvision://resnet50`` into the backbone the same way and
    reports ``fc`` as unexpected)."""
    return {"backbone." + k: v for k, v in state_dict.items() if not k.startswith("fc.")}


def imagenet_hrnet_to_backbone_keys(
    state_dict: Mapping[str, torch.Tensor], backbone_keys: set[str]
) -> dict[str, torch.Tensor]:
    """MMPose's ImageNet HRNet keys (``pretrain_models/hrnet_w32-36af842e.pth``: the backbone's own names) -> ours
    under ``backbone.``, keeping the keys the pose backbone has (``backbone_keys``, without the prefix): MMPose loads the
    file into the backbone non-strictly, so the classifier's ``incre_modules``, ``downsamp_modules``, ``final_layer``,
    ``classifier`` and stage 4's extra fuse layers (the classifier fuses into every branch) are left out. A key the
    backbone has and the file lacks stays missing, for the strict check to report."""
    return {"backbone." + k: v for k, v in state_dict.items() if k in backbone_keys}


def imagenet_to_mspn_keys(state_dict: Mapping[str, torch.Tensor], num_stages: int) -> dict[str, torch.Tensor]:
    """torchvision ResNet-50 keys -> the MSPN backbone's, as MMPose's ``MSPN.init_weights``
    (``mmpose/models/backbones/mspn.py``) maps ``torchvision://resnet50``: ``conv1`` / ``bn1`` -> ``top.top.0.conv`` /
    ``top.top.0.bn``; ``layer<i>.*`` -> ``multi_stage_mspn.<s>.downsample.layer<i>.*`` for EVERY stage s, with
    ``downsample.0`` / ``downsample.1`` -> ``downsample.conv`` / ``downsample.bn``; ``fc`` dropped. All under
    ``backbone.``. MMPose loads them non-strictly: the MSPN layers without a ResNet counterpart (the units' skip,
    up-sampling and output layers) keep their initialisation.
    """
    top, layers = {}, {}
    for k, v in state_dict.items():
        if k.startswith("layer"):
            layers[k.replace("downsample.0", "downsample.conv").replace("downsample.1", "downsample.bn")] = v
        elif k.startswith("conv1"):
            top["backbone.top." + k.replace("conv1", "top.0.conv")] = v
        elif k.startswith("bn1"):
            top["backbone.top." + k.replace("bn1", "top.0.bn")] = v
    stages = {f"backbone.multi_stage_mspn.{s}.downsample.{k}": v for s in range(num_stages) for k, v in layers.items()}
    return {**top, **stages}
