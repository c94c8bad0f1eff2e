"""Lite-HRNet backbone (Yu et al., "Lite-HRNet: A Lightweight High-Resolution Network", CVPR 2021) with MMPose's
parameter names.

Follows ``mmpose/models/backbones/litehrnet.py`` of MMPose 1.3.2 (itself adapted from github.com/HRNet/Lite-HRNet):
:class:`Stem` (a stride-2 3x3 conv, then a ShuffleNet-v2 style stride-2 unit: overall stride 4), ``num_stages``
stages of :class:`LiteHRModule` (``'LITE'``: :class:`ConditionalChannelWeighting` blocks, then HRNet's
multi-resolution fusion), the stage ``transition{i}`` layers between them and, with ``with_head``, the
:class:`IterativeHead` that sums the branches from the lowest resolution up. The output is the highest-resolution
branch (stride 4, ``num_channels[-1][0]`` channels: 40 in the LiteHRNet-18 / 30 configs), which the configs' heatmap
head (no deconvolutions) maps to K heatmaps.

Layout of the state dict, as MMPose's (mmcv ``ConvModule``: ``conv`` / ``bn``; ``DepthwiseSeparableConvModule``:
``depthwise_conv`` / ``pointwise_conv``): ``stem.conv1.conv.weight``, ``stem.branch1.0.bn.*``, ...,
``transition0.1.0.0.weight``, ``stage0.0.layers.0.cross_resolution_weighting.conv1.conv.weight``,
``stage0.0.layers.0.spatial_weighting.0.conv1.conv.bias``, ``stage0.0.fuse_layers.1.0.0.0.weight``, ...,
``head_layer.projects.0.depthwise_conv.conv.weight``. MMPose 0.x files (the LiteHRNet checkpoints of the metafiles)
use the same backbone names; only their head prefix differs (``keypoint_head.``:
``models.checkpoints.mmpose_v1_keys``).

Two MMPose details kept on purpose: ``channel_shuffle`` (groups 2: channel ``g * n + c`` -> ``c * 2 + g``) after
every stem / weighting block, and the fusion's in-place sum (``y = out[0]; y += ...`` in ``LiteHRModule.forward``
adds into ``out[0]``, so the first fused output counts branch 0 twice and the later outputs read branch 0 *after*
that sum).

Only ``module_type='LITE'`` (every MMPose config) is implemented; ``'NAIVE'`` raises ValueError.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """MMPose's ``channel_shuffle``: [B, g * n, H, W] -> view [B, g, n, H, W] -> transpose -> [B, n * g, H, W]."""
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).contiguous().view(b, c, h, w)


class ConvModule(nn.Module):
    """mmcv's ``ConvModule`` (conv -> BN -> activation) with its parameter names ``conv`` / ``bn``.

    The convolution has a bias only without BN (mmcv ``bias='auto'``); ``act`` is ``"relu"``, ``"sigmoid"`` or None.
    """

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, norm: bool = True, act=None):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=not norm)
        self.bn = nn.BatchNorm2d(cout) if norm else None
        self.act = {"relu": nn.ReLU(inplace=True), "sigmoid": nn.Sigmoid(), None: None}[act]

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return x if self.act is None else self.act(x)


class SpatialWeighting(nn.Module):
    """Squeeze-excitation on one branch: global average -> 1x1 (ReLU) -> 1x1 (sigmoid) -> x * weights.

    Convolutions with bias, no BN (MMPose builds it with ``norm_cfg=None``). [B, C, H, W] -> same shape.
    """

    def __init__(self, channels: int, ratio: int = 4):
        super().__init__()
        self.global_avgpool = nn.AdaptiveAvgPool2d(1)
        self.conv1 = ConvModule(channels, int(channels / ratio), 1, norm=False, act="relu")
        self.conv2 = ConvModule(int(channels / ratio), channels, 1, norm=False, act="sigmoid")

    def forward(self, x: Tensor) -> Tensor:
        return x * self.conv2(self.conv1(self.global_avgpool(x)))


class CrossResolutionWeighting(nn.Module):
    """Channel weights from all branches: each average-pooled to the smallest branch's size, concatenated, 1x1
    (BN, ReLU) -> 1x1 (BN, sigmoid), split back and upsampled (nearest) onto its branch.

    Input / output: a list of [B, channels[i], H_i, W_i].
    """

    def __init__(self, channels: Sequence[int], ratio: int = 16):
        super().__init__()
        self.channels = list(channels)
        total = sum(self.channels)
        self.conv1 = ConvModule(total, int(total / ratio), 1, act="relu")
        self.conv2 = ConvModule(int(total / ratio), total, 1, act="sigmoid")

    def forward(self, x: Sequence[Tensor]) -> list[Tensor]:
        mini_size = x[-1].shape[-2:]
        out = [F.adaptive_avg_pool2d(s, mini_size) for s in x[:-1]] + [x[-1]]
        out = self.conv2(self.conv1(torch.cat(out, dim=1)))
        weights = torch.split(out, self.channels, dim=1)
        return [s * F.interpolate(a, size=s.shape[-2:], mode="nearest") for s, a in zip(x, weights, strict=True)]


class ConditionalChannelWeighting(nn.Module):
    """A Lite-HRNet block: each branch split in two halves; the second half goes through cross-resolution
    weighting, a depthwise 3x3 (BN) and spatial weighting; the halves are concatenated and channel-shuffled.

    Input / output: a list of [B, in_channels[i], H_i, W_i] (stride 1).
    """

    def __init__(self, in_channels: Sequence[int], reduce_ratio: int):
        super().__init__()
        branch = [c // 2 for c in in_channels]
        self.cross_resolution_weighting = CrossResolutionWeighting(branch, ratio=reduce_ratio)
        self.depthwise_convs = nn.ModuleList(ConvModule(c, c, 3, groups=c) for c in branch)
        self.spatial_weighting = nn.ModuleList(SpatialWeighting(c, ratio=4) for c in branch)

    def forward(self, x: Sequence[Tensor]) -> list[Tensor]:
        halves = [s.chunk(2, dim=1) for s in x]
        x2 = self.cross_resolution_weighting([h[1] for h in halves])
        x2 = [sw(dw(s)) for s, dw, sw in zip(x2, self.depthwise_convs, self.spatial_weighting, strict=True)]
        return [channel_shuffle(torch.cat([h[0], s], dim=1), 2) for h, s in zip(halves, x2, strict=True)]


class Stem(nn.Module):
    """3x3 stride-2 conv (BN, ReLU), then a ShuffleNet-v2 stride-2 unit on the two channel halves; stride 4.

    [B, in_channels, H, W] -> [B, out_channels, H / 4, W / 4].
    """

    def __init__(self, in_channels: int, stem_channels: int, out_channels: int, expand_ratio: float):
        super().__init__()
        self.out_channels = out_channels
        self.conv1 = ConvModule(in_channels, stem_channels, 3, stride=2, act="relu")
        mid = int(round(stem_channels * expand_ratio))
        half = stem_channels // 2
        same = stem_channels == out_channels
        inc = out_channels - half if same else out_channels - stem_channels
        self.branch1 = nn.Sequential(
            ConvModule(half, half, 3, stride=2, groups=half), ConvModule(half, inc, 1, act="relu")
        )
        self.expand_conv = ConvModule(half, mid, 1, act="relu")
        self.depthwise_conv = ConvModule(mid, mid, 3, stride=2, groups=mid)
        self.linear_conv = ConvModule(mid, half if same else stem_channels, 1, act="relu")

    def forward(self, x: Tensor) -> Tensor:
        x1, x2 = self.conv1(x).chunk(2, dim=1)
        x2 = self.linear_conv(self.depthwise_conv(self.expand_conv(x2)))
        return channel_shuffle(torch.cat((self.branch1(x1), x2), dim=1), 2)


class DepthwiseSeparableConvModule(nn.Module):
    """mmcv's ``DepthwiseSeparableConvModule`` as the iterative head builds it: depthwise 3x3 (BN, no activation),
    pointwise 1x1 (BN, ReLU)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.depthwise_conv = ConvModule(cin, cin, 3, groups=cin)
        self.pointwise_conv = ConvModule(cin, cout, 1, act="relu")

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise_conv(self.depthwise_conv(x))


class IterativeHead(nn.Module):
    """From the lowest resolution up: add the previous (bilinearly upsampled, ``align_corners=True``) result, then a
    depthwise-separable conv to the next branch's width. Returns the list highest resolution first."""

    def __init__(self, in_channels: Sequence[int]):
        super().__init__()
        rev = list(in_channels)[::-1]
        self.projects = nn.ModuleList(
            DepthwiseSeparableConvModule(rev[i], rev[min(i + 1, len(rev) - 1)]) for i in range(len(rev))
        )

    def forward(self, x: Sequence[Tensor]) -> list[Tensor]:
        y: list[Tensor] = []
        last = None
        for i, s in enumerate(list(x)[::-1]):
            if last is not None:
                s = s + F.interpolate(last, size=s.shape[-2:], mode="bilinear", align_corners=True)
            last = self.projects[i](s)
            y.append(last)
        return y[::-1]


def _dw_pw(cin: int, cout: int, stride: int, relu: bool) -> nn.Sequential:
    """Depthwise 3x3 (no bias) + BN + 1x1 (no bias) + BN [+ ReLU]: the transition / fuse downsampling unit."""
    layers = [
        nn.Conv2d(cin, cin, 3, stride=stride, padding=1, groups=cin, bias=False),
        nn.BatchNorm2d(cin),
        nn.Conv2d(cin, cout, 1, bias=False),
        nn.BatchNorm2d(cout),
    ]
    return nn.Sequential(*layers, nn.ReLU()) if relu else nn.Sequential(*layers)


class LiteHRModule(nn.Module):
    """``num_blocks`` conditional channel weighting blocks over all branches, then (``with_fuse``) HRNet's fusion:
    output ``i`` = ReLU(sum over branches ``j`` of branch ``j`` brought to branch ``i``: 1x1 conv + BN + nearest
    upsampling from lower resolutions, chains of stride-2 depthwise-separable units from higher ones).

    Input / output: a list of ``len(in_channels)`` [B, in_channels[i], H / 2**i, W / 2**i].
    """

    def __init__(self, in_channels: Sequence[int], num_blocks: int, reduce_ratio: int, with_fuse: bool = True):
        super().__init__()
        self.in_channels = list(in_channels)
        self.num_branches = len(self.in_channels)
        self.with_fuse = with_fuse
        self.layers = nn.Sequential(
            *(ConditionalChannelWeighting(self.in_channels, reduce_ratio) for _ in range(num_blocks))
        )
        if with_fuse and self.num_branches > 1:
            self.fuse_layers = nn.ModuleList(nn.ModuleList(self._fuse(i, j) for j in range(self.num_branches))
                                             for i in range(self.num_branches))  # fmt: skip
            self.relu = nn.ReLU()

    def _fuse(self, i: int, j: int) -> nn.Module | None:
        c = self.in_channels
        if j > i:
            return nn.Sequential(
                nn.Conv2d(c[j], c[i], 1, bias=False), nn.BatchNorm2d(c[i]), nn.Upsample(scale_factor=2 ** (j - i))
            )
        if j == i:
            return None
        steps = [_dw_pw(c[j], c[j], 2, relu=True) for _ in range(i - j - 1)]
        return nn.Sequential(*steps, _dw_pw(c[j], c[i], 2, relu=False))

    def forward(self, x: Sequence[Tensor]) -> list[Tensor]:
        out = list(self.layers(list(x)))
        if self.num_branches == 1 or not self.with_fuse:
            return out
        fused = []
        for i, layers in enumerate(self.fuse_layers):
            y = out[0] if i == 0 else layers[0](out[0])
            for j in range(self.num_branches):
                y = y + (out[j] if i == j else layers[j](out[j]))
            if i == 0:
                out[0] = y  # MMPose sums into out[0] in place: later outputs read the sum
            fused.append(self.relu(y))
        return fused


class LiteHRNet(nn.Module):
    """The Lite-HRNet backbone (MMPose ``LiteHRNet``).

    Args:
        extra: MMPose's ``extra`` dict: ``stem`` (``stem_channels``, ``out_channels``, ``expand_ratio``),
            ``num_stages``, ``stages_spec`` (per stage: ``num_modules``, ``num_branches``, ``num_blocks``,
            ``module_type`` (``'LITE'``), ``with_fuse``, ``reduce_ratios``, ``num_channels``), ``with_head``.
            Lists and tuples both accepted (JSON).
        in_channels: input image channels (3).

    Input: float [B, in_channels, H, W], H and W multiples of 32 (the lowest branch is at stride 32).
    Output: a 1-tuple holding float [B, num_channels[-1][0], H / 4, W / 4] (the highest-resolution branch, after the
    iterative head when ``with_head``).

    Raises:
        ValueError: ``module_type`` other than ``'LITE'``, or stage lists of the wrong lengths.
    """

    def __init__(self, extra: dict, in_channels: int = 3):
        super().__init__()
        stem, spec = extra["stem"], extra["stages_spec"]
        self.num_stages = int(extra["num_stages"])
        for key in ("num_modules", "num_branches", "num_blocks", "module_type", "reduce_ratios", "num_channels"):
            if len(spec[key]) != self.num_stages:
                raise ValueError(f"stages_spec[{key!r}] needs {self.num_stages} values, got {spec[key]}")
        if any(str(t).upper() != "LITE" for t in spec["module_type"]):
            raise ValueError(f"only module_type 'LITE' is implemented, got {spec['module_type']}")
        self.num_branches = [int(n) for n in spec["num_branches"]]
        self.stem = Stem(in_channels, stem["stem_channels"], stem["out_channels"], stem["expand_ratio"])
        last = [self.stem.out_channels]
        for i in range(self.num_stages):
            channels = [int(c) for c in spec["num_channels"][i]]
            if len(channels) != self.num_branches[i]:
                raise ValueError(f"stage {i}: num_channels {channels} for {self.num_branches[i]} branches")
            self.add_module(f"transition{i}", self._transition(last, channels))
            modules = [
                LiteHRModule(channels, spec["num_blocks"][i], spec["reduce_ratios"][i], bool(spec["with_fuse"][i]))
                for _ in range(spec["num_modules"][i])
            ]
            self.add_module(f"stage{i}", nn.Sequential(*modules))
            last = channels
        self.with_head = bool(extra["with_head"])
        if self.with_head:
            self.head_layer = IterativeHead(last)
        self.out_channels = last[0]
        self._init_weights()

    @staticmethod
    def _transition(pre: list[int], cur: list[int]) -> nn.ModuleList:
        layers: list[nn.Module | None] = []
        for i, c in enumerate(cur):
            if i < len(pre):
                layers.append(None if c == pre[i] else _dw_pw(pre[i], c, 1, relu=True))
            else:
                n = i + 1 - len(pre)
                layers.append(
                    nn.Sequential(*(_dw_pw(pre[-1], c if k == n - 1 else pre[-1], 2, relu=True) for k in range(n)))
                )
        return nn.ModuleList(layers)

    def _init_weights(self) -> None:
        """MMPose's initialisation: the backbone's ``init_cfg`` (Normal(std 0.001) convolutions, BN weight 1, bias
        0), then mmcv ``ConvModule.init_weights`` on its own layers (Kaiming-normal fan-out convolutions, BN 1 / 0),
        which MMPose runs after the parent's init."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
            if isinstance(m, (nn.Conv2d, nn.BatchNorm2d)) and m.bias is not None:
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, ConvModule):
                nn.init.kaiming_normal_(m.conv.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> tuple[Tensor]:
        y = [self.stem(x)]
        for i in range(self.num_stages):
            transition = getattr(self, f"transition{i}")
            xs = [
                y[j] if transition[j] is None else transition[j](y[min(j, len(y) - 1)])
                for j in range(self.num_branches[i])
            ]
            y = getattr(self, f"stage{i}")(xs)
        if self.with_head:
            y = self.head_layer(y)
        return (y[0],)


def from_config(config) -> LiteHRNet:
    """The ``"litehrnet"`` builder of ``models.backbones``: ``config.backbone_args = {"extra": <MMPose's extra>}``.

    Raises:
        ValueError: missing ``extra``, other keys, or an ``extra`` :class:`LiteHRNet` rejects.
    """
    args = dict(config.backbone_args)
    if set(args) != {"extra"}:
        raise ValueError(f"the litehrnet backbone takes backbone_args {{'extra': ...}}, got {sorted(args)}")
    return LiteHRNet(args["extra"])


__all__ = [
    "ConditionalChannelWeighting",
    "CrossResolutionWeighting",
    "IterativeHead",
    "LiteHRModule",
    "LiteHRNet",
    "SpatialWeighting",
    "Stem",
    "channel_shuffle",
    "from_config",
]
