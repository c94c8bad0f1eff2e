"""The SimpleBaseline heatmap head kind: K heatmaps, decoded by argmax (``"heatmap"``).

:class:`HeatmapHead` follows ``mmpose/models/heads/heatmap_heads/heatmap_head.py`` (Xiao et al., "Simple Baselines for
Human Pose Estimation and Tracking", ECCV 2018): ``deconv_layers`` = n x [ConvTranspose2d (no bias), BatchNorm2d,
ReLU] (Sequential indices 0,1,2, 3,4,5, ...), then ``final_layer`` = 1x1 Conv2d with bias. MMPose's ``conv_layers`` is
an ``nn.Identity`` in every config here and has no parameters, so it is omitted. The integral head
(``models.heads.integral``) wraps one as its ``simplebaseline_head``.

:data:`KIND`: output ``heatmaps`` [B, K, H, W] (card kind ``heatmap``: ``models.codecs.decode_heatmaps``, MMPose's
``MSRAHeatmap.decode``, or DARK / UDP by ``config.codec``: ``models.codecs_dark_udp``; flip-back
``models.codecs.flip_back_heatmaps`` with ``shift_heatmap``); training targets ``config.codec``'s codec (Gaussian
heatmaps, sigma ``config.sigma``); loss ``keypoint_mse``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from torch import Tensor, nn

from models.card import OutputSpec
from models.codecs_dark_udp import heatmap_codec
from models.heads.base import HeadKind
from models.heads.features import last_feature

if TYPE_CHECKING:
    from models.zoo import PoseModelConfig


class HeatmapHead(nn.Module):
    """SimpleBaseline head: deconvolutions + 1x1 conv to K heatmaps.

    Args:
        in_channels: channels of the backbone feature map (2048 for ResNet-50 C5).
        out_channels: K heatmaps.
        deconv_out_channels: output channels of each deconvolution (MMPose default (256, 256, 256)).
        deconv_kernel_sizes: kernel of each deconvolution: 4 (padding 1), 3 (padding 1, output
            padding 1) or 2 (padding 0); all have stride 2 and double the resolution.

    Input: [B, in_channels, h, w] float (or a tuple whose last element is that).
    Output: float logits [B, out_channels, h * 2**n, w * 2**n] (n = number of deconvolutions).

    Raises:
        ValueError: mismatched channel / kernel lists or an unsupported kernel size.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        deconv_out_channels: Sequence[int] = (256, 256, 256),
        deconv_kernel_sizes: Sequence[int] = (4, 4, 4),
    ):
        super().__init__()
        if len(deconv_out_channels) != len(deconv_kernel_sizes):
            raise ValueError(
                f"deconv_out_channels {tuple(deconv_out_channels)} and deconv_kernel_sizes "
                f"{tuple(deconv_kernel_sizes)} must have the same length"
            )
        layers: list[nn.Module] = []
        ch = in_channels
        for out_ch, k in zip(deconv_out_channels, deconv_kernel_sizes, strict=True):
            if k == 4:
                padding, output_padding = 1, 0
            elif k == 3:
                padding, output_padding = 1, 1
            elif k == 2:
                padding, output_padding = 0, 0
            else:
                raise ValueError(f"unsupported deconvolution kernel size {k} (use 2, 3 or 4)")
            layers += [
                nn.ConvTranspose2d(ch, out_ch, k, stride=2, padding=padding, output_padding=output_padding, bias=False),
                nn.BatchNorm2d(out_ch),
                nn.ReLU(inplace=True),
            ]
            ch = out_ch
        self.deconv_layers = nn.Sequential(*layers) if layers else nn.Identity()
        self.final_layer = nn.Conv2d(ch, out_channels, kernel_size=1)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self._init_weights()

    def _init_weights(self) -> None:
        """MMPose ``HeatmapHead.default_init_cfg``: Normal(std 0.001) convs, bias 0, BN weight 1."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(m.weight, std=0.001)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, feats: Tensor | Sequence[Tensor]) -> Tensor:
        x = last_feature(feats)
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"HeatmapHead expects [B, {self.in_channels}, h, w], got {list(x.shape)}")
        return self.final_layer(self.deconv_layers(x))


class HeatmapKind(HeadKind):
    """SimpleBaseline: heatmap logits are the output, the loss and the decode's input."""

    name = "heatmap"
    raw_is_coordinates = False
    trained_output_std = 2.0  # peaked heatmaps
    train_outputs = frozenset({"heatmaps"})
    default_losses = ("keypoint_mse",)

    def build(self, config: PoseModelConfig, in_channels: int) -> HeatmapHead:
        return HeatmapHead(
            in_channels=in_channels,
            out_channels=config.num_keypoints,
            deconv_out_channels=config.deconv_out_channels,
            deconv_kernel_sizes=config.deconv_kernel_sizes,
        )

    def scale_last_layer(self, head: HeatmapHead, feats: Tensor, std: float) -> None:
        head.final_layer.weight.mul_(std / float(head(feats).std()))

    def output_spec(self, config: PoseModelConfig) -> OutputSpec:
        blur = None if config.codec == "msra" else config.blur_kernel_size
        return OutputSpec(
            name="heatmaps", kind="heatmap", flip_shift=config.shift_heatmap, codec=config.codec, blur_kernel_size=blur
        )

    def codec(self, config: PoseModelConfig):
        """``config.codec``'s codec (``models.codecs_dark_udp.heatmap_codec``: MSRA, DARK or UDP)."""
        return heatmap_codec(
            config.codec, config.input_size, config.heatmap_size, config.sigma, config.blur_kernel_size
        )

    def train_forward(self, head: HeatmapHead, feats: Tensor) -> dict[str, Tensor]:
        return {"heatmaps": head(feats)}


KIND = HeatmapKind()
