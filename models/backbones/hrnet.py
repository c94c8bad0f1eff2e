"""HRNet backbone with MMPose's parameter names, returning the highest-resolution branch (stride 4).

Follows ``mmpose/models/backbones/hrnet.py`` (MMPose 1.3.2: ``HRNet``, ``HRModule``) with the defaults of the
``td-hm_hrnet-*`` configs: BatchNorm (eps 1e-5), nearest-neighbour upsampling in the fuse layers, no checkpointing,
``stage4.multiscale_output`` False (the last module of stage 4 fuses into branch 0 only). The stage spec is MMPose's
``extra`` dict (``stage1`` .. ``stage4``: ``num_modules``, ``num_branches``, ``block`` ``'BASIC'`` or
``'BOTTLENECK'``, ``num_blocks``, ``num_channels``); :data:`HRNET_W32` and :data:`HRNET_W48` are the configs'.

Parameter names equal MMPose's: the stem ``conv1`` / ``bn1`` / ``conv2`` / ``bn2`` (64 channels, two stride-2 3x3
convolutions), ``layer1`` (stage 1, ResNet blocks of :mod:`models.resnet`, whose names are MMPose's), ``transition1..3``
(``nn.ModuleList``; an entry without parameters is ``None`` as in MMPose, so indices match), ``stage2..4`` (a
Sequential of HR modules: ``branches.<b>.<block>``, ``fuse_layers.<i>.<j>``) — so a state dict saved by MMPose under
the ``backbone.`` prefix loads with strict key checking.

Architecture: Sun et al., "Deep High-Resolution Representation Learning for Human Pose Estimation", CVPR 2019.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

from torch import Tensor, nn

from models.resnet import BasicBlock, Bottleneck

#: MMPose ``HRNet.blocks_dict``.
BLOCKS: dict[str, type[nn.Module]] = {"BASIC": BasicBlock, "BOTTLENECK": Bottleneck}
#: The stem width (MMPose hard-codes 64, whatever ``extra`` says).
STEM_CHANNELS = 64


def hrnet_extra(width: int, stage1_channels: int = 64) -> dict:
    """MMPose's ``extra`` of the HRNet-W<width> configs (stage 1: 4 Bottlenecks of ``stage1_channels``; stages 2-4:
    1, 4 and 3 modules of 4 BasicBlocks per branch, branch widths ``width * 2**b``). Small ``width`` /
    ``stage1_channels`` give test models of the same structure."""
    chans = [width * 2**b for b in range(4)]

    def stage(modules: int, branches: int) -> dict:
        return {
            "num_modules": modules,
            "num_branches": branches,
            "block": "BASIC",
            "num_blocks": [4] * branches,
            "num_channels": chans[:branches],
        }

    return {
        "stage1": {
            "num_modules": 1,
            "num_branches": 1,
            "block": "BOTTLENECK",
            "num_blocks": [4],
            "num_channels": [stage1_channels],
        },
        "stage2": stage(1, 2),
        "stage3": stage(4, 3),
        "stage4": stage(3, 4),
    }


#: ``extra`` of ``td-hm_hrnet-w32_*`` and ``td-hm_hrnet-w48_*``.
HRNET_W32: dict = hrnet_extra(32)
HRNET_W48: dict = hrnet_extra(48)


def _conv_bn(cin: int, cout: int, k: int, stride: int, relu: bool) -> nn.Sequential:
    """Conv (no bias, padding k // 2) + BN (+ ReLU): MMPose's ``nn.Sequential(build_conv_layer, build_norm_layer[,
    ReLU])`` of the transition and fuse layers."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def _res_layer(block: type, cin: int, cout: int, num_blocks: int) -> nn.Sequential:
    """``num_blocks`` blocks, stride 1; the first with a 1x1 conv + BN ``downsample`` when the width changes
    (MMPose ``HRNet._make_layer`` / ``HRModule._make_one_branch``)."""
    downsample = None if cin == cout else nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
    layers = [block(cin, cout, downsample=downsample)]
    layers += [block(cout, cout) for _ in range(num_blocks - 1)]
    return nn.Sequential(*layers)


class HRModule(nn.Module):
    """One multi-resolution module: a residual branch per resolution, then the fuse (exchange) layers.

    Args:
        block: :class:`~models.resnet.BasicBlock` or :class:`~models.resnet.Bottleneck`.
        num_blocks, in_channels, num_channels: per branch (``num_channels`` before the block expansion).
        multiscale_output: fuse into every branch (True) or into branch 0 only.

    Input / output: a list of float tensors [B, C_b, H / 2**b, W / 2**b] (b = 0 .. branches-1); the output has one
    tensor per fused branch. Fuse into branch i: ``relu(sum_j f_ij(x_j))`` with f_ii the identity, f_ij (j > i) a 1x1
    conv + BN + nearest upsampling by 2**(j-i), f_ij (j < i) i-j stride-2 3x3 conv + BN (ReLU between them).

    Raises:
        ValueError: per-branch lists whose lengths differ from the branch count.
    """

    def __init__(
        self,
        block: type,
        num_blocks: Sequence[int],
        in_channels: Sequence[int],
        num_channels: Sequence[int],
        multiscale_output: bool,
    ):
        super().__init__()
        n = len(num_blocks)
        if not n == len(in_channels) == len(num_channels):
            raise ValueError(
                f"HRModule: num_blocks {list(num_blocks)}, in_channels {list(in_channels)} and num_channels "
                f"{list(num_channels)} must have one entry per branch"
            )
        out = [c * block.expansion for c in num_channels]
        self.num_branches = n
        self.branches = nn.ModuleList(_res_layer(block, in_channels[b], out[b], num_blocks[b]) for b in range(n))
        self.out_channels = out
        self.fuse_layers = None if n == 1 else self._fuse_layers(out, n if multiscale_output else 1)
        self.relu = nn.ReLU(inplace=True)

    @staticmethod
    def _fuse_layers(ch: list[int], num_out: int) -> nn.ModuleList:
        rows = []
        for i in range(num_out):
            row: list[nn.Module | None] = []
            for j in range(len(ch)):
                if j > i:
                    up = nn.Upsample(scale_factor=2 ** (j - i), mode="nearest")
                    row.append(nn.Sequential(nn.Conv2d(ch[j], ch[i], 1, bias=False), nn.BatchNorm2d(ch[i]), up))
                elif j == i:
                    row.append(None)
                else:
                    steps = [_conv_bn(ch[j], ch[j], 3, 2, relu=True) for _ in range(i - j - 1)]
                    row.append(nn.Sequential(*steps, _conv_bn(ch[j], ch[i], 3, 2, relu=False)))
            rows.append(nn.ModuleList(row))
        return nn.ModuleList(rows)

    def forward(self, x: list[Tensor]) -> list[Tensor]:
        x = [branch(xb) for branch, xb in zip(self.branches, x, strict=True)]
        if self.fuse_layers is None:
            return x
        fused = []
        for i, row in enumerate(self.fuse_layers):
            y = x[0] if i == 0 else row[0](x[0])  # MMPose starts from 0 and adds in branch order
            for j in range(1, self.num_branches):
                y = y + (x[j] if i == j else row[j](x[j]))
            fused.append(self.relu(y))
        return fused


class HRNet(nn.Module):
    """HRNet backbone: 64-channel stride-4 stem, stage 1 (one branch), stages 2-4 adding a branch at half resolution
    each; the output is the fused highest-resolution branch.

    Args:
        extra: MMPose's stage spec (see the module docstring; e.g. :data:`HRNET_W32`).
        in_channels: input image channels (3).

    Input: float [B, in_channels, H, W], H and W multiples of 32 (normalised image).
    Output: ``(x,)`` — a 1-tuple holding float [B, extra.stage4.num_channels[0] * expansion, H / 4, W / 4]
    (HRNet-W32: [B, 32, 64, 48] for 256x192); ``out_channels`` is that channel count.

    Raises:
        ValueError: an ``extra`` without stage1..4, an unknown block, or per-branch lists of the wrong length.
    """

    def __init__(self, extra: Mapping, in_channels: int = 3):
        super().__init__()
        try:
            stages = [dict(extra[f"stage{s}"]) for s in range(1, 5)]
            blocks = [BLOCKS[s["block"]] for s in stages]
        except KeyError as e:
            raise ValueError(
                f"HRNet extra needs stage1..stage4 with a block in {sorted(BLOCKS)}: missing {e}"
            ) from None
        if any(s["num_branches"] != len(s["num_channels"]) for s in stages):
            raise ValueError(f"HRNet: num_branches must equal len(num_channels) in every stage, got {stages}")
        if any(s.get("multiscale_output") for s in stages[3:]) or "upsample" in extra:
            raise ValueError("HRNet: only stage4 multiscale_output=False and nearest upsampling are supported")
        self.extra = copy.deepcopy(dict(extra))
        self.conv1 = nn.Conv2d(in_channels, STEM_CHANNELS, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(STEM_CHANNELS)
        self.conv2 = nn.Conv2d(STEM_CHANNELS, STEM_CHANNELS, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(STEM_CHANNELS)
        self.relu = nn.ReLU(inplace=True)
        s1 = stages[0]
        pre = [s1["num_channels"][0] * blocks[0].expansion]
        self.layer1 = _res_layer(blocks[0], STEM_CHANNELS, pre[0], s1["num_blocks"][0])
        for s, (spec, block) in enumerate(zip(stages[1:], blocks[1:], strict=True), start=2):
            cur = [c * block.expansion for c in spec["num_channels"]]
            self.add_module(f"transition{s - 1}", self._transition(pre, cur))
            modules = []
            for m in range(spec["num_modules"]):
                last_single = s == 4 and m == spec["num_modules"] - 1
                modules.append(HRModule(block, spec["num_blocks"], cur, spec["num_channels"], not last_single))
                cur = modules[-1].out_channels
            self.add_module(f"stage{s}", nn.Sequential(*modules))
            pre = cur
        self.out_channels = pre[0]
        self._init_weights()

    @staticmethod
    def _transition(pre: list[int], cur: list[int]) -> nn.ModuleList:
        """MMPose ``_make_transition_layer``: a 3x3 conv + BN + ReLU where a kept branch changes width (else None);
        each new branch from the last old one by stride-2 3x3 conv + BN + ReLU steps."""
        layers: list[nn.Module | None] = []
        for i, c in enumerate(cur):
            if i < len(pre):
                layers.append(None if c == pre[i] else _conv_bn(pre[i], c, 3, 1, relu=True))
            else:
                n = i + 1 - len(pre)
                layers.append(
                    nn.Sequential(*(_conv_bn(pre[-1], c if k == n - 1 else pre[-1], 3, 2, relu=True) for k in range(n)))
                )
        return nn.ModuleList(layers)

    def _init_weights(self) -> None:
        """MMPose ``HRNet`` default ``init_cfg``: Normal(std 0.001) convolutions (bias 0), BatchNorm weight 1, bias 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> tuple[Tensor]:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        ys = [self.layer1(x)]
        for s in (2, 3, 4):
            transition = getattr(self, f"transition{s - 1}")
            # MMPose feeds every transition that has layers the last branch (kept branches have none in the configs)
            xs = [ys[i] if t is None else t(ys[-1]) for i, t in enumerate(transition)]
            ys = getattr(self, f"stage{s}")(xs)
        return (ys[0],)


def from_config(config) -> HRNet:
    """The ``"hrnet"`` builder of ``models.backbones``: ``config.backbone_args = {"extra": <MMPose's extra>}``.

    Raises:
        ValueError: missing / unknown ``backbone_args`` keys or an invalid ``extra``.
    """
    args = dict(config.backbone_args)
    if set(args) != {"extra"}:
        raise ValueError(f"the hrnet backbone takes backbone_args {{'extra': ...}}, got {sorted(args)}")
    return HRNet(args["extra"])


__all__ = ["BLOCKS", "HRNET_W32", "HRNET_W48", "HRModule", "HRNet", "from_config", "hrnet_extra"]
