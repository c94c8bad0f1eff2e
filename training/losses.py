"""The training losses of the configs, computed exactly as MMPose 1.3.2 computes them.

* :func:`smooth_l1_loss` — ``SmoothL1Loss(use_target_weight=True)`` (``mmpose/models/losses/regression_loss.py``):
  ``F.smooth_l1_loss(pred * w, target * w)`` (beta 1, mean over N x K x 2) on normalised coordinates, w the
  keypoint weight (visible and inside the crop, ``models.codecs.IntegralRegressionLabel``).
* :func:`js_discrete_loss` — ``JSDiscretLoss(use_target_weight=True)`` (``mmpose/models/losses/classification_loss.py``):
  Jensen-Shannon divergence between the weighted softmax heatmap and the weighted normalised Gaussian
  target, ``KLDivLoss(reduction='none')`` terms with eps 1e-24, summed and divided by the batch size N.
* :func:`keypoint_mse_loss` — ``KeypointMSELoss(use_target_weight=True)`` (``mmpose/models/losses/heatmap_loss.py``):
  ``mean((pred - target)^2 * w)`` over N x K x H x W.

* :func:`keypoint_ohkm_mse_loss` — ``KeypointOHKMMSELoss(use_target_weight=True, topk=8)`` (same file): per sample,
  the mean over H x W of ``(pred * w - target * w)^2`` per keypoint, the ``topk`` largest averaged, then the mean over
  the batch.

* :func:`rle_loss` — ``RLELoss(use_target_weight=True)`` (``mmpose/models/losses/regression_loss.py``; Li et al.,
  "Human Pose Regression with Residual Log-likelihood Estimation", ICCV 2021): with ``sigma = sigmoid(sigma logits)``
  and the residual ``e = (pred - target) / (sigma + 1e-9)``, the loss per keypoint is
  ``log sigma - log phi(e)`` (``phi`` the RealNVP flow's density, ``models.flow``) plus, with ``residual``, the
  identity distribution ``Q``: Laplace ``log(2 sigma) + |e|`` (the configs') or Gaussian
  ``log(sqrt(2 pi) sigma) + e^2 / 2``; times the keypoint weight, divided by the batch size N, summed.

Each config's loss (:func:`pose_loss`) is MMPose's head loss: ``RegressionHead`` applies ``SmoothL1Loss`` to its
coordinates (DeepPose), ``RLEHead`` applies ``RLELoss`` to its coordinates and sigmas (RLE); ``DSNTHead`` sums its ``MultipleLossWrapper``
terms with weight 1 (``mmpose/models/heads/regression_heads/dsnt_head.py``): SmoothL1 + KeypointMSE on the
softmax heatmap for ``ipr_res50``, SmoothL1 + JSDiscret for ``ipr_res50_dsnt`` / ``ipr_res50_debias``;
``HeatmapHead`` applies KeypointMSE to its heatmaps for ``td-hm_res50``; ``CPMHead`` (CPM, stacked hourglass) applies
it to every stage's heatmaps against the same target and sums (``keypoint_mse_stages``, on ``stage_heatmaps``
[S, N, K, H, W]); ``MSPNHead`` (MSPN, RSN) trains every stage and unit against the Megvii target of its level
(``mspn_levels``, :func:`mspn_levels_loss`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Loss names a config may list (see :func:`pose_loss`).
LOSSES = ("smooth_l1", "js_discrete", "keypoint_mse", "rle", "keypoint_mse_stages", "mspn_levels")
#: The head outputs each loss takes (``HeadKind.train_outputs`` of ``models.heads`` names what a head gives).
LOSS_INPUTS: dict[str, frozenset[str]] = {
    "smooth_l1": frozenset({"coords"}),
    "js_discrete": frozenset({"heatmaps"}),
    "keypoint_mse": frozenset({"heatmaps"}),
    "rle": frozenset({"coords", "sigma"}),
    "keypoint_mse_stages": frozenset({"stage_heatmaps"}),
    "mspn_levels": frozenset({"level_heatmaps"}),
}
#: RLE's identity distributions Q (MMPose ``q_distribution``).
Q_DISTRIBUTIONS = ("laplace", "gaussian")


def _expand_weight(weight: Tensor, ndim: int) -> Tensor:
    while weight.ndim < ndim:
        weight = weight.unsqueeze(-1)
    return weight


def _check(pred: Tensor, target: Tensor, weight: Tensor, what: str) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"{what}: prediction {list(pred.shape)} and target {list(target.shape)} differ")
    if tuple(weight.shape) != tuple(pred.shape[:2]):
        raise ValueError(f"{what}: keypoint weights must be [N, K] = {list(pred.shape[:2])}, got {list(weight.shape)}")


def smooth_l1_loss(pred: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    """Weighted smooth L1 on coordinates (MMPose ``SmoothL1Loss``, ``use_target_weight=True``).

    Args:
        pred, target: float [N, K, 2] normalised coordinates (crop pixels / input size).
        weight: float [N, K] keypoint weights.

    Returns:
        scalar tensor: mean over N x K x 2 of smooth-L1 (beta 1) of ``pred * w - target * w``.

    Raises:
        ValueError: shapes that do not match.
    """
    _check(pred, target, weight, "smooth_l1_loss")
    w = _expand_weight(weight, pred.ndim)
    return F.smooth_l1_loss(pred * w, target * w)


def _kl(p: Tensor, q: Tensor) -> Tensor:
    """MMPose ``JSDiscretLoss.kl``: ``KLDivLoss(reduction='none')((q + 1e-24).log(), p)``, elementwise.

    torch computes that as ``xlogy(p, p) - p * input``; this is the same expression with the same values, except
    that ``xlogy``'s second argument is 1 where p == 0. The value there is 0 either way, but torch's gradient of
    ``xlogy(p, p)`` at p == 0 is 0 / 0 = NaN, which a keypoint weight of 0 (p = pred * 0) sends into the network
    (MMPose on torch 2.x); here it is 0, the derivative of the weighted loss, which does not depend on that keypoint.
    """
    log_q = (q + 1e-24).log()
    p_safe = torch.where(p > 0, p, torch.ones_like(p))
    return torch.xlogy(p, p_safe) - p * log_q


def js_discrete_loss(pred_heatmaps: Tensor, target_heatmaps: Tensor, weight: Tensor) -> Tensor:
    """Jensen-Shannon divergence of heatmap distributions (MMPose ``JSDiscretLoss``, ``use_target_weight=True``,
    ``size_average=True``).

    Args:
        pred_heatmaps: float [N, K, H, W] softmax heatmaps (each map sums to 1).
        target_heatmaps: float [N, K, H, W] normalised Gaussian targets (sum 1, or 0 for an absent keypoint).
        weight: float [N, K] keypoint weights.

    Returns:
        scalar tensor: ``sum(0.5 * (KL(p || m) + KL(q || m))) / N`` with p, q the weighted maps and m their mean.

    Raises:
        ValueError: shapes that do not match.
    """
    _check(pred_heatmaps, target_heatmaps, weight, "js_discrete_loss")
    w = _expand_weight(weight, pred_heatmaps.ndim)
    p, q = pred_heatmaps * w, target_heatmaps * w
    m = 0.5 * (p + q)
    loss = 0.5 * (_kl(p, m) + _kl(q, m))
    loss = loss / len(target_heatmaps)
    return loss.sum()


def keypoint_mse_loss(pred_heatmaps: Tensor, target_heatmaps: Tensor, weight: Tensor) -> Tensor:
    """Weighted heatmap MSE (MMPose ``KeypointMSELoss``, ``use_target_weight=True``, no empty-channel skip).

    Args:
        pred_heatmaps, target_heatmaps: float [N, K, H, W].
        weight: float [N, K] keypoint weights.

    Returns:
        scalar tensor: mean over N x K x H x W of ``(pred - target)^2 * w``.

    Raises:
        ValueError: shapes that do not match.
    """
    _check(pred_heatmaps, target_heatmaps, weight, "keypoint_mse_loss")
    mask = _expand_weight(weight, pred_heatmaps.ndim)
    return (F.mse_loss(pred_heatmaps, target_heatmaps, reduction="none") * mask).mean()


def keypoint_ohkm_mse_loss(pred_heatmaps: Tensor, target_heatmaps: Tensor, weight: Tensor, topk: int = 8) -> Tensor:
    """Heatmap MSE with online hard keypoint mining (MMPose ``KeypointOHKMMSELoss``, ``use_target_weight=True``).

    Args:
        pred_heatmaps, target_heatmaps: float [N, K, H, W].
        weight: float [N, K] keypoint weights.
        topk: hard keypoints kept per sample (8).

    Returns:
        scalar tensor: mean over N of (mean of the ``topk`` largest per-keypoint losses), each the mean over H x W
        of ``(pred * w - target * w)^2``.

    Raises:
        ValueError: shapes that do not match, or fewer than ``topk`` keypoints.
    """
    _check(pred_heatmaps, target_heatmaps, weight, "keypoint_ohkm_mse_loss")
    if pred_heatmaps.shape[1] < topk:
        raise ValueError(f"topk ({topk}) should not be larger than num_keypoints ({pred_heatmaps.shape[1]})")
    w = _expand_weight(weight, pred_heatmaps.ndim)
    per_keypoint = F.mse_loss(pred_heatmaps * w, target_heatmaps * w, reduction="none").mean(dim=(2, 3))
    return (per_keypoint.topk(topk, dim=1, sorted=False).values.sum(dim=1) / topk).mean()


#: MMPose's MSPN / RSN unit losses: KeypointMSE with ``loss_weight=0.25`` on units 1..U-1 of a stage, OHKM (weight 1)
#: on its last unit.
MSPN_MSE_WEIGHT = 0.25


def mspn_levels_loss(
    level_heatmaps: Tensor, target_levels: Tensor, weight: Tensor, level_indices: tuple[int, ...], num_units: int
) -> Tensor:
    """MMPose ``MSPNHead.loss``: every stage and unit's heatmaps against its level's Megvii target, summed; the last
    unit of each stage with :func:`keypoint_ohkm_mse_loss`, the others with ``0.25 *`` :func:`keypoint_mse_loss`.

    Args:
        level_heatmaps: float [S * U, N, K, H, W], stage-major (``MSPNHead.forward_all``).
        target_levels: float [N, L, K, H, W] (``models.megvii_heatmap.MultiLevelMegviiHeatmap``).
        weight: float [N, K] keypoint weights (equal at every level).
        level_indices: the target level of each prediction (``models.megvii_heatmap.megvii_levels``).
        num_units: U.

    Raises:
        ValueError: counts or shapes that do not match.
    """
    if len(level_heatmaps) != len(level_indices) or len(level_indices) % num_units:
        raise ValueError(f"mspn_levels_loss: {len(level_heatmaps)} predictions for {len(level_indices)} levels")
    if target_levels.ndim != 5 or max(level_indices) >= target_levels.shape[1]:
        raise ValueError(f"mspn_levels_loss: targets must be [N, L, K, H, W], got {list(target_levels.shape)}")
    total = level_heatmaps.new_zeros(())
    for i, level in enumerate(level_indices):
        pred, target = level_heatmaps[i], target_levels[:, level]
        if (i + 1) % num_units == 0:
            total = total + keypoint_ohkm_mse_loss(pred, target, weight)
        else:
            total = total + MSPN_MSE_WEIGHT * keypoint_mse_loss(pred, target, weight)
    return total


def rle_loss(
    pred: Tensor,
    sigma: Tensor,
    target: Tensor,
    weight: Tensor,
    flow: nn.Module,
    residual: bool = True,
    q_distribution: str = "laplace",
    size_average: bool = True,
) -> Tensor:
    """Residual log-likelihood loss (MMPose ``RLELoss``, ``use_target_weight=True``; see the module docstring).

    Args:
        pred, target: float [N, K, 2] normalised coordinates.
        sigma: float [N, K, 2] sigma logits (the RLE head's raw output; the sigmoid is applied here, as MMPose).
        weight: float [N, K] keypoint weights.
        flow: the RealNVP flow (``models.flow.RealNVP``: ``head.loss_module.flow_model``); its ``log_prob`` of the
            residuals, so its parameters are trained by this loss.
        residual: add the identity distribution's term (MMPose default True).
        q_distribution: ``"laplace"`` (MMPose default) or ``"gaussian"``.
        size_average: divide by N (MMPose default True).

    Returns:
        Scalar tensor.

    Raises:
        ValueError: shapes that do not match, or an unknown ``q_distribution``.
    """
    _check(pred, target, weight, "rle_loss")
    if sigma.shape != pred.shape:
        raise ValueError(f"rle_loss: sigma {list(sigma.shape)} and prediction {list(pred.shape)} differ")
    if q_distribution not in Q_DISTRIBUTIONS:
        raise ValueError(f"q_distribution must be one of {Q_DISTRIBUTIONS}, got {q_distribution!r}")
    n, k = target.shape[:2]
    sigma = sigma.sigmoid()
    error = (pred - target) / (sigma + 1e-9)
    log_phi = flow.log_prob(error.reshape(-1, 2)).reshape(n, k, 1)
    loss = torch.log(sigma) - log_phi
    if residual:
        if q_distribution == "laplace":
            loss = loss + torch.log(sigma * 2) + torch.abs(error)
        else:
            loss = loss + torch.log(sigma * math.sqrt(2 * math.pi)) + 0.5 * error**2
    loss = loss * _expand_weight(weight, loss.ndim)
    if size_average:
        loss = loss / len(loss)
    return loss.sum()


def pose_loss(
    losses: tuple[str, ...],
    outputs: dict[str, Tensor],
    targets: dict[str, Tensor],
    flow: nn.Module | None = None,
    levels: tuple[tuple[int, ...], int] | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """A config's training loss: the sum of its terms with weight 1 (MMPose ``DSNTHead.loss`` /
    ``HeatmapHead.loss`` / ``RegressionHead.loss`` / ``RLEHead.loss``).

    Args:
        losses: names from :data:`LOSSES`. ``smooth_l1`` compares ``outputs["coords"]`` with
            ``targets["keypoint_labels"]``; ``js_discrete`` and ``keypoint_mse`` compare ``outputs["heatmaps"]``
            (softmax heatmaps of an integral head, or a heatmap head's output) with ``targets["heatmaps"]``; ``rle``
            compares ``outputs["coords"]`` and ``outputs["sigma"]`` (logits) with ``targets["keypoint_labels"]``
            through ``flow``; ``keypoint_mse_stages`` sums ``keypoint_mse`` of each ``outputs["stage_heatmaps"][s]``;
            ``mspn_levels`` compares ``outputs["level_heatmaps"]`` with ``targets["level_heatmaps"]``
            (:func:`mspn_levels_loss`).
        outputs: the model's ``coords`` [N, K, 2], ``sigma`` [N, K, 2] and / or ``heatmaps`` [N, K, H, W].
        targets: ``keypoint_labels``, ``heatmaps`` and ``keypoint_weights`` [N, K] from the codec.
        flow: the RLE head's flow (``model.head.loss_module.flow_model``), needed by ``rle``.
        levels: (level index of each prediction, units per stage), needed by ``mspn_levels`` (the MSPN head kind's
            ``loss_kwargs``).

    Returns:
        (total loss, each term by name), computed in float32 (float16 / bfloat16 outputs are cast up; float64 stays float64).

    Raises:
        ValueError: an unknown loss name, missing / mismatched tensors, ``rle`` without a flow or ``mspn_levels``
            without levels.
    """
    if not losses:
        raise ValueError("a config needs at least one loss")

    def f(x: Tensor) -> Tensor:  # half precision -> float32; float32 / float64 stay
        return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x

    weight = f(targets["keypoint_weights"])
    terms: dict[str, Tensor] = {}
    for name in losses:
        if name == "smooth_l1":
            terms[name] = smooth_l1_loss(f(outputs["coords"]), f(targets["keypoint_labels"]), weight)
        elif name == "js_discrete":
            terms[name] = js_discrete_loss(f(outputs["heatmaps"]), f(targets["heatmaps"]), weight)
        elif name == "keypoint_mse":
            terms[name] = keypoint_mse_loss(f(outputs["heatmaps"]), f(targets["heatmaps"]), weight)
        elif name == "keypoint_mse_stages":
            terms[name] = sum(
                keypoint_mse_loss(f(stage), f(targets["heatmaps"]), weight) for stage in outputs["stage_heatmaps"]
            )
        elif name == "mspn_levels":
            if levels is None:
                raise ValueError("the mspn_levels loss needs levels=(level_indices, num_units) (the mspn head kind's)")
            terms[name] = mspn_levels_loss(
                f(outputs["level_heatmaps"]), f(targets["level_heatmaps"]), weight, levels[0], levels[1]
            )
        elif name == "rle":
            if flow is None:
                raise ValueError("the rle loss needs the RLE head's flow (flow=model.head.loss_module.flow_model)")
            terms[name] = rle_loss(
                f(outputs["coords"]), f(outputs["sigma"]), f(targets["keypoint_labels"]), weight, flow
            )
        else:
            raise ValueError(f"unknown loss {name!r}; known: {LOSSES}")
    total = terms[losses[0]]
    for name in losses[1:]:
        total = total + terms[name]
    return total, terms
