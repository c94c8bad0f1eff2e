"""Stacked hourglass backbone (``"hourglass"``) with MMPose's parameter names, returning one feature map per stack.

Follows ``mmpose/models/backbones/hourglass.py`` (``HourglassNet``, ``HourglassModule``) of MMPose 1.3.2 (Newell et
al., "Stacked Hourglass Networks for Human Pose Estimation", ECCV 2016). The residual units are MMPose's ``ResLayer``
of ``BasicBlock`` (``mmpose/models/backbones/resnet.py``, ``downsample_first=False`` for ``low3``), here
:class:`models.resnet.BasicBlock` (the same names: ``conv1``, ``bn1``, ``conv2``, ``bn2``, ``downsample.0/1``).
:class:`ConvModule` is mmcv's ``ConvModule`` as these backbones use it (``conv``, ``bn``, ReLU); ``models.backbones.cpm``
uses it too.

Output stride 4 (a stride-2 7x7 stem convolution and a stride-2 residual unit): 256x256 crops give 64x64 maps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from torch import Tensor, nn

from models.resnet import BasicBlock

if TYPE_CHECKING:
    from models.zoo import PoseModelConfig


class ConvModule(nn.Module):
    """mmcv's ``ConvModule`` (conv -> BatchNorm -> ReLU): ``conv`` (bias only without BatchNorm), ``bn``, ReLU.

    Args:
        in_channels, out_channels, kernel_size, stride, padding: of the ``nn.Conv2d``.
        norm: a BatchNorm2d after the convolution (eps 1e-5; mmcv ``norm_cfg=dict(type='BN')``).
        act: a ReLU at the end (mmcv ``act_cfg=dict(type='ReLU')``; ``act_cfg=None`` is ``act=False``).

    Input float [B, in_channels, H, W]; output float [B, out_channels, H', W'].
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        norm: bool = True,
        act: bool = True,
    ):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=not norm)
        self.bn = nn.BatchNorm2d(out_channels) if norm else None
        self.activate = nn.ReLU(inplace=True) if act else None

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return self.activate(x) if self.activate is not None else x


def res_layer(
    num_blocks: int, in_channels: int, out_channels: int, stride: int = 1, downsample_first: bool = True
) -> nn.Sequential:
    """MMPose's ``ResLayer`` of ``BasicBlock``: the block that changes width (and stride) first, or last
    (``downsample_first=False``, the hourglass' ``low3``). Like MMPose, ``num_blocks`` 0 still gives one block when
    ``downsample_first`` (``HourglassNet.inters`` of a single stack has one, unused)."""
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
        )
    if downsample_first:
        layers = [BasicBlock(in_channels, out_channels, stride, downsample)]
        layers += [BasicBlock(out_channels, out_channels) for _ in range(1, num_blocks)]
    else:
        layers = [BasicBlock(in_channels, in_channels) for _ in range(num_blocks - 1)]
        layers.append(BasicBlock(in_channels, out_channels, stride, downsample))
    return nn.Sequential(*layers)


class HourglassModule(nn.Module):
    """One hourglass of ``depth`` levels (MMPose ``HourglassModule``, recursive through ``low2``).

    Args:
        depth: levels below this one (1: ``low2`` is a residual layer, not another hourglass).
        stage_channels, stage_blocks: width and residual blocks of this level and the levels below.

    Input float [B, stage_channels[0], H, W], H and W divisible by 2**depth; output the same shape.
    """

    def __init__(self, depth: int, stage_channels: Sequence[int], stage_blocks: Sequence[int]):
        super().__init__()
        self.depth = depth
        cur_block, next_block = stage_blocks[0], stage_blocks[1]
        cur_channel, next_channel = stage_channels[0], stage_channels[1]
        self.up1 = res_layer(cur_block, cur_channel, cur_channel)
        self.low1 = res_layer(cur_block, cur_channel, next_channel, stride=2)
        if depth > 1:
            self.low2: nn.Module = HourglassModule(depth - 1, stage_channels[1:], stage_blocks[1:])
        else:
            self.low2 = res_layer(next_block, next_channel, next_channel)
        self.low3 = res_layer(cur_block, next_channel, cur_channel, downsample_first=False)
        self.up2 = nn.Upsample(scale_factor=2)

    def forward(self, x: Tensor) -> Tensor:
        return self.up1(x) + self.up2(self.low3(self.low2(self.low1(x))))


class HourglassNet(nn.Module):
    """Stacked hourglasses (MMPose ``HourglassNet``).

    Args:
        downsample_times: levels of each hourglass (5 in the configs).
        num_stacks: hourglasses stacked (1: Hourglass-52, MMPose's COCO configs; 2: Hourglass-104).
        stage_channels, stage_blocks: width and residual blocks per level (more than ``downsample_times`` of each);
            ``stage_channels[0]`` must be 256, the stem's fixed output width (as in MMPose).
        feat_channel: channels of each stack's output feature map (``out_convs``).

    Input: float [B, 3, H, W] (normalised image), H and W divisible by 4 * 2**downsample_times.
    Output: a tuple of ``num_stacks`` float [B, feat_channel, H / 4, W / 4], one per stack (MMPose returns a list).
    ``out_channels`` = ``feat_channel``, ``num_stages`` = ``num_stacks``.

    Raises:
        ValueError: ``num_stacks`` < 1, mismatched or too short stage lists, ``stage_channels[0]`` != 256.
    """

    stem_channels = 256

    def __init__(
        self,
        downsample_times: int = 5,
        num_stacks: int = 2,
        stage_channels: Sequence[int] = (256, 256, 384, 384, 384, 512),
        stage_blocks: Sequence[int] = (2, 2, 2, 2, 2, 4),
        feat_channel: int = 256,
    ):
        super().__init__()
        if num_stacks < 1:
            raise ValueError(f"num_stacks must be >= 1, got {num_stacks}")
        if len(stage_channels) != len(stage_blocks) or len(stage_channels) <= downsample_times:
            raise ValueError(
                f"stage_channels {tuple(stage_channels)} and stage_blocks {tuple(stage_blocks)} need the same length, "
                f"more than downsample_times {downsample_times}"
            )
        if stage_channels[0] != self.stem_channels:
            raise ValueError(f"stage_channels[0] must be the stem's {self.stem_channels}, got {stage_channels[0]}")
        self.num_stacks = num_stacks
        self.downsample_times = downsample_times
        cur = stage_channels[0]
        self.stem = nn.Sequential(ConvModule(3, 128, 7, stride=2, padding=3), res_layer(1, 128, 256, stride=2))
        self.hourglass_modules = nn.ModuleList(
            HourglassModule(downsample_times, stage_channels, stage_blocks) for _ in range(num_stacks)
        )
        self.inters = res_layer(num_stacks - 1, cur, cur)
        self.conv1x1s = nn.ModuleList(ConvModule(cur, cur, 1, act=False) for _ in range(num_stacks - 1))
        self.out_convs = nn.ModuleList(ConvModule(cur, feat_channel, 3, padding=1) for _ in range(num_stacks))
        self.remap_convs = nn.ModuleList(ConvModule(feat_channel, cur, 1, act=False) for _ in range(num_stacks - 1))
        self.relu = nn.ReLU(inplace=True)
        self.out_channels = feat_channel
        self.num_stages = num_stacks
        self._init_weights()

    def _init_weights(self) -> None:
        """MMPose ``HourglassNet`` init_cfg: Normal(std 0.001) convolutions (bias 0), BatchNorm weight 1, bias 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        inter = self.stem(x)
        outs: list[Tensor] = []
        for i in range(self.num_stacks):
            out = self.out_convs[i](self.hourglass_modules[i](inter))
            outs.append(out)
            if i < self.num_stacks - 1:
                inter = self.inters[i](self.relu(self.conv1x1s[i](inter) + self.remap_convs[i](out)))
        return tuple(outs)


#: ``backbone_args`` keys and MMPose's defaults (the hourglass52 COCO configs set ``num_stacks=1`` only).
DEFAULTS: dict = {
    "downsample_times": 5,
    "num_stacks": 2,
    "stage_channels": [256, 256, 384, 384, 384, 512],
    "stage_blocks": [2, 2, 2, 2, 2, 4],
    "feat_channel": 256,
}


def from_config(config: PoseModelConfig) -> HourglassNet:
    """The ``"hourglass"`` builder of ``models.backbones``: :class:`HourglassNet` of ``config.backbone_args``
    (:data:`DEFAULTS` keys; missing ones take MMPose's defaults).

    Raises:
        ValueError: unknown keys, or arguments :class:`HourglassNet` rejects.
    """
    unknown = sorted(set(config.backbone_args) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown hourglass backbone_args {unknown}; known: {sorted(DEFAULTS)}")
    return HourglassNet(**{**DEFAULTS, **config.backbone_args})


__all__ = ["DEFAULTS", "ConvModule", "HourglassModule", "HourglassNet", "from_config", "res_layer"]
