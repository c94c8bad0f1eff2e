"""The DeepPose regression head kind: normalised coordinates straight from a linear layer (``"regression"``).

:class:`RegressionHead` follows ``mmpose/models/heads/regression_heads/regression_head.py`` (Toshev and Szegedy,
"DeepPose", CVPR 2014) behind MMPose's ``GlobalAveragePooling`` neck (``mmpose/models/necks/gap_neck.py``, no
parameters): global average pool, then ``fc`` = Linear(C, K * 2) -> [B, K, 2] normalised coordinates. The RLE head
(``models.heads.rle``) is one with four outputs per joint.

:data:`KIND`: output ``coords`` [B, K, 2] normalised (card kind ``keypoints``: ``models.codecs.decode_integral``,
MMPose's ``RegressionLabel.decode``; flip-back ``models.codecs.flip_back_keypoints`` with ``shift_coords``); training
targets ``models.codecs.RegressionLabel``; loss ``smooth_l1`` on the coordinates.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch.nn.functional as F
from torch import Tensor, nn

from models.codecs import RegressionLabel
from models.heads.base import HeadKind
from models.heads.features import last_feature

if TYPE_CHECKING:
    from models.zoo import PoseModelConfig


def _global_average_pool(feats: Tensor | Sequence[Tensor], in_channels: int, what: str) -> Tensor:
    """MMPose ``GlobalAveragePooling`` on the last feature map: [B, C, h, w] -> [B, C]."""
    x = last_feature(feats)
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


class RegressionKind(HeadKind):
    """DeepPose: ``fc`` outputs the normalised coordinates."""

    name = "regression"
    raw_is_coordinates = True
    trained_output_std = 0.2  # crop widths: most keypoints stay in the crop
    train_outputs = frozenset({"coords"})
    default_losses = ("smooth_l1",)

    def build(self, config: PoseModelConfig, in_channels: int) -> RegressionHead:
        return RegressionHead(in_channels, config.num_keypoints)

    def scale_last_layer(self, head: RegressionHead, feats: Tensor, std: float) -> None:
        """``fc``, all its outputs (coordinates, and RLE's sigma logits)."""
        head.fc.weight.mul_(std / float(head.forward_raw(feats).std()))

    def codec(self, config: PoseModelConfig) -> RegressionLabel:
        return RegressionLabel(config.input_size)

    def train_forward(self, head: RegressionHead, feats: Tensor) -> dict[str, Tensor]:
        return {"coords": head.forward_raw(feats)[..., :2]}


KIND = RegressionKind()
