"""RLE's normalising flow: the learned part of MMPose's ``RLELoss``, kept in the model so that checkpoints load.

MMPose's ``RLEHead`` owns its loss module (``head.loss_module``), and ``RLELoss`` owns a RealNVP flow
(``head.loss_module.flow_model``): the flow is trained with the network, saved in every RLE checkpoint and read with
strict key checking, although inference never runs it. :class:`RLEFlow` is that ``loss_module`` with the same
parameter names; the loss itself (which evaluates the flow) is ``training.losses.rle_loss``.

:class:`RealNVP` follows ``mmpose/models/utils/realnvp.py`` (MMPose 1.3.2; Dinh et al., "Density estimation using
Real NVP", 2017, as used by Li et al., "Human Pose Regression with Residual Log-likelihood Estimation", ICCV 2021):
six affine coupling layers on 2-D points with alternating masks ``[[0, 1], [1, 0]] * 3``, scale nets
``Linear(2, 64) - LeakyReLU - Linear(64, 64) - LeakyReLU - Linear(64, 2) - Tanh`` and translation nets without the
Tanh, a standard 2-D normal prior (buffers ``loc``, ``cov``). State-dict keys: ``loc``, ``cov``, ``mask``,
``s.<i>.<0|2|4>.weight|bias``, ``t.<i>.<0|2|4>.weight|bias``.
"""

from __future__ import annotations

import torch
from torch import Tensor, distributions, nn


def _scale_net() -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(2, 64), nn.LeakyReLU(), nn.Linear(64, 64), nn.LeakyReLU(), nn.Linear(64, 2), nn.Tanh()
    )


def _translation_net() -> nn.Sequential:
    return nn.Sequential(nn.Linear(2, 64), nn.LeakyReLU(), nn.Linear(64, 64), nn.LeakyReLU(), nn.Linear(64, 2))


class RealNVP(nn.Module):
    """RealNVP density on R^2 with MMPose's parameter names (see the module docstring).

    Weights are initialised as MMPose's ``RealNVP.init_weights``: Xavier-uniform with gain 0.01 for every Linear
    weight (biases keep torch's default).
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("loc", torch.zeros(2))
        self.register_buffer("cov", torch.eye(2))
        self.register_buffer("mask", torch.tensor([[0, 1], [1, 0]] * 3, dtype=torch.float32))
        self.s = nn.ModuleList([_scale_net() for _ in range(len(self.mask))])
        self.t = nn.ModuleList([_translation_net() for _ in range(len(self.mask))])
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight, gain=0.01)

    def backward_p(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Data space -> latent space (MMPose ``RealNVP.backward_p``).

        Args:
            x: float [M, 2] points.

        Returns:
            (z float [M, 2], log |det dz/dx| float [M]).
        """
        log_det_jacob, z = x.new_zeros(x.shape[0]), x
        for i in reversed(range(len(self.t))):
            mask = self.mask[i]
            z_ = mask * z
            s = self.s[i](z_) * (1 - mask)
            t = self.t[i](z_) * (1 - mask)
            z = (1 - mask) * (z - t) * torch.exp(-s) + z_
            log_det_jacob = log_det_jacob - s.sum(dim=1)
        return z, log_det_jacob

    def log_prob(self, x: Tensor) -> Tensor:
        """log density of points under the flow (MMPose ``RealNVP.log_prob``).

        Args:
            x: float [M, 2].

        Returns:
            float [M]: ``log N(z; loc, cov) + log |det dz/dx|`` (torch's ``MultivariateNormal``, as MMPose).

        Raises:
            ValueError: not [M, 2].
        """
        if x.ndim != 2 or x.shape[1] != 2:
            raise ValueError(f"RealNVP.log_prob expects [M, 2] points, got {list(x.shape)}")
        z, log_det = self.backward_p(x)
        prior = distributions.MultivariateNormal(self.loc.to(z.dtype), self.cov.to(z.dtype))
        return prior.log_prob(z) + log_det


class RLEFlow(nn.Module):
    """The parameters of MMPose's ``RLELoss`` (``head.loss_module``): its ``flow_model``, a :class:`RealNVP`.

    No forward: ``training.losses.rle_loss`` evaluates ``flow_model.log_prob`` on the normalised residuals.
    """

    def __init__(self) -> None:
        super().__init__()
        self.flow_model = RealNVP()
