"""Zoo configs at small width for fast behaviour tests: the same backbone structure and depth (unless asked), head,
input size and keypoint schema, with few channels.

ResNet entries shrink through their own fields (``backbone_base_channels``, optionally ``backbone_depth``); the
backbones of :mod:`models.zoo.families` through ``backbone_args`` (:data:`SMALL_BACKBONE_ARGS`).
"""

from __future__ import annotations

from models.backbones.hrnet import hrnet_extra
from models.zoo import PoseModelConfig

#: backbone -> the ``backbone_args`` that make it small (merged over the entry's own, which keep the depth).
SMALL_BACKBONE_ARGS: dict[str, dict] = {
    "resnetv1d": {"stem_channels": 8, "base_channels": 8},
    "resnext": {"stem_channels": 8, "base_channels": 8, "groups": 4, "width_per_group": 2},
    "seresnet": {"stem_channels": 8, "base_channels": 8},
    "alexnet": {"channels": [8, 16, 16, 16, 16]},
    "resnest": {"stem_channels": 8, "base_channels": 8},
    "scnet": {"stem_channels": 8, "base_channels": 8},
    "hrnet": {"extra": hrnet_extra(8, stage1_channels=8)},
}


#: backbone -> its shallowest depth (``backbone_args["depth"]``), for :func:`small_backbone`'s ``resnet_depth``.
SHALLOWEST: dict[str, int] = {"resnetv1d": 18, "resnext": 50, "seresnet": 50, "resnest": 50, "scnet": 50}


def small_backbone(
    cfg: PoseModelConfig, resnet_depth: int | None = None, hrnet_modules: int | None = None
) -> PoseModelConfig:
    """``cfg`` with a small-width backbone; ``resnet_depth`` also changes a ResNet's depth, and makes the depth of a
    backbone of :data:`SHALLOWEST` its shallowest (others keep their structure); ``hrnet_modules`` gives HRNet's
    stages 3 and 4 that many modules (the same multi-resolution module, repeated fewer times; MMPose: 4 and 3).

    Raises:
        KeyError: a backbone with no small width here (add it to :data:`SMALL_BACKBONE_ARGS`).
    """
    if cfg.backbone == "resnet":
        return cfg.replace(backbone_base_channels=8, **({"backbone_depth": resnet_depth} if resnet_depth else {}))
    if cfg.backbone not in SMALL_BACKBONE_ARGS:
        raise KeyError(f"no small width for backbone {cfg.backbone!r}: add it to tests/small_models.py")
    args = {**cfg.backbone_args, **SMALL_BACKBONE_ARGS[cfg.backbone]}
    if resnet_depth and cfg.backbone in SHALLOWEST:
        args["depth"] = SHALLOWEST[cfg.backbone]
    if hrnet_modules and cfg.backbone == "hrnet":
        extra = {k: dict(v) for k, v in args["extra"].items()}
        extra["stage3"]["num_modules"] = extra["stage4"]["num_modules"] = hrnet_modules
        args["extra"] = extra
    return cfg.replace(backbone_args=args)
