"""The zoo's families beyond the ResNet ones of :mod:`models.zoo.entries`: one module each, defining ``ENTRIES`` (a
tuple of :class:`~models.zoo.config.PoseModelConfig`, built with :mod:`models.zoo.rows`), grouped as MMPose's
model-zoo tables group them (``collection``).

======================  ==========================================================================================
module                  rows (MMPose 1.3.2 ``configs/body_2d_keypoint/topdown_heatmap/coco/*.yml`` unless said)
======================  ==========================================================================================
``hrnet``               HRNet-w32 / w48 (256x192, 384x288), +DARK, +UDP
``dark``                ResNet + DARK (``resnet_dark_coco.yml``)
``resnet_variants``     ResNetV1d, ResNeXt, SEResNet, AlexNet
``resnest_scnet``       ResNeSt, SCNet
``litehrnet``           LiteHRNet-18 / 30
``mobile``              MobileNet-v2 (heatmap; + RLE, ``topdown_regression``), ShuffleNet-v1 / v2
``hourglass_cpm``       HourglassNet, CPM
``mspn_rsn``            MSPN (1 and 4 stages), RSN
======================  ==========================================================================================

Torch-free (stdlib only).
"""

from __future__ import annotations

import importlib

from models.zoo.config import PoseModelConfig

#: The family modules, in ``pose-zoo list`` order.
FAMILIES: tuple[str, ...] = (
    "hrnet",
    "dark",
    "resnet_variants",
    "resnest_scnet",
    "litehrnet",
    "mobile",
    "hourglass_cpm",
    "mspn_rsn",
)


def family_entries() -> tuple[PoseModelConfig, ...]:
    """Every family module's ``ENTRIES``, in :data:`FAMILIES` order."""
    out: list[PoseModelConfig] = []
    for name in FAMILIES:
        out.extend(importlib.import_module(f"{__name__}.{name}").ENTRIES)
    return tuple(out)
