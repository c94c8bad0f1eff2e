"""What a head kind is: :class:`HeadKind`, the one object each module of ``models.heads`` defines (``KIND``).

A head kind is everything that depends on what the network's head outputs: the head network, how its raw output is
scaled on a random-weight model, what the exported graph's model card says (and so its decode and flip-back, which
are ``models.codecs``' through ``models.card.ModelCard.decode``), its training targets (a ``models.codecs`` codec), the
outputs its losses take in training, and the checkpoint keys it renames. The rest of the code asks the kind
(``models.heads.head_kind(config.head_kind)``) instead of comparing the name.

Torch-free at import (``models.zoo`` and ``models.card`` import the registry); the head modules import torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from torch import Tensor, nn

    from models.card import OutputSpec
    from models.zoo import PoseModelConfig


class HeadKind:
    """One head kind: subclassed once per module of ``models.heads``, whose ``KIND`` is the instance.

    Class attributes (each kind sets them):
        name: the ``PoseModelConfig.head_kind`` value (the registry key).
        raw_is_coordinates: the head's last layer outputs normalised coordinates directly (DeepPose, RLE), not logits
            of a heatmap (integral, SimpleBaseline); it decides what ``trained_output_std`` measures.
        trained_output_std: a trained model's spread of the last layer's output (``scale_last_layer``): heatmap
            logits ~2, crop-normalised coordinates ~0.2 crop widths.
        train_outputs: the names :meth:`train_forward` returns (``coords`` [B, K, 2], ``heatmaps`` [B, K, H, W],
            ``sigma`` [B, K, 2]); ``training.configs`` checks each loss's inputs against them.
        default_losses: the loss of a zoo entry of this kind without a hand-written training config
            (``training.losses.LOSSES`` names).
        required_losses: losses a training config of this kind must list (RLE: its flow is trained by ``rle``).
    """

    name: str = ""
    raw_is_coordinates: bool = False
    trained_output_std: float = 2.0
    train_outputs: frozenset[str] = frozenset()
    default_losses: tuple[str, ...] = ()
    required_losses: frozenset[str] = frozenset()

    def __repr__(self) -> str:
        return f"<head kind {self.name!r}>"

    # -- the config and the network ---------------------------------------------------------------------------------

    def check_config(self, config: PoseModelConfig) -> None:
        """Raise ValueError for config fields this kind cannot honour (default: ``debias``, an integral-only option)."""
        if config.debias:
            raise ValueError("debias applies to the integral head only")

    def build(self, config: PoseModelConfig, in_channels: int) -> nn.Module:
        """The head network (MMPose parameter names) on a backbone with ``in_channels`` output channels."""
        raise NotImplementedError

    def scale_last_layer(self, head: nn.Module, feats: Tensor, std: float) -> None:
        """Scale the head's last layer in place so that its output on ``feats`` has standard deviation ``std``
        (``models.pose_model.scale_head_logits``)."""
        raise NotImplementedError

    # -- serving: the card, hence the decode -------------------------------------------------------------------------

    def output_spec(self, config: PoseModelConfig) -> OutputSpec:
        """What the card says about the exported graph's output (default: ``coords``, [B, K, 2|3] normalised x, y
        and an optional score; the coordinate flip test with ``config.shift_coords``)."""
        from models.card import OutputSpec

        return OutputSpec(name="coords", kind="keypoints", coord_units="normalized", flip_shift=config.shift_coords)

    def decode(
        self, config: PoseModelConfig, output: np.ndarray, output_flipped: np.ndarray | None = None
    ) -> np.ndarray:
        """Graph output (and that of the mirrored crops) -> float32 [B, K, 3]: x, y in crop pixels, score.

        The card's decode (``models.card.ModelCard.decode`` on ``models.codecs``, with MMPose's flip-back), so what
        is measured here is what the service runs on the exported graph. Not meant to be overridden: a kind changes
        its decode through :meth:`output_spec`.
        """
        from models.card import card_for_config

        return card_for_config(config).decode(output, output_flipped)

    # -- training ----------------------------------------------------------------------------------------------------

    def codec(self, config: PoseModelConfig) -> Any:
        """The training-target encoder (a ``models.codecs`` codec: ``encode(keypoints [1, K, 2], visible [1, K])``
        -> dict of ``keypoint_weights`` and ``keypoint_labels`` / ``heatmaps``)."""
        raise NotImplementedError

    def train_forward(self, head: nn.Module, feats: Tensor) -> dict[str, Tensor]:
        """The outputs MMPose's ``head.forward`` gives in training, by name (:attr:`train_outputs`)."""
        raise NotImplementedError

    def loss_kwargs(self, head: nn.Module) -> dict[str, Any]:
        """Extra modules ``training.losses.pose_loss`` needs from the head (default none; RLE: ``flow``)."""
        return {}

    # -- checkpoints -------------------------------------------------------------------------------------------------

    def remap_state_dict(self, state_dict: Mapping[str, Any], model: nn.Module) -> tuple[Mapping[str, Any], str | None]:
        """Rename checkpoint keys written for another head into this kind's (MMPose's load hooks), before a strict
        load into ``model``. Returns (state dict, what was renamed, or None when nothing was). Default: unchanged."""
        return state_dict, None
