"""Zoo entries of this family (see :mod:`models.zoo.families`). Torch-free."""

from __future__ import annotations

from models.zoo.config import PoseModelConfig

ENTRIES: tuple[PoseModelConfig, ...] = ()
