"""The multi-stage heatmap head kind of CPM and the stacked hourglass (``"cpm"``): one heatmap set per backbone stage,
the last one served.

:class:`CPMHead` follows ``mmpose/models/heads/heatmap_heads/cpm_head.py`` (MMPose 1.3.2 ``CPMHead``, used by the
``td-hm_cpm_*`` and ``td-hm_hourglass52_*`` configs): per stage ``i`` an optional deconvolution stack
``multi_deconv_layers.i`` ([ConvTranspose2d (no bias), BatchNorm2d, ReLU] x n; none in the configs, so
``nn.Identity``) and ``multi_final_layers.i``, a 1x1 Conv2d with bias (hourglass) or ``nn.Identity`` (CPM:
``final_layer=None``, its backbone already outputs K heatmaps per stage).

Stages: ``config.backbone_args["num_stacks"]`` (hourglass) or ``["num_stages"]`` (CPM), defaulting as the backbone's
``DEFAULTS`` do; the final layer is left out for the ``cpm`` backbone (:data:`NO_FINAL_LAYER`).

:data:`KIND`: the exported graph outputs the LAST stage's ``heatmaps`` [B, K, H, W] only (MMPose ``CPMHead.predict``
decodes ``forward(feats)[-1]``, and flip-tests it), so the card is the ``heatmap`` kind's (``models.codecs``'
``decode_heatmaps``, ``flip_back_heatmaps`` with ``shift_heatmap``) and serving is unchanged. Training
(:meth:`CPMKind.train_forward`) gives every stage as ``stage_heatmaps`` [S, B, K, H, W] (and the last as ``heatmaps``):
MMPose's ``CPMHead.loss`` is ``KeypointMSELoss`` per stage against the same target, summed
(``training.losses`` ``keypoint_mse_stages``). Targets: ``models.codecs.MSRAHeatmap`` (sigma ``config.sigma``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from models.card import OutputSpec
from models.codecs import MSRAHeatmap
from models.heads.base import HeadKind

if TYPE_CHECKING:
    from models.zoo import PoseModelConfig

#: Backbones whose stages are heatmaps already: ``CPMHead(final_layer=None)`` (MMPose's CPM configs).
NO_FINAL_LAYER = frozenset({"cpm"})

_PADDING = {4: (1, 0), 3: (1, 1), 2: (0, 0)}  # deconvolution kernel -> (padding, output_padding), as HeatmapHead


class CPMHead(nn.Module):
    """Per-stage deconvolutions (optional) and 1x1 convolutions to K heatmaps (MMPose ``CPMHead``).

    Args:
        in_channels: channels of each stage's feature map.
        out_channels: K heatmaps.
        num_stages: S, the backbone's stages.
        deconv_out_channels, deconv_kernel_sizes: each stage's deconvolution stack (empty: none, MMPose ``None``;
            kernels 2, 3 or 4, stride 2).
        final_layer: a 1x1 Conv2d with bias per stage (False: ``nn.Identity``, then ``in_channels`` must be K).

    ``forward(feats)``: a tuple of S float [B, in_channels, h, w] -> the last stage's float [B, K, H, W] heatmap
    logits (H = h * 2**n, n deconvolutions); :meth:`forward_stages` gives all S.

    Raises:
        ValueError: mismatched deconvolution lists, an unsupported kernel, or no final layer with
            ``in_channels`` != ``out_channels``; (forward) not S feature maps.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_stages: int,
        deconv_out_channels: Sequence[int] = (),
        deconv_kernel_sizes: Sequence[int] = (),
        final_layer: bool = True,
    ):
        super().__init__()
        if len(deconv_out_channels) != len(deconv_kernel_sizes):
            raise ValueError(
                f"deconv_out_channels {tuple(deconv_out_channels)} and deconv_kernel_sizes "
                f"{tuple(deconv_kernel_sizes)} must have the same length"
            )
        if bad := sorted(set(deconv_kernel_sizes) - set(_PADDING)):
            raise ValueError(f"unsupported deconvolution kernel sizes {bad} (use 2, 3 or 4)")
        ch = deconv_out_channels[-1] if deconv_out_channels else in_channels
        if not final_layer and ch != out_channels:
            raise ValueError(f"without a final layer the stages must have {out_channels} channels, got {ch}")
        self.multi_deconv_layers = nn.ModuleList(
            self._deconvs(in_channels, deconv_out_channels, deconv_kernel_sizes) for _ in range(num_stages)
        )
        self.multi_final_layers = nn.ModuleList(
            nn.Conv2d(ch, out_channels, kernel_size=1) if final_layer else nn.Identity() for _ in range(num_stages)
        )
        self.in_channels, self.out_channels, self.num_stages = in_channels, out_channels, num_stages
        self._init_weights()

    @staticmethod
    def _deconvs(in_channels: int, out_channels: Sequence[int], kernels: Sequence[int]) -> nn.Module:
        if not out_channels:
            return nn.Identity()
        layers: list[nn.Module] = []
        for out_ch, k in zip(out_channels, kernels, strict=True):
            padding, output_padding = _PADDING[k]
            layers += [
                nn.ConvTranspose2d(in_channels, out_ch, k, 2, padding, output_padding=output_padding, bias=False),
                nn.BatchNorm2d(out_ch),
                nn.ReLU(inplace=True),
            ]
            in_channels = out_ch
        return nn.Sequential(*layers)

    def _init_weights(self) -> None:
        """MMPose ``CPMHead.default_init_cfg``: Normal(std 0.001) convolutions (bias 0), BatchNorm weight 1."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(m.weight, std=0.001)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _check(self, feats: Sequence[Tensor]) -> None:
        if isinstance(feats, Tensor) or len(feats) != self.num_stages:
            got = "a Tensor" if isinstance(feats, Tensor) else f"{len(feats)}"
            raise ValueError(f"CPMHead expects {self.num_stages} stage feature maps, got {got}")

    def _stage(self, i: int, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"CPMHead expects [B, {self.in_channels}, h, w] per stage, got {list(x.shape)}")
        return self.multi_final_layers[i](self.multi_deconv_layers[i](x))

    def forward_stages(self, feats: Sequence[Tensor]) -> list[Tensor]:
        """Every stage's heatmap logits (MMPose ``CPMHead.forward``), stage 1 first."""
        self._check(feats)
        return [self._stage(i, x) for i, x in enumerate(feats)]

    def forward(self, feats: Sequence[Tensor]) -> Tensor:
        self._check(feats)
        return self._stage(self.num_stages - 1, feats[-1])


def num_stages(config: PoseModelConfig) -> int:
    """S of ``config``'s backbone: ``backbone_args`` ``num_stacks`` (hourglass) or ``num_stages`` (CPM), else the
    backbone's default.

    Raises:
        ValueError: a backbone without stages (not hourglass / cpm).
    """
    key = {"hourglass": "num_stacks", "cpm": "num_stages"}.get(config.backbone)
    if key is None:
        raise ValueError(f"the cpm head needs a multi-stage backbone (hourglass, cpm), got {config.backbone!r}")
    if key in config.backbone_args:
        return int(config.backbone_args[key])
    from models.backbones import cpm, hourglass

    return int((hourglass if config.backbone == "hourglass" else cpm).DEFAULTS[key])


class CPMKind(HeadKind):
    """CPM / stacked hourglass: the last stage's heatmap logits are served; every stage is trained."""

    name = "cpm"
    raw_is_coordinates = False
    trained_output_std = 2.0  # peaked heatmaps
    train_outputs = frozenset({"heatmaps", "stage_heatmaps"})
    default_losses = ("keypoint_mse_stages",)

    def check_config(self, config: PoseModelConfig) -> None:
        super().check_config(config)
        num_stages(config)

    def build(self, config: PoseModelConfig, in_channels: int) -> CPMHead:
        return CPMHead(
            in_channels=in_channels,
            out_channels=config.num_keypoints,
            num_stages=num_stages(config),
            deconv_out_channels=config.deconv_out_channels,
            deconv_kernel_sizes=config.deconv_kernel_sizes,
            final_layer=config.backbone not in NO_FINAL_LAYER,
        )

    def scale_last_layer(self, head: CPMHead, feats: Sequence[Tensor], std: float) -> None:
        """Scale the last stage's final 1x1 convolution. Without final layers (CPM) the heatmaps are the backbone's;
        then the head has nothing to scale.

        Raises:
            NotImplementedError: a head without final layers (scale the backbone's last ``out_convs`` instead).
        """
        last = head.multi_final_layers[-1]
        if not isinstance(last, nn.Conv2d):
            raise NotImplementedError("the head has no final layer: scale the backbone's last out_convs instead")
        last.weight.mul_(std / float(head(feats).std()))

    def output_spec(self, config: PoseModelConfig) -> OutputSpec:
        return OutputSpec(name="heatmaps", kind="heatmap", flip_shift=config.shift_heatmap)

    def codec(self, config: PoseModelConfig) -> MSRAHeatmap:
        return MSRAHeatmap(config.input_size, config.heatmap_size, config.sigma)

    def train_forward(self, head: CPMHead, feats: Sequence[Tensor]) -> dict[str, Tensor]:
        stages = head.forward_stages(feats)
        return {"heatmaps": stages[-1], "stage_heatmaps": torch.stack(stages)}


KIND = CPMKind()
