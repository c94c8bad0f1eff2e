"""ResNetV1d, ResNeXt and SEResNet backbones with MMPose's parameter names, returning the C5 feature map.

Follows MMPose 1.3.2's ``mmpose/models/backbones/resnet.py`` (``ResNet`` with ``style='pytorch'``, ``ResNetV1d``:
``deep_stem=True, avg_down=True``), ``resnext.py`` (``ResNeXt``: grouped 3x3 convolution, ``groups`` x
``width_per_group`` channels per 64 base channels) and ``seresnet.py`` (``SEResNet``: ``SEBottleneck`` with
``utils/se_layer.py``'s ``SELayer`` before the residual sum). The plain residual blocks are :mod:`models.resnet`'s (the
same operations in the same order as MMPose's pytorch-style blocks); state-dict names are MMPose's:

* stem: ``conv1`` / ``bn1`` (7x7, stride 2), or with the deep stem ``stem.0`` / ``stem.1`` / ``stem.2`` (three
  ``ConvModule`` 3x3 + BN + ReLU: ``stem.<i>.conv``, ``stem.<i>.bn``; the first with stride 2);
* ``layer<n>.<b>.conv1/bn1/conv2/bn2/conv3/bn3``; ``layer<n>.0.downsample.0/1`` (1x1 conv, BN), or with
  ``avg_down`` in the strided stages ``downsample.0`` = ``AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False)``
  (no parameters), ``downsample.1`` / ``downsample.2`` (1x1 conv with stride 1, BN);
* SEResNet: ``layer<n>.<b>.se_layer.conv1.conv`` / ``se_layer.conv2.conv`` (1x1 conv with bias; ReLU, sigmoid).

Builders of :mod:`models.backbones` (``config.backbone_args``, JSON; defaults are the published models'):

============  =====================================================================================================
``resnetv1d``  ``depth`` (18, 34, 50, 101, 152; 50), ``stem_channels`` (64), ``base_channels`` (64)
``resnext``    ``depth`` (50, 101, 152; 50), ``stem_channels``, ``base_channels`` (64), ``groups`` (32),
               ``width_per_group`` (4)
``seresnet``   ``depth`` (50, 101, 152; 50), ``stem_channels``, ``base_channels`` (64), ``se_ratio`` (16)
============  =====================================================================================================

Architectures: He et al., "Bag of Tricks for Image Classification with CNNs", CVPR 2019 (ResNet-D); Xie et al.,
"Aggregated Residual Transformations for Deep Neural Networks", CVPR 2017; Hu et al., "Squeeze-and-Excitation
Networks", CVPR 2018.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor, nn

from models.resnet import ARCH_SETTINGS, BasicBlock, Bottleneck

if TYPE_CHECKING:
    from models.zoo import PoseModelConfig


class ResNeXtBottleneck(Bottleneck):
    """MMPose ``resnext.Bottleneck``: conv2 grouped; ``mid = groups * width_per_group * (out / 4) / base_channels``.

    Raises:
        ValueError: ``out_channels / 4`` not a multiple of ``base_channels`` (MMPose asserts it).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        *,
        base_channels: int = 64,
        groups: int = 32,
        width_per_group: int = 4,
    ):
        super().__init__(in_channels, out_channels, stride, downsample)
        mid = out_channels // self.expansion
        if groups != 1:
            if mid % base_channels:
                raise ValueError(f"ResNeXt: {mid} bottleneck channels are not a multiple of base {base_channels}")
            mid = groups * width_per_group * mid // base_channels
        # re-assigned names keep their place in the state dict (as MMPose's subclass does)
        self.conv1 = nn.Conv2d(in_channels, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride=stride, padding=1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, out_channels, 1, bias=False)


class _ConvAct(nn.Module):
    """MMPose ``ConvModule`` without a norm: ``conv`` (with bias) then the activation."""

    def __init__(self, in_channels: int, out_channels: int, act: nn.Module):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1)
        self.activate = act

    def forward(self, x: Tensor) -> Tensor:
        return self.activate(self.conv(x))


class SELayer(nn.Module):
    """Squeeze-and-excitation (MMPose ``utils/se_layer.py``): ``x * sigmoid(conv2(relu(conv1(mean_hw(x)))))``,
    ``int(channels / ratio)`` squeezed channels. Input / output: float [B, C, H, W]."""

    def __init__(self, channels: int, ratio: int = 16):
        super().__init__()
        squeezed = int(channels / ratio)
        self.global_avgpool = nn.AdaptiveAvgPool2d(1)
        self.conv1 = _ConvAct(channels, squeezed, nn.ReLU(inplace=True))
        self.conv2 = _ConvAct(squeezed, channels, nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        return x * self.conv2(self.conv1(self.global_avgpool(x)))


class SEBottleneck(Bottleneck):
    """MMPose ``seresnet.SEBottleneck``: the bottleneck with ``se_layer`` on the residual branch before the sum."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        *,
        se_ratio: int = 16,
    ):
        super().__init__(in_channels, out_channels, stride, downsample)
        self.se_layer = SELayer(out_channels, ratio=se_ratio)

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.se_layer(self.bn3(self.conv3(out)))
        return self.relu(out + identity)


class _StemConv(nn.Module):
    """MMPose ``ConvModule`` 3x3 conv (no bias) + BN + ReLU (names ``conv``, ``bn``)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.activate = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.activate(self.bn(self.conv(x)))


class ResNetVariant(nn.Module):
    """MMPose's ``ResNet`` (``style='pytorch'``, ``out_indices=(3,)``) with its variant switches.

    Args:
        depth: a key of ``arch`` (blocks per stage).
        block: the residual block class (``expansion`` 1 or 4); ``block_kwargs`` go to each block.
        stem_channels: stem width (64 in the published models); ``base_channels``: stage-1 bottleneck width (64).
        deep_stem: three 3x3 convolutions instead of the 7x7 (``stem.0/1/2``).
        avg_down: average-pool, then a stride-1 1x1 conv, in the downsampling shortcut of strided stages.
        name: the variant's name in error messages.

    Input: float [B, 3, H, W] (normalised image), H and W multiples of 32.
    Output: ``(c5,)``: float [B, base_channels * 8 * expansion, H / 32, W / 32] (ResNet-50 variants: 2048 channels).

    Raises:
        ValueError: unsupported depth.
    """

    def __init__(
        self,
        depth: int,
        block: type,
        *,
        stem_channels: int = 64,
        base_channels: int = 64,
        deep_stem: bool = False,
        avg_down: bool = False,
        block_kwargs: dict | None = None,
        arch: dict[int, tuple[int, int, int, int]] | None = None,
        name: str = "ResNet",
    ):
        super().__init__()
        arch = arch or {d: blocks for d, (_, blocks) in ARCH_SETTINGS.items()}
        if depth not in arch:
            raise ValueError(f"unsupported {name} depth {depth}; choose from {sorted(arch)}")
        self.depth, self.deep_stem = depth, deep_stem
        if deep_stem:
            half = stem_channels // 2
            self.stem = nn.Sequential(
                _StemConv(3, half, 2), _StemConv(half, half, 1), _StemConv(half, stem_channels, 1)
            )
        else:
            self.conv1 = nn.Conv2d(3, stem_channels, 7, stride=2, padding=3, bias=False)
            self.bn1 = nn.BatchNorm2d(stem_channels)
            self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        in_ch, out_ch = stem_channels, base_channels * block.expansion
        for i, num_blocks in enumerate(arch[depth]):
            stride = 1 if i == 0 else 2
            layer = _res_layer(block, num_blocks, in_ch, out_ch, stride, avg_down, block_kwargs or {})
            self.add_module(f"layer{i + 1}", layer)
            in_ch, out_ch = out_ch, out_ch * 2
        self.out_channels = in_ch
        self._init_weights()

    def _init_weights(self) -> None:
        """MMPose ``ResNet`` default init: Kaiming-normal convolutions (fan_out, bias 0), unit BatchNorm."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> tuple[Tensor]:
        x = self.stem(x) if self.deep_stem else self.relu(self.bn1(self.conv1(x)))
        x = self.maxpool(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        return (x,)


def _res_layer(
    block: type, num_blocks: int, in_ch: int, out_ch: int, stride: int, avg_down: bool, kwargs: dict
) -> nn.Sequential:
    """MMPose ``ResLayer`` (``downsample_first=True``): the first block strides and carries the shortcut."""
    downsample = None
    if stride != 1 or in_ch != out_ch:
        layers: list[nn.Module] = []
        conv_stride = stride
        if avg_down and stride != 1:
            conv_stride = 1
            layers.append(nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False))
        layers += [nn.Conv2d(in_ch, out_ch, 1, stride=conv_stride, bias=False), nn.BatchNorm2d(out_ch)]
        downsample = nn.Sequential(*layers)
    blocks = [block(in_ch, out_ch, stride, downsample, **kwargs)]
    blocks += [block(out_ch, out_ch, **kwargs) for _ in range(num_blocks - 1)]
    return nn.Sequential(*blocks)


#: ResNeXt / SEResNet depths (MMPose's ``arch_settings``: bottleneck blocks only).
BOTTLENECK_ARCH: dict[int, tuple[int, int, int, int]] = {
    d: blocks for d, (kind, blocks) in ARCH_SETTINGS.items() if kind == "bottleneck"
}


def _args(config: PoseModelConfig, allowed: dict) -> dict:
    """``config.backbone_args`` over ``allowed``'s defaults.

    Raises:
        ValueError: unknown keys, or the ResNet-only fields ``backbone_depth`` / ``backbone_base_channels`` changed
            (these backbones read depth and widths from ``backbone_args``).
    """
    unknown = sorted(set(config.backbone_args) - set(allowed))
    if unknown:
        raise ValueError(f"{config.backbone}: unknown backbone_args {unknown}; known: {sorted(allowed)}")
    if (config.backbone_depth, config.backbone_base_channels) != (50, 64):
        raise ValueError(
            f"{config.backbone}: set depth and widths in backbone_args, not backbone_depth / backbone_base_channels"
        )
    return {**allowed, **config.backbone_args}


_WIDTHS = {"depth": 50, "stem_channels": 64, "base_channels": 64}


def resnetv1d(config: PoseModelConfig) -> ResNetVariant:
    """The ``"resnetv1d"`` builder (MMPose ``ResNetV1d``): deep stem and average-pool downsampling.

    Raises:
        ValueError: see :func:`_args`; unsupported depth.
    """
    a = _args(config, _WIDTHS)
    block = Bottleneck if ARCH_SETTINGS.get(a["depth"], ("bottleneck",))[0] == "bottleneck" else BasicBlock
    return ResNetVariant(
        a["depth"],
        block,
        stem_channels=a["stem_channels"],
        base_channels=a["base_channels"],
        deep_stem=True,
        avg_down=True,
        name="ResNetV1d",
    )


def resnext(config: PoseModelConfig) -> ResNetVariant:
    """The ``"resnext"`` builder (MMPose ``ResNeXt``, 32x4d by default).

    Raises:
        ValueError: see :func:`_args`; unsupported depth; widths MMPose's ResNeXt rejects.
    """
    a = _args(config, {**_WIDTHS, "groups": 32, "width_per_group": 4})
    kwargs = {"base_channels": a["base_channels"], "groups": a["groups"], "width_per_group": a["width_per_group"]}
    return ResNetVariant(
        a["depth"],
        ResNeXtBottleneck,
        stem_channels=a["stem_channels"],
        base_channels=a["base_channels"],
        block_kwargs=kwargs,
        arch=BOTTLENECK_ARCH,
        name="ResNeXt",
    )


def seresnet(config: PoseModelConfig) -> ResNetVariant:
    """The ``"seresnet"`` builder (MMPose ``SEResNet``, squeeze ratio 16).

    Raises:
        ValueError: see :func:`_args`; unsupported depth.
    """
    a = _args(config, {**_WIDTHS, "se_ratio": 16})
    return ResNetVariant(
        a["depth"],
        SEBottleneck,
        stem_channels=a["stem_channels"],
        base_channels=a["base_channels"],
        block_kwargs={"se_ratio": a["se_ratio"]},
        arch=BOTTLENECK_ARCH,
        name="SEResNet",
    )


__all__ = [
    "BOTTLENECK_ARCH",
    "ResNeXtBottleneck",
    "ResNetVariant",
    "SEBottleneck",
    "SELayer",
    "resnetv1d",
    "resnext",
    "seresnet",
]
