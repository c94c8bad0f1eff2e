"""SCNet backbone (self-calibrated convolutions) with MMPose's parameter names, returning the C5 feature map.

Follows ``mmpose/models/backbones/scnet.py`` (MMPose 1.3.2) as the ``td-hm_scnet*`` configs build it: a plain ResNet
(7x7 stem ``conv1`` / ``bn1``, max pool, ``style='pytorch'``, strided 1x1 + BN shortcut) whose blocks are
``SCBottleneck``: the block's input goes through two half-width branches, ``conv1``/``bn1`` -> ``k1`` (3x3 with the
stride) and ``conv2``/``bn2`` -> ``scconv`` (:class:`SCConv`), concatenated into ``conv3``/``bn3``.

State-dict order follows MMPose's registration order (``SCBottleneck`` replaces the modules its parent ``Bottleneck``
registered, then appends ``k1`` and ``scconv``): ``conv1``, ``bn1``, ``conv2``, ``bn2``, ``conv3``, ``bn3``,
``downsample.0/1``, ``k1.0/1``, ``scconv.k2.1/2``, ``scconv.k3.0/1``, ``scconv.k4.0/1``.

Architecture: Liu et al., "Improving Convolutional Networks with Self-Calibrated Convolutions", CVPR 2020.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F  # noqa: N812

#: depth -> blocks per stage (MMPose ``SCNet.arch_settings``).
ARCH_SETTINGS: dict[int, tuple[int, int, int, int]] = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
EXPANSION = 4
#: ``SCBottleneck.pooling_r``: the average-pool kernel and stride of :class:`SCConv`'s calibration branch.
POOLING_R = 4


def _conv_bn(in_ch: int, out_ch: int, stride: int = 1, relu: bool = False) -> list[nn.Module]:
    layers = [nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(out_ch)]
    return [*layers, nn.ReLU(inplace=True)] if relu else layers


class SCConv(nn.Module):
    """Self-calibrated convolution (MMPose ``SCConv``).

    ``k2`` = ``AvgPool2d(pooling_r, pooling_r)`` (floor: an 8x6 map pools to 2x1) -> 3x3 conv -> BN, resized back to
    the input's size by nearest-neighbour interpolation (``F.interpolate``'s default, as MMPose); ``sigmoid(x + k2(x))``
    gates ``k3(x)`` (3x3 conv, BN); ``k4`` (3x3 conv with the stride, BN, ReLU) gives the output.

    Input: float [B, C, H, W], H and W >= ``pooling_r``. Output: float [B, C, H / stride, W / stride].
    """

    def __init__(self, channels: int, stride: int, pooling_r: int = POOLING_R):
        super().__init__()
        self.k2 = nn.Sequential(nn.AvgPool2d(kernel_size=pooling_r, stride=pooling_r), *_conv_bn(channels, channels))
        self.k3 = nn.Sequential(*_conv_bn(channels, channels))
        self.k4 = nn.Sequential(*_conv_bn(channels, channels, stride, relu=True))

    def forward(self, x: Tensor) -> Tensor:
        gate = torch.sigmoid(x + F.interpolate(self.k2(x), x.shape[2:]))
        return self.k4(self.k3(x) * gate)


class SCBottleneck(nn.Module):
    """SCNet's Bottleneck: two half-width branches (plain 3x3 ``k1`` and :class:`SCConv`) concatenated, residual.

    Input: float [B, in_channels, H, W]. Output: float [B, out_channels, H / stride, W / stride].
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        mid = out_channels // EXPANSION // 2
        self.conv1 = nn.Conv2d(in_channels, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(in_channels, mid, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid * 2, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.k1 = nn.Sequential(*_conv_bn(mid, mid, stride, relu=True))
        self.scconv = SCConv(mid, stride)

    def forward(self, x: Tensor) -> Tensor:
        out_a = self.k1(self.relu(self.bn1(self.conv1(x))))
        out_b = self.scconv(self.relu(self.bn2(self.conv2(x))))
        out = self.bn3(self.conv3(torch.cat([out_a, out_b], dim=1)))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class SCNet(nn.Module):
    """SCNet backbone returning the last stage (C5, stride 32).

    Args:
        depth: 50 or 101.
        stem_channels: output channels of the 7x7 stem (64 in MMPose's configs).
        base_channels: width of the first stage (64; stage i outputs ``base_channels * 2**i * 4``, its branches
            half of a quarter of that).

    Input: float [B, 3, H, W], H and W multiples of 32 (normalised image).
    Output: ``(c5,)``: float [B, base_channels * 32, H / 32, W / 32] (SCNet-50: [B, 2048, 8, 6] for 256x192).

    Raises:
        ValueError: unsupported depth or widths (``base_channels`` must be even: the branches take half).
    """

    def __init__(self, depth: int = 50, stem_channels: int = 64, base_channels: int = 64):
        super().__init__()
        if depth not in ARCH_SETTINGS:
            raise ValueError(f"unsupported SCNet depth {depth}; choose from {sorted(ARCH_SETTINGS)}")
        if stem_channels < 1 or base_channels < 2 or base_channels % 2:
            raise ValueError(
                f"need stem_channels >= 1 and even base_channels >= 2, got {stem_channels}, {base_channels}"
            )
        self.depth = depth
        self.conv1 = nn.Conv2d(3, stem_channels, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_channels)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        in_ch = stem_channels
        for i, num_blocks in enumerate(ARCH_SETTINGS[depth]):
            out_ch, stride = base_channels * 2**i * EXPANSION, 1 if i == 0 else 2
            ds = None
            if stride != 1 or in_ch != out_ch:
                ds = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch))
            blocks = [SCBottleneck(in_ch, out_ch, stride, ds)]
            blocks += [SCBottleneck(out_ch, out_ch) for _ in range(num_blocks - 1)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            in_ch = out_ch
        self.out_channels = in_ch
        self._init_weights()

    def _init_weights(self) -> None:
        """MMPose ResNet's default init: Kaiming-normal (fan_out) convolutions, unit BatchNorm, and
        ``zero_init_residual``: each block's ``bn3`` weight 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, SCBottleneck):
                nn.init.zeros_(m.bn3.weight)

    def forward(self, x: Tensor) -> tuple[Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        return (x,)


def from_config(config) -> SCNet:
    """The ``"scnet"`` builder of ``models.backbones``: ``config.backbone_args`` ``depth`` (50), ``stem_channels``
    (64), ``base_channels`` (64); MMPose's configs set only the depth, smaller widths give test models with the same
    structure and key names.

    Raises:
        ValueError: unknown keys, unsupported depth or widths.
    """
    args = dict(config.backbone_args)
    unknown = sorted(set(args) - {"depth", "stem_channels", "base_channels"})
    if unknown:
        raise ValueError(f"the scnet backbone takes backbone_args depth, stem_channels, base_channels; got {unknown}")
    return SCNet(**args)


__all__ = ["ARCH_SETTINGS", "SCBottleneck", "SCConv", "SCNet", "from_config"]
