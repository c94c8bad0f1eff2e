"""ShuffleNet v1 and v2 backbones with MMPose's parameter names, returning the last stage (stride 32).

Follow ``mmpose/models/backbones/shufflenet_v1.py`` and ``shufflenet_v2.py`` (MMPose 1.3.2) as the
``td-hm_shufflenetv{1,2}_*`` configs build them: v1 with ``groups=3`` and ``out_indices=(2,)`` (the third stage, 960
channels), v2 with ``widen_factor=1.0`` and ``out_indices=(3,)`` (the final 1x1 convolution, 1024 channels);
BatchNorm eps 1e-5 and ReLU (mmcv ``ConvModule``, :class:`models.backbones.mobilenet_v2.ConvModule`: ``conv``,
``bn``). State-dict keys: ``conv1.conv.weight``, ``conv1.bn.*``, then v1 ``layers.<stage>.<block>.g_conv_1x1_compress
/ depthwise_conv3x3_bn / g_conv_1x1_expand.{conv,bn}.*``, v2 ``layers.<stage>.<block>.branch1.{0,1}`` (first block of a
stage) and ``branch2.{0,1,2}``, and ``layers.3.{conv,bn}`` (v2's last convolution).

Architectures: Zhang et al., "ShuffleNet: An Extremely Efficient Convolutional Neural Network for Mobile Devices",
CVPR 2018; Ma et al., "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design", ECCV 2018.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from models.backbones.mobilenet_v2 import ConvModule, make_divisible

#: ShuffleNet v1 stage widths by group count (MMPose ``ShuffleNetV1.__init__``), before the widen factor.
V1_CHANNELS: dict[int, tuple[int, int, int]] = {
    1: (144, 288, 576),
    2: (200, 400, 800),
    3: (240, 480, 960),
    4: (272, 544, 1088),
    8: (384, 768, 1536),
}
#: ShuffleNet v2 stage widths and last convolution's width by widen factor (MMPose ``ShuffleNetV2.__init__``).
V2_CHANNELS: dict[float, tuple[int, int, int, int]] = {
    0.5: (48, 96, 192, 1024),
    1.0: (116, 232, 464, 1024),
    1.5: (176, 352, 704, 1024),
    2.0: (244, 488, 976, 2048),
}
#: Blocks per stage of both versions.
STAGE_BLOCKS: tuple[int, int, int] = (4, 8, 4)


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """MMPose's ``channel_shuffle``: [B, C, H, W] with C = groups * n -> the channels interleaved across groups."""
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).contiguous().view(b, c, h, w)


class ShuffleUnit(nn.Module):
    """ShuffleNet v1 unit: grouped 1x1 compress (ungrouped in the first block of the network), channel shuffle, 3x3
    depthwise, grouped 1x1 expand; ``add`` with the identity (stride 1) or ``concat`` with the 3x3 average-pooled input
    (stride 2, the first block of each stage: the expansion then gives ``out_channels - in_channels`` channels).

    Input: float [B, in_channels, H, W]. Output: float [B, out_channels, H / s, W / s] (s = 2 for ``concat``).

    Raises:
        ValueError: ``add`` with different widths, or widths not divisible by the groups.
    """

    def __init__(self, in_channels: int, out_channels: int, groups: int, first_block: bool, combine: str):
        super().__init__()
        if combine not in ("add", "concat"):
            raise ValueError(f"combine must be 'add' or 'concat', got {combine!r}")
        if combine == "add" and in_channels != out_channels:
            raise ValueError(f"combine 'add' needs in_channels == out_channels, got {in_channels}, {out_channels}")
        self.combine, self.groups = combine, groups
        bottleneck = out_channels // 4
        expand = out_channels - in_channels if combine == "concat" else out_channels
        first_groups = 1 if first_block else groups
        for ch, g in ((in_channels, first_groups), (bottleneck, first_groups), (bottleneck, groups), (expand, groups)):
            if ch % g:
                raise ValueError(
                    f"ShuffleUnit widths {in_channels} -> {out_channels}: {ch} not divisible by {g} groups"
                )
        self.g_conv_1x1_compress = ConvModule(in_channels, bottleneck, 1, groups=first_groups)
        stride = 2 if combine == "concat" else 1
        self.depthwise_conv3x3_bn = ConvModule(
            bottleneck, bottleneck, 3, stride=stride, padding=1, groups=bottleneck, act=None
        )
        self.g_conv_1x1_expand = ConvModule(bottleneck, expand, 1, groups=groups, act=None)
        self.act = nn.ReLU(inplace=True)
        if combine == "concat":
            self.avgpool = nn.AvgPool2d(kernel_size=3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        out = self.depthwise_conv3x3_bn(self.g_conv_1x1_compress(x))
        if self.groups > 1:
            out = channel_shuffle(out, self.groups)
        out = self.g_conv_1x1_expand(out)
        if self.combine == "concat":
            return torch.cat((self.avgpool(x), self.act(out)), 1)
        return self.act(x + out)


def _shufflenet_init(module: nn.Module) -> None:
    """MMPose ShuffleNet v1 / v2 default init: BatchNorm weight 1, bias 1e-4; convolutions normal with std 0.01
    (``conv1``) or 1 / fan-in channels (``init_weights``: every other convolution)."""
    for name, m in module.named_modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, std=0.01 if "conv1" in name else 1.0 / m.weight.shape[1])
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.constant_(m.bias, 1e-4)


class ShuffleNetV1(nn.Module):
    """ShuffleNet v1 backbone returning its third stage (MMPose ``out_indices=(2,)``).

    Args:
        groups: groups of the 1x1 convolutions (1, 2, 3, 4 or 8; 3 in the published models).
        widen_factor: width multiplier (1.0 published; 0.5 keeps every width divisible by 3 groups for tests).

    Input: float32 [B, 3, H, W], H and W multiples of 32. Output: ``(x,)``: float32 [B, out_channels, H / 32, W / 32]
    (960 channels for groups 3).

    Raises:
        ValueError: an unsupported group count, or widths the groups do not divide.
    """

    def __init__(self, groups: int = 3, widen_factor: float = 1.0):
        super().__init__()
        if groups not in V1_CHANNELS:
            raise ValueError(f"{groups} groups is not supported; choose from {sorted(V1_CHANNELS)}")
        channels = [make_divisible(ch * widen_factor, 8) for ch in V1_CHANNELS[groups]]
        in_ch = int(24 * widen_factor)
        self.conv1 = ConvModule(3, in_ch, 3, stride=2, padding=1)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layers = nn.ModuleList()
        for i, num_blocks in enumerate(STAGE_BLOCKS):
            blocks = []
            for j in range(num_blocks):
                combine = "concat" if j == 0 else "add"
                blocks.append(ShuffleUnit(in_ch, channels[i], groups, first_block=i == 0 and j == 0, combine=combine))
                in_ch = channels[i]
            self.layers.append(nn.Sequential(*blocks))
        self.out_channels = in_ch
        _shufflenet_init(self)

    def forward(self, x: Tensor) -> tuple[Tensor]:
        x = self.maxpool(self.conv1(x))
        for layer in self.layers:
            x = layer(x)
        return (x,)


class ShuffleV2Block(nn.Module):
    """ShuffleNet v2's ``InvertedResidual``: stride 2 concatenates ``branch1`` (3x3 depthwise, 1x1) and ``branch2``
    (1x1, 3x3 depthwise, 1x1) of the input; stride 1 splits the channels in halves and passes the second through
    ``branch2``; then a channel shuffle of 2 groups.

    Input: float [B, in_channels, H, W]. Output: float [B, out_channels, H / stride, W / stride].

    Raises:
        ValueError: stride 1 with ``in_channels != out_channels``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        branch = out_channels // 2
        if stride == 1 and in_channels != branch * 2:
            raise ValueError(f"stride 1 needs in_channels == out_channels, got {in_channels}, {out_channels}")
        self.stride = stride
        if stride > 1:
            self.branch1 = nn.Sequential(
                ConvModule(in_channels, in_channels, 3, stride=stride, padding=1, groups=in_channels, act=None),
                ConvModule(in_channels, branch, 1),
            )
        self.branch2 = nn.Sequential(
            ConvModule(in_channels if stride > 1 else branch, branch, 1),
            ConvModule(branch, branch, 3, stride=stride, padding=1, groups=branch, act=None),
            ConvModule(branch, branch, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        if self.stride > 1:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        else:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(nn.Module):
    """ShuffleNet v2 backbone returning its last 1x1 convolution (MMPose ``out_indices=(3,)``).

    Args:
        widen_factor: 0.5, 1.0 (published), 1.5 or 2.0.

    Input: float32 [B, 3, H, W], H and W multiples of 32. Output: ``(x,)``: float32 [B, out_channels, H / 32, W / 32]
    (1024 channels; 2048 at widen factor 2).

    Raises:
        ValueError: another widen factor.
    """

    def __init__(self, widen_factor: float = 1.0):
        super().__init__()
        if widen_factor not in V2_CHANNELS:
            raise ValueError(f"widen_factor must be one of {sorted(V2_CHANNELS)}, got {widen_factor}")
        channels = V2_CHANNELS[widen_factor]
        in_ch = 24
        self.conv1 = ConvModule(3, in_ch, 3, stride=2, padding=1)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layers = nn.ModuleList()
        for i, num_blocks in enumerate(STAGE_BLOCKS):
            blocks = []
            for j in range(num_blocks):
                blocks.append(ShuffleV2Block(in_ch, channels[i], stride=2 if j == 0 else 1))
                in_ch = channels[i]
            self.layers.append(nn.Sequential(*blocks))
        self.layers.append(ConvModule(in_ch, channels[-1], 1))
        self.out_channels = channels[-1]
        _shufflenet_init(self)

    def forward(self, x: Tensor) -> tuple[Tensor]:
        x = self.maxpool(self.conv1(x))
        for layer in self.layers:
            x = layer(x)
        return (x,)


def _args(config, allowed: tuple[str, ...], name: str) -> dict:
    args = dict(config.backbone_args)
    unknown = sorted(set(args) - set(allowed))
    if unknown:
        raise ValueError(f"the {name} backbone takes backbone_args {list(allowed)}, got {unknown}")
    return args


def shufflenetv1(config) -> ShuffleNetV1:
    """The ``"shufflenetv1"`` builder: ``backbone_args`` ``{"groups": int, "widen_factor": float}`` (3 and 1.0 when
    absent).

    Raises:
        ValueError: other keys, unsupported groups or widths.
    """
    args = _args(config, ("groups", "widen_factor"), "shufflenetv1")
    return ShuffleNetV1(groups=int(args.get("groups", 3)), widen_factor=float(args.get("widen_factor", 1.0)))


def shufflenetv2(config) -> ShuffleNetV2:
    """The ``"shufflenetv2"`` builder: ``backbone_args`` ``{"widen_factor": float}`` (1.0 when absent).

    Raises:
        ValueError: other keys or an unsupported widen factor.
    """
    args = _args(config, ("widen_factor",), "shufflenetv2")
    return ShuffleNetV2(widen_factor=float(args.get("widen_factor", 1.0)))


__all__ = [
    "STAGE_BLOCKS",
    "V1_CHANNELS",
    "V2_CHANNELS",
    "ShuffleNetV1",
    "ShuffleNetV2",
    "ShuffleUnit",
    "ShuffleV2Block",
    "channel_shuffle",
    "shufflenetv1",
    "shufflenetv2",
]
