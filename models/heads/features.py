"""What the heads take from a backbone (torch)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor


def last_feature(feats: Tensor | Sequence[Tensor]) -> Tensor:
    """Backbones return a tuple of stages; heads use the last one (MMPose ``feats[-1]``).

    Raises:
        TypeError: neither a Tensor nor a non-empty tuple / list of them.
    """
    if isinstance(feats, Tensor):
        return feats
    if not isinstance(feats, (tuple, list)) or not feats:
        raise TypeError(f"expected a Tensor or a non-empty tuple of Tensors, got {type(feats).__name__}")
    return feats[-1]
