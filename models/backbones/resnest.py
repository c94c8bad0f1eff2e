"""ResNeSt backbone (split-attention ResNet) with MMPose's parameter names, returning the C5 feature map.

Follows ``mmpose/models/backbones/resnest.py`` (MMPose 1.3.2) as the ``td-hm_resnest*`` configs build it: ``ResNeSt``
is a ``ResNetV1d`` (deep stem of three 3x3 ConvModules, average-pool downsampling in the shortcut), whose Bottleneck's
3x3 convolution is a :class:`SplitAttentionConv2d` (radix 2, reduction factor 4, groups 1) followed, in a strided
block, by a 3x3 average pool (``avg_down_stride``); ``style='pytorch'``, BatchNorm eps 1e-5, ``out_indices=(3,)``.

State-dict names equal MMPose's: ``stem.{0,1,2}.conv`` / ``.bn``; ``layer1.0.conv1``, ``bn1``, ``conv2.conv``,
``conv2.bn0``, ``conv2.fc1``, ``conv2.bn1``, ``conv2.fc2``, ``conv3``, ``bn3``; ``downsample.0/1`` (stride 1: conv, BN)
or ``downsample.1/2`` (stride 2: ``AvgPool2d`` at index 0, then conv, BN).

Architecture: Zhang et al., "ResNeSt: Split-Attention Networks", CVPRW 2022.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F  # noqa: N812

#: depth -> blocks per stage (MMPose ``ResNeSt.arch_settings``).
ARCH_SETTINGS: dict[int, tuple[int, int, int, int]] = {
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
    200: (3, 24, 36, 3),
    269: (3, 30, 48, 8),
}
EXPANSION = 4


class ConvModule(nn.Module):
    """mmcv's ``ConvModule`` as the deep stem uses it: 3x3 conv (no bias), BatchNorm, ReLU; names ``conv``, ``bn``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.activate = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.activate(self.bn(self.conv(x)))


class SplitAttentionConv2d(nn.Module):
    """Split-attention 3x3 convolution (MMPose ``SplitAttentionConv2d``).

    ``conv`` gives ``radix`` splits of ``channels`` each (grouped ``groups * radix``); their sum, globally pooled,
    goes through ``fc1`` -> ``bn1`` -> ReLU -> ``fc2`` (1x1 convolutions with bias, ``inter_channels`` =
    max(in * radix / reduction_factor, 32)) and a softmax over the radix (sigmoid for radix 1) that weights the splits.

    Input: float [B, in_channels, H, W]. Output: float [B, channels, H / stride, W / stride].
    """

    def __init__(
        self,
        in_channels: int,
        channels: int,
        stride: int = 1,
        groups: int = 1,
        radix: int = 2,
        reduction_factor: int = 4,
    ):
        super().__init__()
        inter_channels = max(in_channels * radix // reduction_factor, 32)
        self.radix, self.groups, self.channels = radix, groups, channels
        self.conv = nn.Conv2d(
            in_channels, channels * radix, 3, stride=stride, padding=1, groups=groups * radix, bias=False
        )
        self.bn0 = nn.BatchNorm2d(channels * radix)
        self.relu = nn.ReLU(inplace=True)
        self.fc1 = nn.Conv2d(channels, inter_channels, 1, groups=groups)
        self.bn1 = nn.BatchNorm2d(inter_channels)
        self.fc2 = nn.Conv2d(inter_channels, channels * radix, 1, groups=groups)

    def _rsoftmax(self, x: Tensor) -> Tensor:
        """MMPose ``RSoftmax``: [B, C * radix, 1, 1] -> [B, C * radix] weights (softmax over the radix)."""
        if self.radix > 1:
            x = x.flatten(1).unflatten(1, (self.groups, self.radix, -1)).transpose(1, 2)
            return F.softmax(x, dim=1).flatten(1)
        return x.sigmoid().flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn0(self.conv(x)))
        if self.radix > 1:
            splits = x.unflatten(1, (self.radix, -1))
            gap = splits.sum(dim=1)
        else:
            gap = x
        gap = F.adaptive_avg_pool2d(gap, 1)
        gap = self.relu(self.bn1(self.fc1(gap)))
        atten = self._rsoftmax(self.fc2(gap))[:, :, None, None]
        if self.radix > 1:
            out = (atten.unflatten(1, (self.radix, -1)) * splits).sum(dim=1)
        else:
            out = atten * x
        return out.contiguous()


class Bottleneck(nn.Module):
    """ResNeSt Bottleneck: 1x1 -> split-attention 3x3 (-> 3x3 average pool with the stride) -> 1x1, residual.

    Names ``conv1``/``bn1``, ``conv2`` (:class:`SplitAttentionConv2d`), ``conv3``/``bn3``, ``downsample``.
    Input: float [B, in_channels, H, W]. Output: float [B, out_channels, H / stride, W / stride].
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        radix: int = 2,
        reduction_factor: int = 4,
    ):
        super().__init__()
        mid = out_channels // EXPANSION
        self.avg_down_stride = stride > 1
        self.conv1 = nn.Conv2d(in_channels, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = SplitAttentionConv2d(mid, mid, stride=1, radix=radix, reduction_factor=reduction_factor)
        self.conv3 = nn.Conv2d(mid, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.avd_layer = nn.AvgPool2d(3, stride, padding=1) if self.avg_down_stride else None

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.conv2(out)
        if self.avd_layer is not None:
            out = self.avd_layer(out)
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


def _downsample(in_ch: int, out_ch: int, stride: int) -> nn.Sequential:
    """ResNetV1d's shortcut (MMPose ``ResLayer`` with ``avg_down=True``): average pool with the stride, 1x1 conv, BN."""
    layers: list[nn.Module] = []
    if stride != 1:
        layers.append(nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False))
    layers += [nn.Conv2d(in_ch, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch)]
    return nn.Sequential(*layers)


class ResNeSt(nn.Module):
    """ResNeSt backbone returning the last stage (C5, stride 32).

    Args:
        depth: 50, 101, 152, 200 or 269.
        stem_channels: output channels of the deep stem (64 in MMPose's configs; its first two convolutions have half).
        base_channels: width of the first stage (64; stage i outputs ``base_channels * 2**i * 4``).
        radix, reduction_factor: of every :class:`SplitAttentionConv2d` (2, 4).

    Input: float [B, 3, H, W], H and W multiples of 32 (normalised image).
    Output: ``(c5,)``: float [B, base_channels * 32, H / 32, W / 32] (ResNeSt-50: [B, 2048, 8, 6] for 256x192).

    Raises:
        ValueError: unsupported depth or non-positive widths.
    """

    def __init__(
        self, depth: int = 50, stem_channels: int = 64, base_channels: int = 64, radix: int = 2, reduction_factor=4
    ):
        super().__init__()
        if depth not in ARCH_SETTINGS:
            raise ValueError(f"unsupported ResNeSt depth {depth}; choose from {sorted(ARCH_SETTINGS)}")
        if stem_channels < 2 or stem_channels % 2 or base_channels < 1:
            raise ValueError(
                f"stem_channels must be even and >= 2, base_channels >= 1, got {stem_channels}, {base_channels}"
            )
        self.depth = depth
        self.stem = nn.Sequential(
            ConvModule(3, stem_channels // 2, stride=2),
            ConvModule(stem_channels // 2, stem_channels // 2),
            ConvModule(stem_channels // 2, stem_channels),
        )
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        in_ch = stem_channels
        for i, num_blocks in enumerate(ARCH_SETTINGS[depth]):
            out_ch, stride = base_channels * 2**i * EXPANSION, 1 if i == 0 else 2
            ds = _downsample(in_ch, out_ch, stride) if stride != 1 or in_ch != out_ch else None
            blocks = [Bottleneck(in_ch, out_ch, stride, ds, radix, reduction_factor)]
            blocks += [Bottleneck(out_ch, out_ch, 1, None, radix, reduction_factor) for _ in range(num_blocks - 1)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            in_ch = out_ch
        self.out_channels = in_ch
        self._init_weights()

    def _init_weights(self) -> None:
        """MMPose ResNet's default init: Kaiming-normal (fan_out) convolutions with zero bias, unit BatchNorm, and
        ``zero_init_residual``: each Bottleneck's ``bn3`` weight 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, Bottleneck):
                nn.init.zeros_(m.bn3.weight)

    def forward(self, x: Tensor) -> tuple[Tensor]:
        x = self.maxpool(self.stem(x))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        return (x,)


def from_config(config) -> ResNeSt:
    """The ``"resnest"`` builder of ``models.backbones``: ``config.backbone_args`` ``depth`` (50), ``stem_channels``
    (64), ``base_channels`` (64); MMPose's configs set only the depth, smaller widths give test models with the same
    structure and key names.

    Raises:
        ValueError: unknown keys, unsupported depth or widths.
    """
    args = dict(config.backbone_args)
    unknown = sorted(set(args) - {"depth", "stem_channels", "base_channels"})
    if unknown:
        raise ValueError(f"the resnest backbone takes backbone_args depth, stem_channels, base_channels; got {unknown}")
    return ResNeSt(**args)


__all__ = ["ARCH_SETTINGS", "Bottleneck", "ResNeSt", "SplitAttentionConv2d", "from_config"]
