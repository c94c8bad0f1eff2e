"""The integral (soft-argmax) head kind: IPR, DSNT and Debias-IPR (``"integral"``).

:class:`IntegralRegressionHead` follows ``mmpose/models/heads/regression_heads/integral_regression_head.py`` (and
``dsnt_head.py``, its subclass used by all three configs): ``simplebaseline_head`` (a
:class:`~models.heads.heatmap.HeatmapHead`) -> logits z [B, K, H, W]; heatmap p = softmax over the H*W pixels of
``beta * z``; coordinates = sum(p * grid) with the grid ``arange(W) / W`` (``arange(H) / H``), stored as parameters
``linspace_x`` [1, 1, 1, W] and ``linspace_y`` [1, 1, H, 1] so they appear in the state dict exactly as in MMPose's
checkpoints. IPR (Sun et al., ECCV 2018) and DSNT (Nibali et al., 2018) use beta 1; Debias-IPR (Gu et al., ICCV 2021)
uses beta 10 and the debias correction below.

Debias (MMPose's variant): with C = sum_{pixels} exp(z) computed on the logits WITHOUT beta,
``x <- C / (C - 1) * (x - 1 / (2 C))`` (likewise y; MMPose uses 1 where the paper has the map
size). exp(z) overflows float32 for z > 88 and float16 for z > 11, so this module computes
log C with a max-shifted log-sum-exp and rewrites the correction in terms of exp(-log C) (or
exp(log C) when C < 1); the result is finite for any finite logits and equals MMPose's formula
wherever that formula is finite.

:data:`KIND`: output ``coords`` [B, K, 2] normalised (card kind ``keypoints``: ``models.codecs.decode_integral``;
flip-back ``models.codecs.flip_back_keypoints`` with ``shift_coords``); training targets
``models.codecs.IntegralRegressionLabel`` (normalised coordinates and normalised Gaussian heatmaps); training outputs
``coords`` and the softmax ``heatmaps`` (losses ``smooth_l1`` with ``js_discrete`` or ``keypoint_mse``); a
SimpleBaseline checkpoint loads into it (:func:`heatmap_to_integral_keys`, MMPose's init of the integral configs from
``td-hm_res50``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.codecs import IntegralRegressionLabel
from models.heads.base import HeadKind
from models.heads.heatmap import HeatmapHead

if TYPE_CHECKING:
    from models.zoo import PoseModelConfig


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


def heatmap_to_integral_keys(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename SimpleBaseline head keys for an integral head (what MMPose's ``IntegralRegressionHead``
    load hook does when the integral configs initialise from ``td-hm_res50``):
    ``head.deconv_layers.*`` -> ``head.simplebaseline_head.deconv_layers.*`` and
    ``head.final_layer.*`` -> ``head.simplebaseline_head.final_layer.*``. Other keys are unchanged.
    """
    out = {}
    for k, v in state_dict.items():
        if k.startswith("head.deconv_layers.") or k.startswith("head.final_layer."):
            k = "head.simplebaseline_head." + k[len("head.") :]
        out[k] = v
    return out


class IntegralKind(HeadKind):
    """IPR / DSNT / Debias-IPR: heatmap logits integrated to normalised coordinates in the graph."""

    name = "integral"
    raw_is_coordinates = False
    trained_output_std = 2.0  # the logits of peaked heatmaps
    train_outputs = frozenset({"coords", "heatmaps"})
    default_losses = ("smooth_l1", "js_discrete")

    def check_config(self, config: PoseModelConfig) -> None:
        """Every field applies (``beta``, ``debias``)."""

    def build(self, config: PoseModelConfig, in_channels: int) -> IntegralRegressionHead:
        return IntegralRegressionHead(
            in_channels=in_channels,
            in_featuremap_size=config.feature_size,
            num_joints=config.num_keypoints,
            beta=config.beta,
            debias=config.debias,
            deconv_out_channels=config.deconv_out_channels,
            deconv_kernel_sizes=config.deconv_kernel_sizes,
        )

    def scale_last_layer(self, head: IntegralRegressionHead, feats: Tensor, std: float) -> None:
        head.simplebaseline_head.final_layer.weight.mul_(std / float(head.logits(feats).std()))

    def codec(self, config: PoseModelConfig) -> IntegralRegressionLabel:
        return IntegralRegressionLabel(config.input_size, config.heatmap_size, config.sigma, normalize=True)

    def train_forward(self, head: IntegralRegressionHead, feats: Tensor) -> dict[str, Tensor]:
        """``coords`` and softmax ``heatmaps``, integrated in float32 from the logits (MMPose's autocast policy)."""
        logits = head.logits(feats)
        with torch.autocast(logits.device.type, enabled=False):
            coords, heatmaps = head.integrate(logits.float())
        return {"coords": coords, "heatmaps": heatmaps}

    def remap_state_dict(
        self, state_dict: Mapping[str, torch.Tensor], model: nn.Module
    ) -> tuple[Mapping[str, torch.Tensor], str | None]:
        """A SimpleBaseline (td-hm) checkpoint, MMPose's or ours: :func:`heatmap_to_integral_keys`, and the fixed grid
        (``head.linspace_x`` / ``_y``, not in a heatmap checkpoint) taken from ``model``."""
        if not any(k.startswith("head.final_layer.") for k in state_dict):
            return state_dict, None
        out = heatmap_to_integral_keys(state_dict)
        for k in ("head.linspace_x", "head.linspace_y"):
            out.setdefault(k, model.state_dict()[k])
        return out, "heatmap head keys renamed into the integral head (MMPose init from td-hm)"


KIND = IntegralKind()
