"""RTMDet (CSPNeXt + CSPNeXtPAFPN + RTMDetSepBNHead) with MMDet 3.x's parameter names, and its box decode.

Follows ``mmdet/models/backbones/cspnext.py`` (``CSPNeXt``), ``mmdet/models/layers/csp_layer.py`` (``CSPLayer``,
``CSPNeXtBlock``), ``mmdet/models/layers/se_layer.py`` (``ChannelAttention``), ``mmdet/models/backbones/
csp_darknet.py`` (``SPPBottleneck``), ``mmdet/models/necks/cspnext_pafpn.py`` (``CSPNeXtPAFPN``) and
``mmdet/models/dense_heads/rtmdet_head.py`` (``RTMDetSepBNHead``), with MMCV's ``ConvModule`` (``conv``, ``bn``; no
conv bias before a norm) and ``DepthwiseSeparableConvModule`` (``depthwise_conv``, ``pointwise_conv``), so a state dict
saved by MMDet (``backbone.``, ``neck.``, ``bbox_head.`` prefixes) loads with strict key checking. BatchNorm eps 1e-5
(the configs' ``norm_cfg=dict(type='SyncBN')``), SiLU. With ``use_depthwise`` the neck's CSP blocks and output convolutions
are depthwise-separable too (MMDet 3.x releases; an early revision of ``cspnext_pafpn.py`` kept them dense): so built,
``rtmdet_nano_person`` has 994,423 parameters and 0.308 GMACs at 320 x 320, the 0.99 M and 0.31 G MMPose publishes
for it (``projects/rtmpose/README.md``), which the dense variant (1.42 M) does not match.

:data:`RTMDET_CONFIGS` holds ``rtmdet_nano_person``: MMPose's ``projects/rtmpose/rtmdet/person/
rtmdet_nano_320-8xb32_coco-person.py`` (deepen 0.33, widen 0.25, depthwise, neck 64 channels with one CSP block,
head not shared, ``exp_on_reg=False``, one class, input 320). :meth:`RTMDet.forward` returns the decoded candidates
as ``mmdet``'s ``RTMDetHead.predict_by_feat`` computes them before NMS: priors ``(x, y) * stride`` (``MlvlPointGenerator``
offset 0, levels 8, 16, 32, row-major), ``distance2bbox`` of the regression (times the stride; ``exp`` first with
``exp_on_reg``), sigmoid class scores.

Parity with MMDet 3.3.0's own modules is tested (``tests/models/test_rtmdet_parity.py`` on the golden file of
``tests/mmpose_golden/make_rtmdet_golden.py``): the same state-dict keys, order and shapes, and the same head outputs on
recipe weights (measured difference 0 in float64 and float32). Not verified here: loading the published checkpoint
and its accuracy (the file cannot be downloaded in this project's CI).

Architecture: Lyu et al., "RTMDet: An Empirical Study of Designing Real-Time Object Detectors", arXiv 2212.07784.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

#: BatchNorm eps of the RTMDet configs (``SyncBN`` with its default eps).
BN_EPS = 1e-5
STRIDES = (8, 16, 32)
#: CSPNeXt P5: in_channels, out_channels, num_blocks, add_identity, use_spp (``CSPNeXt.arch_settings['P5']``).
P5 = ((64, 128, 3, True, False), (128, 256, 6, True, False), (256, 512, 6, True, False), (512, 1024, 3, False, True))


class ConvModule(nn.Module):
    """Conv (no bias) + BatchNorm + SiLU, MMCV ``ConvModule`` names ``conv`` / ``bn``."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, padding: int = 0, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.activate = nn.SiLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.activate(self.bn(self.conv(x)))


class DepthwiseSeparableConvModule(nn.Module):
    """Depthwise k x k then pointwise 1 x 1 ``ConvModule`` (MMCV names ``depthwise_conv`` / ``pointwise_conv``)."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, padding: int = 0) -> None:
        super().__init__()
        self.depthwise_conv = ConvModule(cin, cin, k, stride, padding, groups=cin)
        self.pointwise_conv = ConvModule(cin, cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise_conv(self.depthwise_conv(x))


def _conv(depthwise: bool, cin: int, cout: int, k: int, stride: int = 1, padding: int = 0) -> nn.Module:
    return (DepthwiseSeparableConvModule if depthwise else ConvModule)(cin, cout, k, stride, padding)


class ChannelAttention(nn.Module):
    """``x * hardsigmoid(fc(avgpool(x)))`` (MMDet ``ChannelAttention``; ``fc`` a 1 x 1 conv with bias)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.global_avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Conv2d(channels, channels, 1, 1, 0, bias=True)
        self.act = nn.Hardsigmoid()

    def forward(self, x: Tensor) -> Tensor:
        return x * self.act(self.fc(self.global_avgpool(x)))


class CSPNeXtBlock(nn.Module):
    """``conv1`` 3 x 3 (depthwise-separable if asked), ``conv2`` depthwise-separable 5 x 5, identity if same width."""

    def __init__(self, cin: int, cout: int, add_identity: bool, depthwise: bool, kernel_size: int = 5) -> None:
        super().__init__()
        self.conv1 = _conv(depthwise, cin, cout, 3, 1, 1)
        self.conv2 = DepthwiseSeparableConvModule(cout, cout, kernel_size, 1, kernel_size // 2)
        self.add_identity = add_identity and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv2(self.conv1(x))
        return out + x if self.add_identity else out


class CSPLayer(nn.Module):
    """Cross Stage Partial layer with CSPNeXt blocks (``main_conv``, ``short_conv``, ``blocks``, ``attention``,
    ``final_conv``)."""

    def __init__(
        self,
        cin: int,
        cout: int,
        num_blocks: int,
        add_identity: bool,
        depthwise: bool,
        channel_attention: bool,
        expand_ratio: float = 0.5,
    ) -> None:
        super().__init__()
        mid = int(cout * expand_ratio)
        self.main_conv = ConvModule(cin, mid, 1)
        self.short_conv = ConvModule(cin, mid, 1)
        self.final_conv = ConvModule(2 * mid, cout, 1)
        self.blocks = nn.Sequential(*[CSPNeXtBlock(mid, mid, add_identity, depthwise) for _ in range(num_blocks)])
        self.attention = ChannelAttention(2 * mid) if channel_attention else None

    def forward(self, x: Tensor) -> Tensor:
        y = torch.cat((self.blocks(self.main_conv(x)), self.short_conv(x)), dim=1)
        if self.attention is not None:
            y = self.attention(y)
        return self.final_conv(y)


class SPPBottleneck(nn.Module):
    """1 x 1 to half width, max-pools 5 / 9 / 13 concatenated, 1 x 1 (MMDet ``SPPBottleneck``)."""

    def __init__(self, cin: int, cout: int, kernel_sizes: tuple[int, ...] = (5, 9, 13)) -> None:
        super().__init__()
        mid = cin // 2
        self.conv1 = ConvModule(cin, mid, 1)
        self.poolings = nn.ModuleList(nn.MaxPool2d(k, 1, k // 2) for k in kernel_sizes)
        self.conv2 = ConvModule(mid * (len(kernel_sizes) + 1), cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(x)
        return self.conv2(torch.cat([x] + [p(x) for p in self.poolings], dim=1))


class CSPNeXt(nn.Module):
    """CSPNeXt P5 backbone: ``stem`` and ``stage1``..``stage4``; returns stages 2, 3, 4 (strides 8, 16, 32)."""

    def __init__(self, deepen_factor: float, widen_factor: float, depthwise: bool, channel_attention: bool = True):
        super().__init__()
        c0 = int(P5[0][0] * widen_factor)
        self.stem = nn.Sequential(
            ConvModule(3, int(P5[0][0] * widen_factor // 2), 3, 2, 1),
            ConvModule(int(P5[0][0] * widen_factor // 2), int(P5[0][0] * widen_factor // 2), 3, 1, 1),
            ConvModule(int(P5[0][0] * widen_factor // 2), c0, 3, 1, 1),
        )
        self.out_channels = []
        for i, (cin, cout, n, add_identity, use_spp) in enumerate(P5):
            cin, cout = int(cin * widen_factor), int(cout * widen_factor)
            n = max(round(n * deepen_factor), 1)
            stage: list[nn.Module] = [_conv(depthwise, cin, cout, 3, 2, 1)]
            if use_spp:
                stage.append(SPPBottleneck(cout, cout))
            stage.append(CSPLayer(cout, cout, n, add_identity, depthwise, channel_attention))
            self.add_module(f"stage{i + 1}", nn.Sequential(*stage))
            self.out_channels.append(cout)
        self.out_channels = self.out_channels[1:]

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.stage1(self.stem(x))
        outs = []
        for stage in (self.stage2, self.stage3, self.stage4):
            x = stage(x)
            outs.append(x)
        return outs


class CSPNeXtPAFPN(nn.Module):
    """Top-down then bottom-up path with CSP layers (``reduce_layers``, ``top_down_blocks``, ``downsamples``,
    ``bottom_up_blocks``, ``out_convs``); ``depthwise``: depthwise-separable downsampling, CSP block ``conv1`` and output
    convolutions."""

    def __init__(self, in_channels: list[int], out_channels: int, num_csp_blocks: int, depthwise: bool) -> None:
        super().__init__()
        n = len(in_channels)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.reduce_layers = nn.ModuleList()
        self.top_down_blocks = nn.ModuleList()
        for idx in range(n - 1, 0, -1):
            self.reduce_layers.append(ConvModule(in_channels[idx], in_channels[idx - 1], 1))
            self.top_down_blocks.append(
                CSPLayer(in_channels[idx - 1] * 2, in_channels[idx - 1], num_csp_blocks, False, depthwise, False)
            )
        self.downsamples = nn.ModuleList()
        self.bottom_up_blocks = nn.ModuleList()
        for idx in range(n - 1):
            self.downsamples.append(_conv(depthwise, in_channels[idx], in_channels[idx], 3, 2, 1))
            self.bottom_up_blocks.append(
                CSPLayer(in_channels[idx] * 2, in_channels[idx + 1], num_csp_blocks, False, depthwise, False)
            )
        self.out_convs = nn.ModuleList(_conv(depthwise, c, out_channels, 3, 1, 1) for c in in_channels)

    def forward(self, inputs: list[Tensor]) -> list[Tensor]:
        n = len(inputs)
        inner = [inputs[-1]]
        for idx in range(n - 1, 0, -1):
            high = self.reduce_layers[n - 1 - idx](inner[0])
            inner[0] = high
            inner.insert(0, self.top_down_blocks[n - 1 - idx](torch.cat([self.upsample(high), inputs[idx - 1]], 1)))
        outs = [inner[0]]
        for idx in range(n - 1):
            outs.append(self.bottom_up_blocks[idx](torch.cat([self.downsamples[idx](outs[-1]), inner[idx + 1]], 1)))
        return [conv(o) for conv, o in zip(self.out_convs, outs)]


class RTMDetSepBNHead(nn.Module):
    """Per level: ``cls_convs[l]`` / ``reg_convs[l]`` (``stacked_convs`` conv modules each), ``rtm_cls[l]``,
    ``rtm_reg[l]`` (1 x 1 with bias); ``share_conv`` ties the convolutions (not the BatchNorms) of every level to level
    0's. Returns per level the class logits [B, C, H, W] and distances [B, 4, H, W] in input pixels."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        feat_channels: int,
        stacked_convs: int = 2,
        share_conv: bool = True,
        depthwise: bool = False,
        exp_on_reg: bool = False,
    ) -> None:
        super().__init__()
        self.exp_on_reg = exp_on_reg
        self.cls_convs, self.reg_convs = nn.ModuleList(), nn.ModuleList()
        self.rtm_cls, self.rtm_reg = nn.ModuleList(), nn.ModuleList()
        for _ in STRIDES:
            cls, reg = nn.ModuleList(), nn.ModuleList()
            for i in range(stacked_convs):
                chn = in_channels if i == 0 else feat_channels
                cls.append(_conv(depthwise, chn, feat_channels, 3, 1, 1))
                reg.append(_conv(depthwise, chn, feat_channels, 3, 1, 1))
            self.cls_convs.append(cls)
            self.reg_convs.append(reg)
            self.rtm_cls.append(nn.Conv2d(feat_channels, num_classes, 1))
            self.rtm_reg.append(nn.Conv2d(feat_channels, 4, 1))
        if share_conv:
            for level in range(1, len(STRIDES)):
                for i in range(stacked_convs):
                    self.cls_convs[level][i].conv = self.cls_convs[0][i].conv
                    self.reg_convs[level][i].conv = self.reg_convs[0][i].conv

    def forward(self, feats: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        scores, dists = [], []
        for idx, (x, stride) in enumerate(zip(feats, STRIDES)):
            c, r = x, x
            for layer in self.cls_convs[idx]:
                c = layer(c)
            for layer in self.reg_convs[idx]:
                r = layer(r)
            reg = self.rtm_reg[idx](r)
            scores.append(self.rtm_cls[idx](c))
            dists.append((reg.exp() if self.exp_on_reg else reg) * stride)
        return scores, dists


@dataclass(frozen=True)
class RTMDetConfig:
    """One RTMDet variant (MMDet config fields)."""

    name: str
    deepen_factor: float
    widen_factor: float
    neck_channels: int
    num_csp_blocks: int
    depthwise: bool
    share_conv: bool
    exp_on_reg: bool
    num_classes: int
    input_size: int
    url: str = ""
    #: SHA-256 prefix in the checkpoint's file name (MMPose / MMDet naming)
    sha256_prefix: str = ""
    #: what the publisher reports (COCO val2017 AP of the person class for the person models)
    published: tuple[tuple[str, float], ...] = ()


RTMDET_CONFIGS: dict[str, RTMDetConfig] = {
    "rtmdet_nano_person": RTMDetConfig(
        name="rtmdet_nano_person",
        deepen_factor=0.33,
        widen_factor=0.25,
        neck_channels=64,
        num_csp_blocks=1,
        depthwise=True,
        share_conv=False,
        exp_on_reg=False,
        num_classes=1,
        input_size=320,
        url="https://download.openmmlab.com/mmpose/v1/projects/rtmpose/rtmdet_nano_8xb32-100e_coco-obj365-person-05d8511e.pth",
        sha256_prefix="05d8511e",
        published=(("person_ap", 40.3), ("params_m", 0.99), ("gflops", 0.31)),
    ),
}


class RTMDet(nn.Module):
    """The detector: ``backbone``, ``neck``, ``bbox_head`` (MMDet ``RTMDet`` prefixes), decoded to candidates.

    Input float32 [B, 3, S, S], BGR normalised by the config's mean / std (the MMDeploy graph takes it so), padded
    bottom-right. :meth:`forward` returns (boxes [B, N, 4] xyxy in input pixels, scores [B, N, C] sigmoid), anchors
    level by level (strides 8, 16, 32), row-major: N = sum((S / s)^2).
    """

    def __init__(self, config: RTMDetConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = CSPNeXt(config.deepen_factor, config.widen_factor, config.depthwise)
        self.neck = CSPNeXtPAFPN(
            self.backbone.out_channels, config.neck_channels, config.num_csp_blocks, config.depthwise
        )
        self.bbox_head = RTMDetSepBNHead(
            config.num_classes,
            config.neck_channels,
            config.neck_channels,
            share_conv=config.share_conv,
            depthwise=config.depthwise,
            exp_on_reg=config.exp_on_reg,
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        scores, dists = self.bbox_head(self.neck(self.backbone(x)))
        boxes, flat_scores = [], []
        for score, dist, stride in zip(scores, dists, STRIDES):
            b, _, h, w = score.shape
            ys, xs = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
            priors = torch.stack([xs, ys], -1).reshape(1, -1, 2).to(x.dtype) * stride  # MlvlPointGenerator, offset 0
            d = dist.permute(0, 2, 3, 1).reshape(b, -1, 4)
            boxes.append(torch.cat([priors - d[..., :2], priors + d[..., 2:]], -1))  # distance2bbox
            flat_scores.append(score.permute(0, 2, 3, 1).reshape(b, -1, score.shape[1]).sigmoid())
        return torch.cat(boxes, 1), torch.cat(flat_scores, 1)


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights whose outputs vary (tests, speed): He-normal convolutions and random BatchNorm statistics and
    affine parameters. PyTorch's default initialisation with identity BatchNorm statistics makes RTMDet-nano's scores
    nearly equal everywhere, so which candidates an NMS keeps would hang on float rounding."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.5)
            elif isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model
