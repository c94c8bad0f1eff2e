"""The RLE head kind: DeepPose coordinates with a sigma per coordinate, trained by RLE's flow (``"rle"``).

:class:`RLEHead` follows ``mmpose/models/heads/regression_heads/rle_head.py`` (Li et al., "Human Pose Regression with
Residual Log-likelihood Estimation", ICCV 2021): the pool of :class:`~models.heads.regression.RegressionHead`,
``fc`` = Linear(C, K * 4) -> [B, K, 4] = x, y (normalised) and sigma logits; it owns ``loss_module`` (MMPose's
``RLELoss`` and its RealNVP flow, :class:`models.flow.RLEFlow`), whose parameters are part of every RLE checkpoint.

:data:`KIND`: output ``coords`` [B, K, 3] = normalised x, y and the score ``mean(1 - sigma)`` (card kind
``keypoints``: ``models.codecs.decode_integral``; flip-back ``models.codecs.flip_back_keypoints`` with
``shift_coords``); training targets ``models.codecs.RegressionLabel``; training outputs ``coords`` and ``sigma``
(logits), loss ``rle`` with the head's flow (``training.losses.rle_loss``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from models.flow import RLEFlow
from models.heads.regression import RegressionHead, RegressionKind

if TYPE_CHECKING:
    from models.zoo import PoseModelConfig


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


class RLEKind(RegressionKind):
    """RLE: DeepPose's codec and scaling; two more outputs per joint, and the flow its loss trains."""

    name = "rle"
    train_outputs = frozenset({"coords", "sigma"})
    default_losses = ("rle",)
    required_losses = frozenset({"rle"})

    def build(self, config: PoseModelConfig, in_channels: int) -> RLEHead:
        return RLEHead(in_channels, config.num_keypoints)

    def train_forward(self, head: RLEHead, feats: Tensor) -> dict[str, Tensor]:
        raw = head.forward_raw(feats)
        return {"coords": raw[..., :2], "sigma": raw[..., 2:4]}

    def loss_kwargs(self, head: RLEHead) -> dict[str, Any]:
        """``flow``: the RealNVP flow of the head's ``loss_module``, trained by the ``rle`` loss."""
        return {"flow": head.loss_module.flow_model}


KIND = RLEKind()
