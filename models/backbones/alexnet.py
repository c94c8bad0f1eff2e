"""AlexNet backbone with MMPose's parameter names (``features.<i>``), returning the last feature map.

Follows MMPose 1.3.2's ``mmpose/models/backbones/alexnet.py`` with ``num_classes=-1`` (the ``td-hm_alexnet`` config:
no classifier): ``features`` = Conv 11x11/4 (pad 2) 64, ReLU, MaxPool 3/2, Conv 5x5 (pad 2) 192, ReLU, MaxPool 3/2,
Conv 3x3 384, ReLU, Conv 3x3 256, ReLU, Conv 3x3 256, ReLU, MaxPool 3/2 (convolutions with bias; Sequential indices
0, 3, 6, 8, 10 hold the parameters). The pools have no padding, so the feature map is not input / 32: 256x192 gives
7x5 (``models.backbones.alexnet_feature_side``), and the config's heatmap is 56x40 after three deconvolutions.

Architecture: Krizhevsky et al., "ImageNet Classification with Deep Convolutional Neural Networks", NeurIPS 2012.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from torch import Tensor, nn

if TYPE_CHECKING:
    from models.zoo import PoseModelConfig

#: The published widths of the five convolutions.
CHANNELS: tuple[int, int, int, int, int] = (64, 192, 384, 256, 256)


class AlexNet(nn.Module):
    """AlexNet features.

    Args:
        channels: output channels of the five convolutions (:data:`CHANNELS`; smaller for test models, which keep
            the key names and the feature-map size).

    Input: float [B, 3, H, W] (normalised image).
    Output: ``(features,)``: float [B, channels[-1], h, w] with ``h = alexnet_feature_side(H)`` (256 -> 7, 192 -> 5).

    Raises:
        ValueError: not five positive channel counts.
    """

    def __init__(self, channels: Sequence[int] = CHANNELS):
        super().__init__()
        if len(channels) != 5 or min(channels) < 1:
            raise ValueError(f"AlexNet needs five positive channel counts, got {list(channels)}")
        c1, c2, c3, c4, c5 = channels
        self.features = nn.Sequential(
            nn.Conv2d(3, c1, kernel_size=11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(c1, c2, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(c2, c3, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c3, c4, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c4, c5, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.out_channels = c5

    def forward(self, x: Tensor) -> tuple[Tensor]:
        return (self.features(x),)


def from_config(config: PoseModelConfig) -> AlexNet:
    """The ``"alexnet"`` builder of ``models.backbones``: ``backbone_args`` ``channels`` (five ints; default
    :data:`CHANNELS`). MMPose's AlexNet has no init of its own (PyTorch's default initialisation).

    Raises:
        ValueError: unknown ``backbone_args`` keys, bad channels, or ``backbone_depth`` / ``backbone_base_channels``
            changed (ResNet-only fields).
    """
    unknown = sorted(set(config.backbone_args) - {"channels"})
    if unknown:
        raise ValueError(f"alexnet: unknown backbone_args {unknown}; known: ['channels']")
    if (config.backbone_depth, config.backbone_base_channels) != (50, 64):
        raise ValueError("alexnet: backbone_depth / backbone_base_channels are ResNet fields; AlexNet has neither")
    return AlexNet(tuple(config.backbone_args.get("channels", CHANNELS)))


__all__ = ["CHANNELS", "AlexNet", "from_config"]
