"""RSN backbone (residual steps network) with MMPose's parameter names.

Follows ``mmpose/models/backbones/rsn.py`` of MMPose 1.3.2 (Cai et al., "Learning Delicate Local Representations for
Multi-Person Pose Estimation", ECCV 2020): MSPN's multi-stage layout (:mod:`models.backbones.mspn`: ``top``, per stage
a downsample and an upsample module, skips and cross-stage features; the stages are ``multi_stage_rsn.<i>``) with
:class:`RSB` blocks (expansion 1) instead of Bottlenecks.

Output: a list over stages of lists over units of float [B, unit_channels, h_u, w_u], coarsest unit first.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from models.backbones.mspn import TOP_CHANNELS, ConvModule, MultiStage, ResNetTop, SingleStageNetwork, check_args
from models.backbones.mspn import read_args as _read_args


class RSB(nn.Module):
    """Residual Steps Block (MMPose ``RSB``): ``conv_bn_relu1`` (1x1, stride) to ``num_steps`` branches of
    ``in_channels * expand_times // res_top_channels`` channels; branch i runs i + 1 3x3 ``conv_bn_relu2_<i+1>_<j+1>``,
    each step j > 0 of branch i adding step j of branch i - 1; the branches' last outputs, concatenated, go through
    ``conv_bn3`` (1x1 + BN) and add the identity (``downsample``d), then ReLU.

    Input float [B, in_channels, H, W] -> [B, out_channels, H / stride, W / stride].
    """

    expansion = 1

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_steps: int = 4,
        stride: int = 1,
        downsample: nn.Module | None = None,
        expand_times: int = 26,
        res_top_channels: int = TOP_CHANNELS,
    ):
        super().__init__()
        if num_steps < 2:
            raise ValueError(f"RSB needs num_steps > 1, got {num_steps}")
        self.branch_channels = in_channels * expand_times // res_top_channels
        self.num_steps = num_steps
        self.downsample = downsample
        bc = self.branch_channels
        self.conv_bn_relu1 = ConvModule(in_channels, num_steps * bc, 1, stride=stride)
        for i in range(num_steps):
            for j in range(i + 1):
                self.add_module(f"conv_bn_relu2_{i + 1}_{j + 1}", ConvModule(bc, bc, 3))
        self.conv_bn3 = ConvModule(num_steps * bc, out_channels * self.expansion, 1, relu=False)
        self.relu = nn.ReLU(inplace=False)

    def forward(self, x: Tensor) -> Tensor:
        identity = x
        spx = torch.split(self.conv_bn_relu1(x), self.branch_channels, 1)
        outputs: list[list[Tensor]] = []
        for i in range(self.num_steps):
            outputs.append([])
            for j in range(i + 1):
                inputs = spx[i] if j == 0 else outputs[i][j - 1]
                if i > j:
                    inputs = inputs + outputs[i - 1][j]
                outputs[i].append(getattr(self, f"conv_bn_relu2_{i + 1}_{j + 1}")(inputs))
        out = self.conv_bn3(torch.cat([outputs[i][i] for i in range(self.num_steps)], 1))
        if self.downsample is not None:
            identity = self.downsample(identity)
        return self.relu(out + identity)


def _rsb_factory(num_steps: int, expand_times: int, res_top_channels: int):
    def block(in_channels: int, channels: int, stride: int, downsample: nn.Module | None):
        rsb = RSB(in_channels, channels, num_steps, stride, downsample, expand_times, res_top_channels)
        return rsb, channels * RSB.expansion

    return block


class RSN(MultiStage):
    """RSN (MMPose ``RSN``). Args: ``unit_channels`` (256), ``num_stages``, ``num_blocks`` per unit ((2, 2, 2, 2) for
    RSN-18, (3, 4, 6, 3) for RSN-50; its length is ``num_units``), ``num_steps`` (4), ``res_top_channels`` (64),
    ``expand_times`` (26).

    Input float [B, 3, H, W]; output: see the module docstring.

    Raises:
        ValueError: arguments MMPose rejects.
    """

    stages_attr = "multi_stage_rsn"

    def __init__(
        self,
        unit_channels: int = 256,
        num_stages: int = 4,
        num_blocks: Sequence[int] = (2, 2, 2, 2),
        num_steps: int = 4,
        res_top_channels: int = TOP_CHANNELS,
        expand_times: int = 26,
    ):
        super().__init__()
        check_args(unit_channels, num_stages, num_blocks, "RSN")
        if num_steps < 2:
            raise ValueError(f"RSN needs num_steps > 1, got {num_steps}")
        self.top = ResNetTop()
        block = _rsb_factory(num_steps, expand_times, res_top_channels)
        self.multi_stage_rsn = nn.ModuleList(
            SingleStageNetwork(
                block,
                RSB.expansion,
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


#: ``backbone_args`` keys of the ``rsn`` backbone, with MMPose's defaults.
RSN_ARGS = {
    "unit_channels": 256,
    "num_stages": 4,
    "num_units": 4,
    "num_blocks": [2, 2, 2, 2],
    "num_steps": 4,
    "res_top_channels": 64,
    "expand_times": 26,
}


def from_config(config) -> RSN:
    """The ``"rsn"`` builder of ``models.backbones``: ``config.backbone_args`` (:data:`RSN_ARGS` keys).

    Raises:
        ValueError: unknown or inconsistent arguments.
    """
    a = _read_args(config, RSN_ARGS, "rsn")
    return RSN(
        a["unit_channels"],
        a["num_stages"],
        tuple(a["num_blocks"]),
        a["num_steps"],
        a["res_top_channels"],
        a["expand_times"],
    )


__all__ = ["RSB", "RSN", "RSN_ARGS", "from_config"]
