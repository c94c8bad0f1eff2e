"""MobileNetV2 backbone with MMPose's parameter names, returning the last stage (``conv2``, 1280 channels, stride 32).

Follows ``mmpose/models/backbones/mobilenet_v2.py`` (MMPose 1.3.2) as the ``td-hm_mobilenetv2_*`` and
``td-reg_mobilenetv2_rle-*`` configs build it: ``out_indices=(7,)`` (the final 1x1 ``conv2``), BatchNorm (eps 1e-5,
MMPose's ``dict(type='BN')``) and ReLU6 after every convolution but the projection of each inverted residual block.
Each convolution is an mmcv ``ConvModule`` (:class:`ConvModule` here): ``conv`` (no bias: a norm follows), ``bn``, and
a parameter-free activation, so the state-dict keys are MMPose's: ``conv1.conv.weight``, ``conv1.bn.*``,
``layer1.0.conv.0.conv.weight`` (expansion, absent when the expand ratio is 1), ``.conv.1`` (3x3 depthwise),
``.conv.2`` (1x1 projection), ..., ``layer7.0...``, ``conv2.conv.weight``, ``conv2.bn.*``.

Architecture: Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018.
"""

from __future__ import annotations

from torch import Tensor, nn

#: (expand ratio, channels, blocks, stride of the first block) per layer: MMPose ``MobileNetV2.arch_settings``.
ARCH_SETTINGS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def make_divisible(value: float, divisor: int, min_value: int | None = None, min_ratio: float = 0.9) -> int:
    """MMPose's ``make_divisible`` (``mmpose/models/backbones/utils/make_divisible.py``): ``value`` rounded to the
    nearest multiple of ``divisor`` (at least ``min_value``, default ``divisor``), one ``divisor`` more when that
    loses over 10 %."""
    min_value = divisor if min_value is None else min_value
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < min_ratio * value:
        new_value += divisor
    return new_value


class ConvModule(nn.Module):
    """mmcv's ``ConvModule`` as MMPose's mobile backbones use it: ``conv`` (bias-free) -> ``bn`` -> activation.

    Args:
        in_channels, out_channels, kernel_size, stride, padding, groups: of the ``nn.Conv2d``.
        act: ``"relu"``, ``"relu6"`` or None (no activation).

    Input: float [B, in_channels, H, W]. Output: float [B, out_channels, H', W'] (H' = H / stride for 'same' padding).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        groups: int = 1,
        act: str | None = "relu",
    ):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)  # mmcv BN: eps 1e-5, momentum 0.1 (torch's defaults)
        activations = {"relu": nn.ReLU, "relu6": nn.ReLU6}
        if act is not None and act not in activations:
            raise ValueError(f"unsupported activation {act!r}; use 'relu', 'relu6' or None")
        self.activate = activations[act](inplace=True) if act is not None else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.activate(self.bn(self.conv(x)))


class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1x1 expansion (skipped at ratio 1), 3x3 depthwise (stride here), linear 1x1 projection,
    and the identity added when the stride is 1 and the widths match. Names ``conv.0``, ``conv.1`` (, ``conv.2``).

    Input: float [B, in_channels, H, W]. Output: float [B, out_channels, H / stride, W / stride].

    Raises:
        ValueError: a stride other than 1 or 2.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: int):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        self.use_res_connect = stride == 1 and in_channels == out_channels
        hidden = int(round(in_channels * expand_ratio))
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvModule(in_channels, hidden, 1, act="relu6"))
        layers += [
            ConvModule(hidden, hidden, 3, stride=stride, padding=1, groups=hidden, act="relu6"),
            ConvModule(hidden, out_channels, 1, act=None),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 backbone returning ``conv2``'s output (MMPose ``out_indices=(7,)``).

    Args:
        widen_factor: width multiplier of every layer but ``conv2`` (1.0 in the published models; smaller values give
            test models with the same keys). ``conv2`` has 1280 channels, ``int(1280 * widen_factor)`` above 1.

    Input: float32 [B, 3, H, W], H and W multiples of 32 (normalised image).
    Output: ``(x,)``: float32 [B, out_channels, H / 32, W / 32] (1280 channels: [B, 1280, 8, 6] for 256x192).

    Raises:
        ValueError: a non-positive widen factor.
    """

    def __init__(self, widen_factor: float = 1.0):
        super().__init__()
        if not widen_factor > 0:
            raise ValueError(f"widen_factor must be positive, got {widen_factor}")
        self.widen_factor = widen_factor
        in_ch = make_divisible(32 * widen_factor, 8)
        self.conv1 = ConvModule(3, in_ch, 3, stride=2, padding=1, act="relu6")
        for i, (expand_ratio, channels, num_blocks, stride) in enumerate(ARCH_SETTINGS):
            out_ch = make_divisible(channels * widen_factor, 8)
            blocks = [
                InvertedResidual(in_ch if j == 0 else out_ch, out_ch, stride if j == 0 else 1, expand_ratio)
                for j in range(num_blocks)
            ]
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            in_ch = out_ch
        self.out_channels = int(1280 * widen_factor) if widen_factor > 1.0 else 1280
        self.conv2 = ConvModule(in_ch, self.out_channels, 1, act="relu6")
        self._init_weights()

    def _init_weights(self) -> None:
        """MMPose ``MobileNetV2``'s default ``init_cfg``: Kaiming-normal convolutions (fan_out, ReLU gain), unit
        BatchNorm. (The published configs start from ImageNet weights instead.)"""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> tuple[Tensor]:
        x = self.conv1(x)
        for i in range(len(ARCH_SETTINGS)):
            x = getattr(self, f"layer{i + 1}")(x)
        return (self.conv2(x),)


def from_config(config) -> MobileNetV2:
    """The ``"mobilenetv2"`` builder of ``models.backbones``: ``backbone_args`` ``{"widen_factor": float}`` (1.0 when
    absent).

    Raises:
        ValueError: other ``backbone_args`` keys, or a non-positive widen factor.
    """
    args = dict(config.backbone_args)
    unknown = sorted(set(args) - {"widen_factor"})
    if unknown:
        raise ValueError(f"the mobilenetv2 backbone takes backbone_args 'widen_factor' only, got {unknown}")
    return MobileNetV2(widen_factor=float(args.get("widen_factor", 1.0)))


__all__ = ["ARCH_SETTINGS", "ConvModule", "InvertedResidual", "MobileNetV2", "from_config", "make_divisible"]
