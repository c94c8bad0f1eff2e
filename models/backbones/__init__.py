"""Backbone registry: the networks a :class:`~models.zoo.PoseModelConfig` can name (``config.backbone``).

Each entry maps a name to ``"module:builder"`` and the backbone's output stride (input pixels per pixel of the
feature map the head reads). The builder is a function ``builder(config) -> nn.Module`` that reads
``config.backbone_args`` (and, for ResNet, ``backbone_depth`` / ``backbone_base_channels``) and returns a module
whose ``forward`` returns a tuple of feature maps (MMPose backbones return a tuple of stages; heads read the last)
and whose ``out_channels`` attribute is the channel count of the last one.

Parameter names inside every backbone are MMPose 1.3.2's (``mmpose/models/backbones/<file>.py``), so a state dict
saved by MMPose under the ``backbone.`` prefix loads with strict key checking.

Adding a backbone: a module (``models/backbones/<name>.py``) with its builder, and its line in :data:`_REGISTRY`.

Torch-free at import (``models.zoo`` validates names with it): the backbone's module, and torch with it, is imported
the first time the backbone is built.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

    from models.zoo import PoseModelConfig


@dataclass(frozen=True)
class BackboneSpec:
    """A registered backbone: ``target`` = ``"module:builder"``, ``stride`` = input pixels per feature-map pixel of
    the feature the head reads (ResNet C5: 32; HRNet: 4)."""

    target: str
    stride: int
    #: input side (pixels) -> feature-map side, where it is not ``side // stride`` (AlexNet's unpadded pools)
    feature_side: Callable[[int], int] | None = None

    def feature_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        """(w, h) of the feature map the head reads for an input of ``input_size`` (w, h) pixels."""
        side = self.feature_side or (lambda n: n // self.stride)
        return (side(input_size[0]), side(input_size[1]))


def alexnet_feature_side(n: int) -> int:
    """AlexNet's feature side for an input side ``n``: conv 11/4 (pad 2), then three unpadded 3/2 max pools
    (256 -> 63 -> 31 -> 15 -> 7; 192 -> 5; 384 -> 11; 288 -> 8)."""
    n = (n + 4 - 11) // 4 + 1
    for _ in range(3):
        n = (n - 3) // 2 + 1
    return n


#: The registry: backbone name -> :class:`BackboneSpec`.
_REGISTRY: dict[str, BackboneSpec] = {
    "resnet": BackboneSpec("models.resnet:from_config", 32),
    # MMPose's other top-down backbones (issue 20); a name whose module is not written yet fails when built
    "resnetv1d": BackboneSpec("models.backbones.resnet_variants:resnetv1d", 32),
    "resnext": BackboneSpec("models.backbones.resnet_variants:resnext", 32),
    "seresnet": BackboneSpec("models.backbones.resnet_variants:seresnet", 32),
    "resnest": BackboneSpec("models.backbones.resnest:from_config", 32),
    "scnet": BackboneSpec("models.backbones.scnet:from_config", 32),
    "alexnet": BackboneSpec("models.backbones.alexnet:from_config", 32, alexnet_feature_side),
    "hrnet": BackboneSpec("models.backbones.hrnet:from_config", 4),
    "litehrnet": BackboneSpec("models.backbones.litehrnet:from_config", 4),
    "mobilenetv2": BackboneSpec("models.backbones.mobilenet_v2:from_config", 32),
    "shufflenetv1": BackboneSpec("models.backbones.shufflenet:shufflenetv1", 32),
    "shufflenetv2": BackboneSpec("models.backbones.shufflenet:shufflenetv2", 32),
    "hourglass": BackboneSpec("models.backbones.hourglass:from_config", 4),
    "cpm": BackboneSpec("models.backbones.cpm:from_config", 8),
    "mspn": BackboneSpec("models.backbones.mspn:from_config", 4),
    "rsn": BackboneSpec("models.backbones.rsn:from_config", 4),
}

#: The registered backbone names (``PoseModelConfig.backbone`` values), torch-free.
BACKBONE_NAMES: tuple[str, ...] = tuple(_REGISTRY)


def backbone_spec(name: str) -> BackboneSpec:
    """The :class:`BackboneSpec` called ``name``.

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown backbone {name!r}; known: {list(BACKBONE_NAMES)}")
    return _REGISTRY[name]


def build_backbone(config: PoseModelConfig) -> nn.Module:
    """The backbone network of ``config`` (``config.backbone``, built by its registered builder; randomly
    initialised as MMPose initialises it).

    Raises:
        ValueError: unknown backbone, or arguments the builder rejects (the message names them).
    """
    module_name, fn = backbone_spec(config.backbone).target.split(":")
    return getattr(importlib.import_module(module_name), fn)(config)


__all__ = ["BACKBONE_NAMES", "BackboneSpec", "alexnet_feature_side", "backbone_spec", "build_backbone"]
