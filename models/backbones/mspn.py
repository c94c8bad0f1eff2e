"""MSPN backbone (multi-stage pose network) with MMPose's parameter names; its stage / unit machinery is shared with
RSN (:mod:`models.backbones.rsn`).

Follows ``mmpose/models/backbones/mspn.py`` of MMPose 1.3.2 (Li et al., "Rethinking on Multi-Stage Networks for Human
Pose Estimation", 2019): ``top`` (7x7 stride-2 conv + BN + ReLU, 3x3 stride-2 max pool: ``top.top.0.conv/bn``), then
``num_stages`` single-stage networks ``multi_stage_mspn.<i>``, each a ``downsample`` module (``num_units`` ResNet
layers ``layer1..``, Bottleneck blocks of 64 * 2**i mid channels, the first stride 1, the others 2; from the second
stage on, each layer's output adds the previous stage's two skips) and an ``upsample`` module (``up1..``: from the
deepest feature, a 1x1 ``in_skip`` conv + BN to ``unit_channels``, plus the previous unit's output bilinearly
resized (``align_corners=True``) through a 1x1 ``up_conv`` + BN, then ReLU; stages before the last also make the
skips ``out_skip1`` / ``out_skip2`` (1x1 conv + BN + ReLU) and, in the last unit, ``cross_conv`` (1x1 to 64
channels) which is the next stage's input). MMPose's ``ConvModule`` is kept as a module with ``conv`` and ``bn``
children (the conv has no bias), so keys read ``...in_skip.conv.weight``, ``...in_skip.bn.running_mean``.

Output: a list over stages of lists over units of float [B, unit_channels, h_u, w_u], coarsest unit first; the last
unit of each stage is at stride 4 (MMPose's ``out_feats``). The MSPN head (:mod:`models.heads.mspn`) reads them all in
training and only the last stage's last unit at inference.

As in MMPose, the top's width (64) and the cross-stage feature (64 channels) are fixed; ``res_top_channels`` only sets
the channel count the downsample module expects, so it must stay 64 for a working network (small test models shrink
``unit_channels``, ``num_units`` and ``num_blocks`` instead).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from models.resnet import Bottleneck

#: The width of ``top`` and of the cross-stage feature (MMPose hard-codes 64).
TOP_CHANNELS = 64


class ConvModule(nn.Module):
    """MMPose's ``ConvModule`` as the MSPN / RSN configs use it: ``conv`` (no bias), ``bn``, optional ReLU.

    Input / output: float [B, C, H, W] -> [B, out_channels, H / stride, W / stride].
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, relu: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=False) if relu else None

    def forward(self, x: Tensor) -> Tensor:
        x = self.bn(self.conv(x))
        return x if self.relu is None else self.relu(x)


class ResNetTop(nn.Module):
    """``top``: 7x7 stride-2 ``ConvModule`` to 64 channels and a 3x3 stride-2 max pool (stride 4 in all)."""

    def __init__(self, channels: int = TOP_CHANNELS):
        super().__init__()
        self.top = nn.Sequential(ConvModule(3, channels, 7, stride=2), nn.MaxPool2d(kernel_size=3, stride=2, padding=1))

    def forward(self, x: Tensor) -> Tensor:
        return self.top(x)


#: ``block_factory(in_channels, mid_channels, stride, downsample) -> (block, out_channels)``
BlockFactory = Callable[[int, int, int, "nn.Module | None"], tuple[nn.Module, int]]


def bottleneck_block(in_channels: int, channels: int, stride: int, downsample: nn.Module | None):
    """MSPN's block: MMPose's ResNet ``Bottleneck`` with ``channels`` mid channels and 4 x ``channels`` out."""
    return Bottleneck(in_channels, channels * Bottleneck.expansion, stride, downsample), channels * Bottleneck.expansion


class DownsampleModule(nn.Module):
    """``downsample``: ``layer1..layer<num_units>`` (``layer<i+1>`` has ``in_channels * 2**i`` block channels, stride
    2 after the first; a 1x1 conv + BN ``downsample`` on the identity path when the shape changes).

    ``forward(x, skip1, skip2)``: x float [B, in_channels, H, W]; skips (from the previous stage, deepest last) or
    None -> tuple of the layers' outputs, deepest first.
    """

    def __init__(
        self,
        block: BlockFactory,
        expansion: int,
        num_blocks: Sequence[int],
        has_skip: bool = False,
        in_channels: int = TOP_CHANNELS,
    ):
        super().__init__()
        self.has_skip = has_skip
        self.num_units = len(num_blocks)
        ch = in_channels
        for i, n in enumerate(num_blocks):
            mid, stride = in_channels * 2**i, 1 if i == 0 else 2
            downsample = None
            if stride != 1 or ch != mid * expansion:
                downsample = ConvModule(ch, mid * expansion, 1, stride=stride, relu=False)
            units = []
            for j in range(n):
                unit, out_ch = block(ch, mid, stride if j == 0 else 1, downsample if j == 0 else None)
                units.append(unit)
                ch = out_ch
            self.add_module(f"layer{i + 1}", nn.Sequential(*units))

    def forward(self, x: Tensor, skip1, skip2) -> tuple[Tensor, ...]:
        out = []
        for i in range(self.num_units):
            x = getattr(self, f"layer{i + 1}")(x)
            if self.has_skip:
                x = x + skip1[i] + skip2[i]
            out.append(x)
        return tuple(reversed(out))


class UpsampleUnit(nn.Module):
    """``up<ind+1>``: see the module docstring. ``forward(x, up_x)`` -> (out, skip1, skip2, cross_conv), the last
    three None when not made."""

    def __init__(
        self, ind: int, num_units: int, in_channels: int, unit_channels: int, gen_skip: bool, gen_cross_conv: bool
    ):
        super().__init__()
        self.ind, self.num_units = ind, num_units
        self.in_skip = ConvModule(in_channels, unit_channels, 1, relu=False)
        self.relu = nn.ReLU(inplace=True)
        if ind > 0:
            self.up_conv = ConvModule(unit_channels, unit_channels, 1, relu=False)
        self.gen_skip = gen_skip
        if gen_skip:
            self.out_skip1 = ConvModule(in_channels, in_channels, 1)
            self.out_skip2 = ConvModule(unit_channels, in_channels, 1)
        self.gen_cross_conv = gen_cross_conv and ind == num_units - 1
        if self.gen_cross_conv:
            self.cross_conv = ConvModule(unit_channels, TOP_CHANNELS, 1)

    def forward(self, x: Tensor, up_x: Tensor | None):
        out = self.in_skip(x)
        if self.ind > 0:
            up_x = F.interpolate(up_x, size=(x.size(2), x.size(3)), mode="bilinear", align_corners=True)
            out = out + self.up_conv(up_x)
        out = self.relu(out)
        skip1 = self.out_skip1(x) if self.gen_skip else None
        skip2 = self.out_skip2(out) if self.gen_skip else None
        cross = self.cross_conv(out) if self.gen_cross_conv else None
        return out, skip1, skip2, cross


class UpsampleModule(nn.Module):
    """``upsample``: ``up1..up<num_units>`` from the deepest feature (``in_channels * expansion * 2**i`` channels,
    reversed). ``forward(feats)`` -> (outs coarsest first, skip1, skip2 deepest last, cross_conv or None)."""

    def __init__(
        self,
        unit_channels: int,
        num_units: int,
        expansion: int,
        gen_skip: bool,
        gen_cross_conv: bool,
        in_channels: int = TOP_CHANNELS,
    ):
        super().__init__()
        self.num_units = num_units
        chans = [expansion * in_channels * 2**i for i in range(num_units)][::-1]
        for i in range(num_units):
            unit = UpsampleUnit(i, num_units, chans[i], unit_channels, gen_skip, gen_cross_conv)
            self.add_module(f"up{i + 1}", unit)

    def forward(self, feats: Sequence[Tensor]):
        out, skip1, skip2, cross = [], [], [], None
        for i in range(self.num_units):
            o, s1, s2, c = getattr(self, f"up{i + 1}")(feats[i], out[i - 1] if i else None)
            out.append(o)
            skip1.append(s1)
            skip2.append(s2)
            if i == self.num_units - 1:
                cross = c
        return out, skip1[::-1], skip2[::-1], cross


class SingleStageNetwork(nn.Module):
    """One stage: ``downsample`` then ``upsample``; ``forward(x, skip1, skip2)`` -> (outs, skip1, skip2, cross)."""

    def __init__(
        self,
        block: BlockFactory,
        expansion: int,
        num_blocks: Sequence[int],
        unit_channels: int,
        has_skip: bool,
        last: bool,
        in_channels: int = TOP_CHANNELS,
    ):
        super().__init__()
        self.downsample = DownsampleModule(block, expansion, num_blocks, has_skip, in_channels)
        self.upsample = UpsampleModule(unit_channels, len(num_blocks), expansion, not last, not last, in_channels)

    def forward(self, x: Tensor, skip1, skip2):
        return self.upsample(self.downsample(x, skip1, skip2))


def check_args(unit_channels: int, num_stages: int, num_blocks: Sequence[int], what: str) -> None:
    """Raise ValueError for arguments MMPose asserts on (``num_stages > 0``, ``num_units > 1``)."""
    if num_stages < 1 or len(num_blocks) < 2 or min(num_blocks) < 1 or unit_channels < 1:
        raise ValueError(
            f"{what} needs num_stages >= 1, >= 2 units of >= 1 blocks and unit_channels >= 1, got "
            f"num_stages={num_stages}, num_blocks={list(num_blocks)}, unit_channels={unit_channels}"
        )


class MultiStage(nn.Module):
    """The shared forward of MSPN and RSN: ``top``, then the stages (held by the subclass under MMPose's name)."""

    stages_attr = ""
    out_channels: int

    def forward(self, x: Tensor) -> list[list[Tensor]]:
        out_feats, skip1, skip2 = [], None, None
        x = self.top(x)
        for stage in getattr(self, self.stages_attr):
            out, skip1, skip2, x = stage(x, skip1, skip2)
            out_feats.append(out)
        return out_feats

    def _init_weights(self) -> None:
        """MMPose's default ``init_cfg``: Kaiming convs (fan_out, ReLU, bias 0), BatchNorm weight 1 / bias 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


class MSPN(MultiStage):
    """MSPN (MMPose ``MSPN``). Args: ``unit_channels`` (256), ``num_stages`` (1..4 in the zoo), ``num_blocks`` per unit
    ((3, 4, 6, 3): ResNet-50's; its length is ``num_units``), ``res_top_channels`` (64).

    Input float [B, 3, H, W] (H, W multiples of 2**(num_units + 1)); output: see the module docstring.

    Raises:
        ValueError: arguments MMPose rejects.
    """

    stages_attr = "multi_stage_mspn"

    def __init__(
        self,
        unit_channels: int = 256,
        num_stages: int = 4,
        num_blocks: Sequence[int] = (2, 2, 2, 2),
        res_top_channels: int = TOP_CHANNELS,
    ):
        super().__init__()
        check_args(unit_channels, num_stages, num_blocks, "MSPN")
        self.top = ResNetTop()
        self.multi_stage_mspn = nn.ModuleList(
            SingleStageNetwork(
                bottleneck_block,
                Bottleneck.expansion,
                num_blocks,
                unit_channels,
                has_skip=i > 0,
                last=i == num_stages - 1,
                in_channels=res_top_channels,
            )
            for i in range(num_stages)
        )
        self.num_stages, self.num_units, self.out_channels = num_stages, len(num_blocks), unit_channels
        self._init_weights()


#: ``backbone_args`` keys of the ``mspn`` backbone, with MMPose's defaults.
MSPN_ARGS = {"unit_channels": 256, "num_stages": 4, "num_units": 4, "num_blocks": [2, 2, 2, 2], "res_top_channels": 64}


def read_args(config, defaults: dict, what: str) -> dict:
    """``config.backbone_args`` over ``defaults``.

    Raises:
        ValueError: unknown keys, or ``num_units`` != len(``num_blocks``) (MMPose asserts it).
    """
    unknown = sorted(set(config.backbone_args) - set(defaults))
    if unknown:
        raise ValueError(f"unknown {what} backbone_args {unknown}; known: {sorted(defaults)}")
    args = {**defaults, **config.backbone_args}
    if args["num_units"] != len(args["num_blocks"]):
        raise ValueError(f"{what}: num_units {args['num_units']} != len(num_blocks) {len(args['num_blocks'])}")
    return args


def from_config(config) -> MSPN:
    """The ``"mspn"`` builder of ``models.backbones``: ``config.backbone_args`` (:data:`MSPN_ARGS` keys).

    Raises:
        ValueError: unknown or inconsistent arguments.
    """
    a = read_args(config, MSPN_ARGS, "mspn")
    return MSPN(a["unit_channels"], a["num_stages"], tuple(a["num_blocks"]), a["res_top_channels"])


__all__ = ["MSPN", "MSPN_ARGS", "ConvModule", "MultiStage", "SingleStageNetwork", "from_config"]
