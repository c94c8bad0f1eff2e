"""Convolutional Pose Machine backbone (``"cpm"``) with MMPose's parameter names, returning K heatmaps per stage.

Follows ``mmpose/models/backbones/cpm.py`` (``CPM``, ``CpmBlock``) of MMPose 1.3.2 (Wei et al., "Convolutional Pose
Machines", CVPR 2016): stage 1 (``stem``) maps the image to K heatmaps; each later stage concatenates the previous
stage's heatmaps with ``middle_conv`` of the shared image features (``middle``) and refines them (``cpm_stages``,
``out_convs``). The stem's and the middle branch's widths (128, 32, 512) are fixed, as in MMPose; ``feat_channels`` and
``middle_channels`` set the refinement stages' widths. Convolutions are mmcv ``ConvModule``\\ s
(:class:`models.backbones.hourglass.ConvModule`: ``conv``, ``bn``, ReLU).

Output stride 8 (three stride-2 max pools): 256x192 crops give 32x24 heatmaps. The heatmaps are the backbone's own
output (MMPose's ``CPMHead`` of the CPM configs has no final layer).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from models.backbones.hourglass import ConvModule

if TYPE_CHECKING:
    from models.zoo import PoseModelConfig


class CpmBlock(nn.Module):
    """One refinement stage (MMPose ``CpmBlock``): ``model`` = ConvModules (BatchNorm, ReLU) with 'same' padding.

    Input float [B, in_channels, H, W]; output float [B, channels[-1], H, W].
    """

    def __init__(
        self, in_channels: int, channels: Sequence[int] = (128, 128, 128), kernels: Sequence[int] = (11, 11, 11)
    ):
        super().__init__()
        layers, ch = [], in_channels
        for out_ch, k in zip(channels, kernels, strict=True):
            layers.append(ConvModule(ch, out_ch, k, padding=(k - 1) // 2))
            ch = out_ch
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


def _image_branch() -> list[nn.Module]:
    """The three 9x9 ConvModule + 3x3 stride-2 max-pool units that start ``stem`` and ``middle``."""
    layers: list[nn.Module] = []
    for ch in (3, 128, 128):
        layers += [ConvModule(ch, 128, 9, padding=4), nn.MaxPool2d(kernel_size=3, stride=2, padding=1)]
    return layers


class CPM(nn.Module):
    """MMPose ``CPM``.

    Args:
        out_channels: K heatmaps.
        feat_channels: width of the refinement stages (128 in the configs).
        middle_channels: width of ``middle_conv`` (32).
        num_stages: stages (6 in the configs), each giving K heatmaps.

    Input: float [B, 3, H, W] (normalised image), H and W multiples of 8.
    Output: a tuple of ``num_stages`` float [B, K, H / 8, W / 8] heatmap logits, stage 1 first (MMPose returns a
    list). ``out_channels`` = K, ``num_stages`` = ``num_stages``.

    Raises:
        ValueError: ``num_stages`` < 1.
    """

    def __init__(self, out_channels: int, feat_channels: int = 128, middle_channels: int = 32, num_stages: int = 6):
        super().__init__()
        if num_stages < 1:
            raise ValueError(f"num_stages must be >= 1, got {num_stages}")
        self.num_stages = num_stages
        self.stem = nn.Sequential(
            *_image_branch(),
            ConvModule(128, 32, 5, padding=2),
            ConvModule(32, 512, 9, padding=4),
            ConvModule(512, 512, 1),
            ConvModule(512, out_channels, 1, norm=False, act=False),
        )
        self.middle = nn.Sequential(*_image_branch())
        self.cpm_stages = nn.ModuleList(
            CpmBlock(middle_channels + out_channels, (feat_channels,) * 3, (11, 11, 11)) for _ in range(num_stages - 1)
        )
        self.middle_conv = nn.ModuleList(
            nn.Sequential(ConvModule(128, middle_channels, 5, padding=2)) for _ in range(num_stages - 1)
        )
        self.out_convs = nn.ModuleList(
            nn.Sequential(
                ConvModule(feat_channels, feat_channels, 1),
                ConvModule(feat_channels, out_channels, 1, norm=False, act=False),
            )
            for _ in range(num_stages - 1)
        )
        self.out_channels = out_channels
        self._init_weights()

    def _init_weights(self) -> None:
        """MMPose ``CPM`` init_cfg: Normal(std 0.001) convolutions (bias 0), BatchNorm weight 1, bias 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        outs = [self.stem(x)]
        middle = self.middle(x)
        for i in range(self.num_stages - 1):
            inp = torch.cat([outs[-1], self.middle_conv[i](middle)], 1)
            outs.append(self.out_convs[i](self.cpm_stages[i](inp)))
        return tuple(outs)


#: ``backbone_args`` keys and MMPose's defaults (the COCO configs: ``feat_channels=128``, ``num_stages=6``).
DEFAULTS: dict = {"feat_channels": 128, "middle_channels": 32, "num_stages": 6}


def from_config(config: PoseModelConfig) -> CPM:
    """The ``"cpm"`` builder of ``models.backbones``: :class:`CPM` with K = ``config.num_keypoints`` and
    ``config.backbone_args`` (:data:`DEFAULTS` keys; missing ones take MMPose's defaults).

    Raises:
        ValueError: unknown keys, or ``num_stages`` < 1.
    """
    unknown = sorted(set(config.backbone_args) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown cpm backbone_args {unknown}; known: {sorted(DEFAULTS)}")
    return CPM(config.num_keypoints, **{**DEFAULTS, **config.backbone_args})


__all__ = ["CPM", "DEFAULTS", "CpmBlock", "from_config"]
