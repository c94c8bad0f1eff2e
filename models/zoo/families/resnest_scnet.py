"""Zoo entries of the ResNeSt and SCNet SimpleBaselines: every COCO row of MMPose 1.3.2's
``configs/body_2d_keypoint/topdown_heatmap/coco/resnest_coco.yml`` and ``scnet_coco.yml`` (see
:mod:`models.zoo.families`). Torch-free.

Backbones ``resnest`` (:mod:`models.backbones.resnest`, depth 50 / 101 / 200 / 269) and ``scnet``
(:mod:`models.backbones.scnet`, depth 50 / 101) with ``backbone_args={"depth": d}`` (MMPose's configs set only the
depth: stem and base width 64), and MMPose's ``HeatmapHead`` (three 256-channel deconvolutions, MSRA heatmaps with
sigma 2 at 256x192 and 3 at 384x288, flip test with ``shift_heatmap``). Names follow the SimpleBaseline ResNet rows
(``td-hm_res50``, ``td-hm_res101_coco-384x288``): ``td-hm_resnest50``, ``td-hm_scnet101_coco-384x288``, ...
Checkpoints are MMPose 0.x files (``download.openmmlab.com/mmpose/top_down/{resnest,scnet}/``), as the metafiles list.
"""

from __future__ import annotations

from models.zoo.config import PoseModelConfig, size_hw
from models.zoo.rows import CONFIGS, MMPOSE_V0, coco, entry

_S, _L = (192, 256), (288, 384)


def _row(backbone: str, depth: int, size: tuple[int, int], batch: int, file: str, published: dict) -> PoseModelConfig:
    """One metafile row: ``file`` is the checkpoint's name without ``.pth`` under ``top_down/<backbone>/``."""
    suffix = "" if size == _S else f"_coco-{size_hw(size)}"
    return entry(
        f"td-hm_{backbone}{depth}{suffix}",
        "heatmap",
        "SimpleBaseline2D",
        f"pose_{backbone}_{depth}",
        f"{CONFIGS}/topdown_heatmap/coco/td-hm_{backbone}{depth}_8xb{batch}-210e_coco-{size_hw(size)}.py",
        f"{MMPOSE_V0}/{backbone}/{file}.pth",
        published,
        size,
        backbone=backbone,
        backbone_args={"depth": depth},
        sigma=3.0 if size == _L else 2.0,
    )


ENTRIES: tuple[PoseModelConfig, ...] = (
    # ---- ResNeSt (resnest_coco.yml)
    _row("resnest", 50, _S, 64, "resnest50_coco_256x192-6e65eece_20210320", coco(0.720, 0.899, 0.8, 0.775, 0.939)),
    _row("resnest", 50, _L, 64, "resnest50_coco_384x288-dcd20436_20210320", coco(0.737, 0.9, 0.811, 0.789, 0.937)),
    _row("resnest", 101, _S, 64, "resnest101_coco_256x192-2ffcdc9d_20210320", coco(0.725, 0.9, 0.807, 0.781, 0.939)),
    _row("resnest", 101, _L, 32, "resnest101_coco_384x288-80660658_20210320", coco(0.745, 0.905, 0.818, 0.798, 0.942)),
    _row("resnest", 200, _S, 64, "resnest200_coco_256x192-db007a48_20210517", coco(0.731, 0.905, 0.812, 0.787, 0.943)),
    _row("resnest", 200, _L, 16, "resnest200_coco_384x288-b5bb76cb_20210517", coco(0.753, 0.907, 0.827, 0.805, 0.943)),
    _row("resnest", 269, _S, 32, "resnest269_coco_256x192-2a7882ac_20210517", coco(0.737, 0.907, 0.819, 0.792, 0.943)),
    _row("resnest", 269, _L, 16, "resnest269_coco_384x288-b142b9fb_20210517", coco(0.754, 0.908, 0.828, 0.805, 0.943)),
    # ---- SCNet (scnet_coco.yml)
    _row("scnet", 50, _S, 64, "scnet50_coco_256x192-6920f829_20200709", coco(0.728, 0.899, 0.807, 0.784, 0.938)),
    _row("scnet", 50, _L, 32, "scnet50_coco_384x288-9cacd0ea_20200709", coco(0.751, 0.906, 0.818, 0.802, 0.942)),
    _row("scnet", 101, _S, 32, "scnet101_coco_256x192-6d348ef9_20200709", coco(0.733, 0.902, 0.811, 0.789, 0.94)),
    _row("scnet", 101, _L, 48, "scnet101_coco_384x288-0b6e631b_20200709", coco(0.752, 0.906, 0.823, 0.804, 0.943)),
)
