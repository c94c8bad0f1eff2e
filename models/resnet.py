"""ResNet backbone (pytorch style) with MMPose's parameter names, returning the C5 feature map.

Follows ``mmpose/models/backbones/resnet.py`` (MMPose 1.3.2) with its defaults as used by the
``td-hm_res50`` and ``ipr_res50*`` configs: ``style='pytorch'`` (the stride-2 convolution of a
Bottleneck is the 3x3 ``conv2``), no deep stem, no average-pool downsampling, BatchNorm with
eps 1e-5, ``out_indices=(3,)``. Parameter names equal MMPose's (and torchvision's):
``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer1.0.bn1``, ..., ``layer1.0.downsample.0/1`` — so a
state dict saved by MMPose under the ``backbone.`` prefix loads with strict key checking.

Architecture: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016.
"""

from __future__ import annotations

from torch import Tensor, nn

#: depth -> (block type, blocks per stage), as MMPose ``ResNet.arch_settings``.
ARCH_SETTINGS: dict[int, tuple[str, tuple[int, int, int, int]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (ResNet-18/34); names conv1/bn1/conv2/bn2."""

    expansion = 1

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        mid = out_channels // self.expansion
        self.conv1 = nn.Conv2d(in_channels, mid, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride here, pytorch style) -> 1x1 with a residual connection (ResNet-50+).

    Names conv1/bn1, conv2/bn2, conv3/bn3, downsample.0 (1x1 conv) / downsample.1 (BN).
    """

    expansion = 4

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        mid = out_channels // self.expansion
        self.conv1 = nn.Conv2d(in_channels, mid, 1, stride=1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """ResNet backbone returning the last stage (C5, stride 32).

    Args:
        depth: 18, 34, 50, 101 or 152.
        in_channels: input image channels (3).
        base_channels: stem width (64 in the published models; smaller values give tiny test models
            with the same structure and key names).

    Input: float32 [B, in_channels, H, W], H and W multiples of 32 (normalised image).
    Output: ``(c5,)`` — a 1-tuple (MMPose backbones return a tuple of stages) holding float32
    [B, base_channels * 8 * expansion, H / 32, W / 32] (ResNet-50: [B, 2048, 8, 8] for 256x256).

    Raises:
        ValueError: unsupported depth.
    """

    def __init__(self, depth: int = 50, in_channels: int = 3, base_channels: int = 64):
        super().__init__()
        if depth not in ARCH_SETTINGS:
            raise ValueError(f"unsupported ResNet depth {depth}; choose from {sorted(ARCH_SETTINGS)}")
        kind, stage_blocks = ARCH_SETTINGS[depth]
        block = Bottleneck if kind == "bottleneck" else BasicBlock
        self.depth = depth
        self.conv1 = nn.Conv2d(in_channels, base_channels, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(base_channels)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        in_ch = base_channels
        for i, num_blocks in enumerate(stage_blocks):
            out_ch = base_channels * 2**i * block.expansion
            stride = 1 if i == 0 else 2
            self.add_module(f"layer{i + 1}", self._make_layer(block, in_ch, out_ch, num_blocks, stride))
            in_ch = out_ch
        self.out_channels = in_ch
        self._init_weights()

    @staticmethod
    def _make_layer(block: type, in_ch: int, out_ch: int, num_blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or in_ch != out_ch:
            downsample = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_ch),
            )
        layers = [block(in_ch, out_ch, stride=stride, downsample=downsample)]
        layers += [block(out_ch, out_ch) for _ in range(num_blocks - 1)]
        return nn.Sequential(*layers)

    def _init_weights(self) -> None:
        """Kaiming-normal convolutions, unit BatchNorm (MMPose ResNet default init)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> tuple[Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        return (x,)


def resnet(depth: int = 50, base_channels: int = 64) -> ResNet:
    """Build a :class:`ResNet` (convenience wrapper)."""
    return ResNet(depth=depth, base_channels=base_channels)


def from_config(config) -> ResNet:
    """The ``"resnet"`` builder of ``models.backbones``: ``config.backbone_depth`` and ``backbone_base_channels``.

    Raises:
        ValueError: unsupported depth, or ``backbone_args`` given (ResNet takes none).
    """
    if config.backbone_args:
        raise ValueError(f"the resnet backbone takes no backbone_args, got {sorted(config.backbone_args)}")
    return ResNet(depth=config.backbone_depth, base_channels=config.backbone_base_channels)


__all__ = ["ARCH_SETTINGS", "BasicBlock", "Bottleneck", "ResNet", "from_config", "resnet"]
