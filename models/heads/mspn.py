"""The MSPN / RSN head kind: one heatmap predictor per stage and unit (``"mspn"``).

:class:`MSPNHead` follows ``mmpose/models/heads/heatmap_heads/mspn_head.py`` (MMPose 1.3.2, ``use_prm=False`` as in
every MSPN / RSN config): ``predict_layers.<stage * num_units + unit>`` = ``PredictHeatmap``, whose ``conv_layers`` are
a 1x1 ``ConvModule`` (conv, BN, ReLU) and a 3x3 ``ConvModule`` to K channels (conv, BN, no activation), then a bilinear
resize (``align_corners=True``) to the heatmap size. The backbone (:mod:`models.backbones.mspn` or
:mod:`models.backbones.rsn`) gives features per stage and unit; MMPose's head predicts on all of them in training and
uses only the last stage's last unit at inference, which is what :meth:`MSPNHead.forward` (and so the exported graph)
computes; :meth:`MSPNHead.forward_all` gives every level.

:data:`KIND`: output ``heatmaps`` [B, K, H, W] at input / 4 (card kind ``heatmap`` with ``codec`` ``"megvii"``:
``models.megvii_heatmap.decode_megvii_heatmaps``, MMPose's ``MegviiHeatmap.decode`` with kernel 5; flip-back
``models.codecs.flip_back_heatmaps`` with ``shift_heatmap``, False in the configs). Training (``train_forward``,
``codec``, ``loss_kwargs``): every level against its Megvii target (``training.losses.mspn_levels_loss``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.backbones.mspn import MSPN_ARGS, ConvModule
from models.backbones.rsn import RSN_ARGS
from models.card import OutputSpec
from models.heads.base import HeadKind
from models.megvii_heatmap import MultiLevelMegviiHeatmap, megvii_levels

if TYPE_CHECKING:
    from models.zoo import PoseModelConfig


class PredictHeatmap(nn.Module):
    """MMPose ``PredictHeatmap`` (no PRM): float [B, unit_channels, h, w] -> [B, out_channels, *out_shape]."""

    def __init__(self, unit_channels: int, out_channels: int, out_shape: tuple[int, int]):
        super().__init__()
        self.out_shape = tuple(out_shape)
        self.conv_layers = nn.Sequential(
            ConvModule(unit_channels, unit_channels, 1), ConvModule(unit_channels, out_channels, 3, relu=False)
        )

    def forward(self, feature: Tensor) -> Tensor:
        return F.interpolate(self.conv_layers(feature), size=self.out_shape, mode="bilinear", align_corners=True)


class MSPNHead(nn.Module):
    """Multi-stage multi-unit heatmap head (MMPose ``MSPNHead``).

    Args:
        num_stages, num_units: the backbone's stages and units per stage.
        out_shape: (H, W) of the heatmaps (MMPose's ``out_shape``, e.g. (64, 48)).
        unit_channels: the backbone's feature channels (256).
        out_channels: K heatmaps.

    Input: the backbone's list over stages of lists over units of float [B, unit_channels, h, w].
    :meth:`forward` -> float [B, K, H, W] (the last stage's last unit: MMPose's inference output);
    :meth:`forward_all` -> the list of num_stages * num_units such heatmaps, stage-major (MMPose ``forward``).

    Raises:
        ValueError: features that do not match the stages, units or channels.
    """

    def __init__(
        self, num_stages: int, num_units: int, out_shape: tuple[int, int], unit_channels: int, out_channels: int
    ):
        super().__init__()
        self.num_stages, self.num_units, self.unit_channels = num_stages, num_units, unit_channels
        self.out_channels = out_channels
        self.predict_layers = nn.ModuleList(
            PredictHeatmap(unit_channels, out_channels, out_shape) for _ in range(num_stages * num_units)
        )
        self._init_weights()

    def _init_weights(self) -> None:
        """MMPose ``MSPNHead.default_init_cfg``: Kaiming convs, BatchNorm weight 1 (bias 0)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _check(self, feats: Sequence[Sequence[Tensor]]) -> None:
        if len(feats) != self.num_stages or any(len(f) != self.num_units for f in feats):
            raise ValueError(
                f"MSPNHead expects {self.num_stages} stages of {self.num_units} unit features, got "
                f"{[len(f) for f in feats] if isinstance(feats, (list, tuple)) else type(feats).__name__}"
            )
        if any(x.shape[1] != self.unit_channels for f in feats for x in f):
            raise ValueError(f"MSPNHead expects {self.unit_channels}-channel unit features")

    def forward(self, feats: Sequence[Sequence[Tensor]]) -> Tensor:
        self._check(feats)
        return self.predict_layers[-1](feats[-1][-1])

    def forward_all(self, feats: Sequence[Sequence[Tensor]]) -> list[Tensor]:
        self._check(feats)
        return [
            self.predict_layers[i * self.num_units + j](feats[i][j])
            for i in range(self.num_stages)
            for j in range(self.num_units)
        ]


def _backbone_args(config: PoseModelConfig) -> dict:
    defaults = MSPN_ARGS if config.backbone == "mspn" else RSN_ARGS
    return {**defaults, **config.backbone_args}


class MSPNKind(HeadKind):
    """MSPN / RSN: the last level's heatmaps are the output and the decode's input (MegviiHeatmap)."""

    name = "mspn"
    raw_is_coordinates = False
    # Megvii targets peak at 255 (a kernel-5 blob on a 48x64 map has a spread of ~9): a trained model's heatmaps
    trained_output_std = 9.0
    train_outputs = frozenset({"heatmaps", "level_heatmaps"})
    default_losses = ("mspn_levels",)

    def check_config(self, config: PoseModelConfig) -> None:
        super().check_config(config)
        if config.backbone not in ("mspn", "rsn"):
            raise ValueError(f"the mspn head needs the mspn or rsn backbone, got {config.backbone!r}")
        if config.deconv_out_channels:
            raise ValueError("the mspn head has no deconvolutions: set deconv_out_channels=() (heatmaps at input / 4)")

    def build(self, config: PoseModelConfig, in_channels: int) -> MSPNHead:
        self.check_config(config)
        a = _backbone_args(config)
        w, h = config.heatmap_size
        return MSPNHead(a["num_stages"], a["num_units"], (h, w), in_channels, config.num_keypoints)

    def scale_last_layer(self, head: MSPNHead, feats, std: float) -> None:
        bn = head.predict_layers[-1].conv_layers[1].bn  # no activation after it, and the resize is linear
        factor = std / float(head(feats).std())
        bn.weight.mul_(factor)
        bn.bias.mul_(factor)

    def output_spec(self, config: PoseModelConfig) -> OutputSpec:
        return OutputSpec(name="heatmaps", kind="heatmap", flip_shift=config.shift_heatmap, codec=config.codec)

    def codec(self, config: PoseModelConfig) -> MultiLevelMegviiHeatmap:
        """MMPose's ``GenerateTarget(multilevel=True)``: one Megvii target per kernel of
        ``models.megvii_heatmap.megvii_levels`` (e.g. 15 / 11 / 9 / 7 / 5 with several stages)."""
        a = _backbone_args(config)
        kernels, _ = megvii_levels(a["num_stages"], a["num_units"])
        return MultiLevelMegviiHeatmap(config.input_size, config.heatmap_size, kernels)

    def train_forward(self, head: MSPNHead, feats) -> dict[str, Tensor]:
        """``level_heatmaps`` [S * U, B, K, H, W] (every stage and unit, MMPose ``MSPNHead.forward``) and ``heatmaps``
        (the last one) [B, K, H, W]."""
        levels = torch.stack(head.forward_all(feats))
        return {"heatmaps": levels[-1], "level_heatmaps": levels}

    def loss_kwargs(self, head: MSPNHead) -> dict:
        """``levels`` for ``training.losses.mspn_levels_loss``: (MMPose's ``level_indices``, units per stage)."""
        return {"levels": (megvii_levels(head.num_stages, head.num_units)[1], head.num_units)}


KIND = MSPNKind()
