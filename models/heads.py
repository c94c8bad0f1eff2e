"""Pose heads with MMPose's parameter names: SimpleBaseline heatmap, integral, DeepPose regression and RLE heads.

* :class:`HeatmapHead` follows ``mmpose/models/heads/heatmap_heads/heatmap_head.py`` (Xiao et al.,
  "Simple Baselines for Human Pose Estimation and Tracking", ECCV 2018): ``deconv_layers`` =
  n x [ConvTranspose2d (no bias), BatchNorm2d, ReLU] (Sequential indices 0,1,2, 3,4,5, ...), then
  ``final_layer`` = 1x1 Conv2d with bias. MMPose's ``conv_layers`` is an ``nn.Identity`` in every
  config here and has no parameters, so it is omitted.
* :class:`IntegralRegressionHead` follows ``mmpose/models/heads/regression_heads/
  integral_regression_head.py`` (and ``dsnt_head.py``, its subclass used by all three configs):
  ``simplebaseline_head`` (a :class:`HeatmapHead`) -> logits z [B, K, H, W]; heatmap
  p = softmax over the H*W pixels of ``beta * z``; coordinates = sum(p * grid) with the grid
  ``arange(W) / W`` (``arange(H) / H``), stored as parameters ``linspace_x`` [1, 1, 1, W] and
  ``linspace_y`` [1, 1, H, 1] so they appear in the state dict exactly as in MMPose's checkpoints.
  IPR (Sun et al., ECCV 2018) and DSNT (Nibali et al., 2018) use beta 1; Debias-IPR
  (Gu et al., ICCV 2021) uses beta 10 and the debias correction below.

* :class:`RegressionHead` follows ``mmpose/models/heads/regression_heads/regression_head.py`` (Toshev and Szegedy,
  "DeepPose", CVPR 2014) behind MMPose's ``GlobalAveragePooling`` neck (``mmpose/models/necks/gap_neck.py``, no
  parameters): global average pool, then ``fc`` = Linear(C, K * 2) -> [B, K, 2] normalised coordinates.
* :class:`RLEHead` follows ``mmpose/models/heads/regression_heads/rle_head.py`` (Li et al., "Human Pose Regression
  with Residual Log-likelihood Estimation", ICCV 2021): the same pool, ``fc`` = Linear(C, K * 4) -> [B, K, 4] =
  x, y (normalised) and sigma logits; it owns ``loss_module`` (MMPose's ``RLELoss`` and its RealNVP flow,
  :class:`models.flow.RLEFlow`), whose parameters are part of every RLE checkpoint.

Debias (MMPose's variant): with C = sum_{pixels} exp(z) computed on the logits WITHOUT beta,
``x <- C / (C - 1) * (x - 1 / (2 C))`` (likewise y; MMPose uses 1 where the paper has the map
size). exp(z) overflows float32 for z > 88 and float16 for z > 11, so this module computes
log C with a max-shifted log-sum-exp and rewrites the correction in terms of exp(-log C) (or
exp(log C) when C < 1); the result is finite for any finite logits and equals MMPose's formula
wherever that formula is finite.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.flow import RLEFlow


def _last_feature(feats: Tensor | Sequence[Tensor]) -> Tensor:
    """Backbones return a tuple of stages; heads use the last one (MMPose ``feats[-1]``)."""
    if isinstance(feats, Tensor):
        return feats
    if not isinstance(feats, (tuple, list)) or not feats:
        raise TypeError(f"expected a Tensor or a non-empty tuple of Tensors, got {type(feats).__name__}")
    return feats[-1]


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
        x = _last_feature(feats)
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"HeatmapHead expects [B, {self.in_channels}, h, w], got {list(x.shape)}")
        return self.final_layer(self.deconv_layers(x))


def log_sum_exp_spatial(logits: Tensor) -> Tensor:
    """log(sum over H*W of exp(logits)) for [B, K, H, W] -> [B, K, 1], stable in float16/32.

    Shifts by the per-map maximum before exp, so no intermediate exceeds H*W.
    """
    flat = logits.flatten(2)
    m = flat.amax(dim=2, keepdim=True)
    return m + torch.log(torch.exp(flat - m).sum(dim=2, keepdim=True))


def debias_coordinates(coords: Tensor, log_c: Tensor) -> Tensor:
    """MMPose's Debias-IPR correction ``C / (C - 1) * (coords - 1 / (2 C))`` from log C.

    Args:
        coords: [B, K, D] soft-argmax coordinates (normalised units).
        log_c: [B, K, 1] log of C = sum exp(logits) (see :func:`log_sum_exp_spatial`).

    Returns:
        [B, K, D], same dtype. For log C > 0 it evaluates ``(x - r / 2) / (1 - r)`` with
        r = exp(-log C) <= 1; otherwise ``(c x - 1 / 2) / (c - 1)`` with c = exp(log C) <= 1. Neither
        branch can overflow; only C == 1 exactly (a true pole of the formula) is non-finite.
    """
    pos = log_c > 0
    r = torch.exp(-torch.clamp(log_c, min=0.0))
    c = torch.exp(torch.clamp(log_c, max=0.0))
    # Each branch gets a harmless denominator where it is not selected, so that neither the value
    # nor the gradient of the unselected branch is inf/NaN (torch.where back-propagates into both).
    one = torch.ones_like(r)
    big = (coords - 0.5 * r) / torch.where(pos, 1.0 - r, one)
    small = (c * coords - 0.5) / torch.where(pos, -one, c - 1.0)
    return torch.where(pos, big, small)


class IntegralRegressionHead(nn.Module):
    """Integral (soft-argmax) regression head: IPR, DSNT and Debias-IPR as configurations.

    Args:
        in_channels: backbone channels (2048).
        in_featuremap_size: (w, h) of the backbone feature map (8, 8) for a 256x256 input.
        num_joints: K.
        beta: softmax multiplier (1 for IPR / DSNT, 10 for Debias-IPR).
        debias: apply the Debias-IPR correction (see module docstring).
        deconv_out_channels, deconv_kernel_sizes: the SimpleBaseline stack (:class:`HeatmapHead`).

    ``forward`` input: [B, in_channels, h, w] (or a tuple whose last element is that).
    ``forward`` output: float [B, K, 2] coordinates (x, y) normalised so that crop pixel
    = coordinate * (input w, input h); MMPose's grid puts pixel i of the heatmap at i / W.

    Raises:
        ValueError: empty deconvolution stack (MMPose's no-deconv variant is not needed here).
    """

    def __init__(
        self,
        in_channels: int,
        in_featuremap_size: tuple[int, int],
        num_joints: int,
        beta: float = 1.0,
        debias: bool = False,
        deconv_out_channels: Sequence[int] = (256, 256, 256),
        deconv_kernel_sizes: Sequence[int] = (4, 4, 4),
    ):
        super().__init__()
        if not deconv_out_channels:
            raise ValueError("IntegralRegressionHead needs at least one deconvolution layer")
        self.num_joints = num_joints
        self.beta = float(beta)
        self.debias = bool(debias)
        self.simplebaseline_head = HeatmapHead(in_channels, num_joints, deconv_out_channels, deconv_kernel_sizes)
        f = 2 ** len(deconv_out_channels)
        w, h = int(in_featuremap_size[0]) * f, int(in_featuremap_size[1]) * f
        self.heatmap_size = (w, h)
        self.linspace_x = nn.Parameter(
            torch.arange(w, dtype=torch.float32).reshape(1, 1, 1, w) / w, requires_grad=False
        )
        self.linspace_y = nn.Parameter(
            torch.arange(h, dtype=torch.float32).reshape(1, 1, h, 1) / h, requires_grad=False
        )

    def logits(self, feats: Tensor | Sequence[Tensor]) -> Tensor:
        """Heatmap logits z [B, K, H, W] before beta and softmax."""
        return self.simplebaseline_head(feats)

    def integrate(self, logits: Tensor) -> tuple[Tensor, Tensor]:
        """Soft-argmax of logits [B, K, H, W] -> (coords [B, K, 2] normalised, heatmaps [B, K, H, W]).

        ``heatmaps`` are the softmax probabilities (each map sums to 1), used by the DSNT loss.
        float16 / bfloat16 logits are integrated in float32 and the results cast back (a few
        thousand multiply-adds; it keeps Debias' beta 10 accurate in half precision).
        """
        b, k, h, w = logits.shape
        if (w, h) != self.heatmap_size:
            raise ValueError(f"logits are {w}x{h}, the head's grid is {self.heatmap_size[0]}x{self.heatmap_size[1]}")
        out_dtype = logits.dtype
        if out_dtype in (torch.float16, torch.bfloat16):
            # beta * logits needs more than 16-bit precision (float16 ulp is 0.5 at 1000): integrate in float32
            logits = logits.float()
        heatmaps = F.softmax((logits * self.beta).reshape(b, k, h * w), dim=2).reshape(b, k, h, w)
        x = (heatmaps * self.linspace_x.to(logits.dtype)).reshape(b, k, -1).sum(dim=2, keepdim=True)
        y = (heatmaps * self.linspace_y.to(logits.dtype)).reshape(b, k, -1).sum(dim=2, keepdim=True)
        coords = torch.cat([x, y], dim=-1)
        if self.debias:
            coords = debias_coordinates(coords, log_sum_exp_spatial(logits))
        return coords.to(out_dtype), heatmaps.to(out_dtype)

    def forward_with_heatmaps(self, feats: Tensor | Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        """(coords [B, K, 2], heatmaps [B, K, H, W]) — as MMPose ``IntegralRegressionHead.forward``."""
        return self.integrate(self.logits(feats))

    def forward(self, feats: Tensor | Sequence[Tensor]) -> Tensor:
        return self.integrate(self.logits(feats))[0]


def _global_average_pool(feats: Tensor | Sequence[Tensor], in_channels: int, what: str) -> Tensor:
    """MMPose ``GlobalAveragePooling`` on the last feature map: [B, C, h, w] -> [B, C]."""
    x = _last_feature(feats)
    if x.ndim != 4 or x.shape[1] != in_channels:
        raise ValueError(f"{what} expects [B, {in_channels}, h, w], got {list(x.shape)}")
    return F.adaptive_avg_pool2d(x, 1).flatten(1)


class RegressionHead(nn.Module):
    """DeepPose head: global average pool + ``fc`` to K x 2 normalised coordinates (MMPose ``RegressionHead``).

    Args:
        in_channels: backbone channels (2048 for ResNet-50/101/152 C5).
        num_joints: K.
        outputs_per_joint: values per joint from ``fc`` (2; :class:`RLEHead` uses 4).
        loss_module: a module with parameters registered as ``loss_module`` before ``fc`` (MMPose's order; RLE's
            flow), or None.

    ``forward`` input: [B, in_channels, h, w] (or a tuple whose last element is that).
    ``forward`` output: float [B, K, 2] coordinates (x, y) normalised to the crop: crop pixel = value * (w, h)
    (MMPose ``RegressionLabel``).

    Raises:
        ValueError: a feature map of the wrong shape.
    """

    def __init__(
        self, in_channels: int, num_joints: int, outputs_per_joint: int = 2, loss_module: nn.Module | None = None
    ):
        super().__init__()
        self.in_channels = int(in_channels)
        self.num_joints = int(num_joints)
        self.outputs_per_joint = int(outputs_per_joint)
        if loss_module is not None:
            self.loss_module = loss_module
        self.fc = nn.Linear(self.in_channels, self.num_joints * self.outputs_per_joint)
        self._init_weights()

    def _init_weights(self) -> None:
        """MMPose ``default_init_cfg``: Normal(std 0.01), bias 0 on every Linear layer of the head (mmengine applies it
        recursively, so for :class:`RLEHead` it also re-initialises the flow's layers, as in MMPose's training)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)

    def forward_raw(self, feats: Tensor | Sequence[Tensor]) -> Tensor:
        """MMPose ``forward``: [B, K, outputs_per_joint] straight from ``fc``."""
        x = _global_average_pool(feats, self.in_channels, type(self).__name__)
        return self.fc(x).reshape(-1, self.num_joints, self.outputs_per_joint)

    def forward(self, feats: Tensor | Sequence[Tensor]) -> Tensor:
        return self.forward_raw(feats)


class RLEHead(RegressionHead):
    """RLE head: global average pool + ``fc`` to K x 4 (x, y, sigma_x, sigma_y logits), plus the flow of its loss.

    Args:
        in_channels: backbone channels.
        num_joints: K.

    ``forward_raw`` (MMPose ``RLEHead.forward``): float [B, K, 4] = x, y normalised, sigma logits.
    ``forward`` (what the exported graph outputs): float [B, K, 3] = x, y normalised and the keypoint score
    ``mean_d(1 - sigmoid(sigma_d))``: MMPose's ``RLEHead.predict`` applies the sigmoid and ``RegressionLabel.decode``
    takes ``(1 - sigma).mean(-1)``. The score is linear in sigma, so averaging the scores of a crop and its mirror
    (the flip test of ``models.card.ModelCard.decode``) equals MMPose's averaging of the sigmas.

    ``loss_module`` (:class:`models.flow.RLEFlow`) holds the RealNVP flow of MMPose's ``RLELoss``
    (state-dict keys ``head.loss_module.flow_model.*``); ``training.losses.rle_loss`` uses it.
    """

    def __init__(self, in_channels: int, num_joints: int):
        super().__init__(in_channels, num_joints, outputs_per_joint=4, loss_module=RLEFlow())

    @staticmethod
    def score(sigma_logits: Tensor) -> Tensor:
        """[..., 2] sigma logits -> [...] keypoint scores ``mean(1 - sigmoid(sigma))`` (MMPose ``RegressionLabel``)."""
        return (1 - sigma_logits.sigmoid()).mean(dim=-1)

    def forward(self, feats: Tensor | Sequence[Tensor]) -> Tensor:
        raw = self.forward_raw(feats)
        return torch.cat([raw[..., :2], self.score(raw[..., 2:4]).unsqueeze(-1)], dim=-1)
