"""Pose heads, one module per head kind (timm style), and the registry that names them.

* ``models/heads/integral.py``: IPR / DSNT / Debias-IPR soft-argmax (MMPose ``IntegralRegressionHead``, ``DSNTHead``).
* ``models/heads/heatmap.py``: SimpleBaseline heatmaps (MMPose ``HeatmapHead``).
* ``models/heads/regression.py``: DeepPose coordinates (MMPose ``RegressionHead``).
* ``models/heads/rle.py``: RLE coordinates and sigmas (MMPose ``RLEHead``).
* ``models/heads/mspn.py``: MSPN / RSN multi-stage multi-unit heatmaps (MMPose ``MSPNHead``).
* ``models/heads/cpm.py``: multi-stage heatmaps of CPM and the stacked hourglass, the last stage served (MMPose
  ``CPMHead``).

Each module defines its network head(s) and ``KIND``, a :class:`~models.heads.base.HeadKind` that owns everything
that depends on the head (network, card, decode, training targets and outputs, checkpoint keys). Code elsewhere asks
``head_kind(config.head_kind)`` and never compares the name.

Adding a head kind: a new module here that defines ``KIND``, and its line in :data:`_REGISTRY`.

This package is torch-free at import (``models.zoo`` validates names with it, and the service imports the zoo): a
head kind's module, and torch with it, is imported the first time that kind is asked for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from models.heads.base import HeadKind

#: The registry: head-kind name -> the module that defines it (its ``KIND``).
_REGISTRY: dict[str, str] = {
    "integral": "models.heads.integral",
    "heatmap": "models.heads.heatmap",
    "regression": "models.heads.regression",
    "rle": "models.heads.rle",
    "mspn": "models.heads.mspn",
    "cpm": "models.heads.cpm",
}

#: The registered head-kind names (``PoseModelConfig.head_kind`` values), torch-free.
HEAD_KIND_NAMES: tuple[str, ...] = tuple(_REGISTRY)

if TYPE_CHECKING:
    #: name -> :class:`HeadKind` of every registered kind (imports every head module, and torch, on first access).
    HEAD_KINDS: dict[str, HeadKind]


def head_kind(name: str) -> HeadKind:
    """The :class:`HeadKind` called ``name`` (its module's ``KIND``; the module is imported here on first use).

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown head kind {name!r}; known: {list(HEAD_KIND_NAMES)}")
    kind = importlib.import_module(_REGISTRY[name]).KIND
    if kind.name != name:
        raise RuntimeError(f"{_REGISTRY[name]}.KIND is named {kind.name!r}, registered as {name!r}")
    return kind


def __getattr__(attr: str):
    if attr == "HEAD_KINDS":
        return {name: head_kind(name) for name in _REGISTRY}
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


__all__ = ["HEAD_KINDS", "HEAD_KIND_NAMES", "HeadKind", "head_kind"]
