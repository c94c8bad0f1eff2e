"""A toy head kind to show what adding one takes: SimCC-style 1-D x / y classification (``"simcc_toy"``).

Not MMPose's SimCC head (``mmpose/models/heads/coord_cls_heads/simcc_head.py``: no split ratio, no label smoothing,
no KL loss): a global average pool, ``fc`` = Linear(C, K * (w + h)) -> x logits [B, K, w] and y logits [B, K, h], one
bin per crop pixel. The graph decodes by argmax (normalised coordinates and the smaller of the two peak
probabilities), so the card is the coordinate heads' and the service needs nothing new. Training: the soft-argmax of
each 1-D softmax as normalised ``coords`` against ``models.codecs.RegressionLabel`` targets (``smooth_l1``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.codecs import RegressionLabel
from models.heads.base import HeadKind, last_feature

if TYPE_CHECKING:
    from models.zoo import PoseModelConfig


class SimCCToyHead(nn.Module):
    """GAP + ``fc`` to per-joint x logits [B, K, w] and y logits [B, K, h] (``input_size`` = (w, h)).

    ``forward``: float [B, K, 3] = argmax x / w, argmax y / h (normalised) and min(max p_x, max p_y).
    """

    def __init__(self, in_channels: int, num_joints: int, input_size: tuple[int, int]):
        super().__init__()
        self.num_joints, (self.w, self.h) = int(num_joints), (int(input_size[0]), int(input_size[1]))
        self.fc = nn.Linear(in_channels, self.num_joints * (self.w + self.h))

    def forward_raw(self, feats: Tensor) -> tuple[Tensor, Tensor]:
        """(x logits [B, K, w], y logits [B, K, h])."""
        x = F.adaptive_avg_pool2d(last_feature(feats), 1).flatten(1)
        logits = self.fc(x).reshape(-1, self.num_joints, self.w + self.h)
        return logits[..., : self.w], logits[..., self.w :]

    def forward(self, feats: Tensor) -> Tensor:
        lx, ly = self.forward_raw(feats)
        px, py = lx.softmax(-1), ly.softmax(-1)
        x = px.argmax(-1).to(px.dtype) / self.w
        y = py.argmax(-1).to(py.dtype) / self.h
        score = torch.minimum(px.amax(-1), py.amax(-1))
        return torch.stack([x, y, score], dim=-1)


class SimCCToyKind(HeadKind):
    """1-D x / y classification decoded by argmax in the graph."""

    name = "simcc_toy"
    raw_is_coordinates = False
    trained_output_std = 2.0
    train_outputs = frozenset({"coords"})
    default_losses = ("smooth_l1",)

    def build(self, config: PoseModelConfig, in_channels: int) -> SimCCToyHead:
        return SimCCToyHead(in_channels, config.num_keypoints, config.input_size)

    def scale_last_layer(self, head: SimCCToyHead, feats: Tensor, std: float) -> None:
        head.fc.weight.mul_(std / float(torch.cat(head.forward_raw(feats), dim=-1).std()))

    def codec(self, config: PoseModelConfig) -> RegressionLabel:
        return RegressionLabel(config.input_size)

    def train_forward(self, head: SimCCToyHead, feats: Tensor) -> dict[str, Tensor]:
        lx, ly = head.forward_raw(feats)
        gx = torch.arange(head.w, dtype=lx.dtype, device=lx.device) / head.w
        gy = torch.arange(head.h, dtype=ly.dtype, device=ly.device) / head.h
        return {"coords": torch.stack([(lx.softmax(-1) * gx).sum(-1), (ly.softmax(-1) * gy).sum(-1)], dim=-1)}


KIND = SimCCToyKind()
