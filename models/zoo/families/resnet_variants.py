"""Zoo entries of this family (see :mod:`models.zoo.families`): SimpleBaseline heatmap heads on ResNetV1d, ResNeXt
and SEResNet (MMPose 1.3.2 ``configs/body_2d_keypoint/topdown_heatmap/coco/{resnetv1d,resnext,seresnet}_coco.yml``,
every COCO row: depths 50 / 101 / 152 at 256x192 and 384x288) and AlexNet (``alexnet_coco.yml``: 256x192, its head
``in_channels=256``, heatmap 40x56 from AlexNet's 5x7 feature map: ``models.backbones.alexnet_feature_side``).

Each config: ``HeatmapHead(in_channels=2048, out_channels=17)`` with the default three 4x4 deconvolutions of 256
channels, ``MSRAHeatmap`` sigma 2 (256x192, heatmap 48x64) or 3 (384x288, 72x96), ``test_cfg`` flip test with
``shift_heatmap=True``, COCO ``score_mode='bbox_keypoint'``. ResNeXt and SEResNet rows point at MMPose 0.x checkpoints
(``top_down/``), renamed on load as MMPose's hooks do. Names: ``td-hm_<backbone><depth>`` (256x192) and
``td-hm_<backbone><depth>_coco-384x288``. Torch-free.
"""

from __future__ import annotations

from models.zoo.config import PoseModelConfig, size_hw
from models.zoo.rows import CONFIGS, MMPOSE_DL, MMPOSE_V0, coco, entry

_S, _L = (192, 256), (288, 384)
#: backbone -> the stem of its model-zoo ``Arch`` name (``pose_resnext_101``).
_ARCH = {"resnetv1d": "pose_resnetv1d", "resnext": "pose_resnext", "seresnet": "pose_seresnet"}


def _row(backbone: str, depth: int, size: tuple[int, int], sched: str, weights: str, published: dict):
    """A SimpleBaseline row: ``sched`` is the config's ``8xb<batch>-210e`` part, ``weights`` the checkpoint's URL."""
    stem = f"td-hm_{backbone}{depth}_{sched}_coco-{size_hw(size)}"
    return entry(
        f"td-hm_{backbone}{depth}{'' if size == _S else f'_coco-{size_hw(size)}'}",
        "heatmap",
        "SimpleBaseline2D",
        f"{_ARCH[backbone]}_{depth}",
        f"{CONFIGS}/topdown_heatmap/coco/{stem}.py",
        weights,
        published,
        size,
        backbone=backbone,
        backbone_args={"depth": depth},
        sigma=3.0 if size == _L else 2.0,
    )


_V1D = f"{MMPOSE_DL}/topdown_heatmap/coco"
_X, _SE = f"{MMPOSE_V0}/resnext", f"{MMPOSE_V0}/seresnet"

ENTRIES: tuple[PoseModelConfig, ...] = (
    # ---- resnetv1d_coco.yml
    _row("resnetv1d", 50, _S, "8xb64-210e", f"{_V1D}/td-hm_resnetv1d50_8xb64-210e_coco-256x192-27545d63_20221020.pth",
         coco(0.722, 0.897, 0.796, 0.777, 0.936)),
    _row("resnetv1d", 50, _L, "8xb64-210e", f"{_V1D}/td-hm_resnetv1d50_8xb64-210e_coco-384x288-0646b46e_20221020.pth",
         coco(0.73, 0.899, 0.8, 0.782, 0.935)),
    _row("resnetv1d", 101, _S, "8xb64-210e",
         f"{_V1D}/td-hm_resnetv1d101_8xb64-210e_coco-256x192-ee9e7212_20221021.pth",
         coco(0.732, 0.901, 0.808, 0.785, 0.940)),
    _row("resnetv1d", 101, _L, "8xb32-210e",
         f"{_V1D}/td-hm_resnetv1d101_8xb32-210e_coco-384x288-d0b5875f_20221028.pth",
         coco(0.748, 0.906, 0.817, 0.798, 0.941)),
    _row("resnetv1d", 152, _S, "8xb32-210e",
         f"{_V1D}/td-hm_resnetv1d152_8xb32-210e_coco-256x192-fd49f947_20221021.pth",
         coco(0.737, 0.904, 0.814, 0.790, 0.94)),
    _row("resnetv1d", 152, _L, "8xb48-210e",
         f"{_V1D}/td-hm_resnetv1d152_8xb48-210e_coco-384x288-b9a99602_20221022.pth",
         coco(0.751, 0.907, 0.821, 0.801, 0.942)),
    # ---- resnext_coco.yml (MMPose 0.x checkpoints)
    _row("resnext", 50, _S, "8xb64-210e", f"{_X}/resnext50_coco_256x192-dcff15f6_20200727.pth",
         coco(0.715, 0.897, 0.791, 0.771, 0.935)),
    _row("resnext", 50, _L, "8xb64-210e", f"{_X}/resnext50_coco_384x288-412c848f_20200727.pth",
         coco(0.724, 0.899, 0.794, 0.777, 0.936)),
    _row("resnext", 101, _S, "8xb64-210e", f"{_X}/resnext101_coco_256x192-c7eba365_20200727.pth",
         coco(0.726, 0.9, 0.801, 0.781, 0.939)),
    _row("resnext", 101, _L, "8xb32-210e", f"{_X}/resnext101_coco_384x288-f5eabcd6_20200727.pth",
         coco(0.744, 0.903, 0.815, 0.794, 0.939)),
    _row("resnext", 152, _S, "8xb32-210e", f"{_X}/resnext152_coco_256x192-102449aa_20200727.pth",
         coco(0.73, 0.903, 0.808, 0.785, 0.94)),
    _row("resnext", 152, _L, "8xb48-210e", f"{_X}/resnext152_coco_384x288-806176df_20200727.pth",
         coco(0.742, 0.904, 0.81, 0.794, 0.94)),
    # ---- seresnet_coco.yml (MMPose 0.x checkpoints)
    _row("seresnet", 50, _S, "8xb64-210e", f"{_SE}/seresnet50_coco_256x192-25058b66_20200727.pth",
         coco(0.729, 0.903, 0.807, 0.784, 0.941)),
    _row("seresnet", 50, _L, "8xb64-210e", f"{_SE}/seresnet50_coco_384x288-bc0b7680_20200727.pth",
         coco(0.748, 0.904, 0.819, 0.799, 0.941)),
    _row("seresnet", 101, _S, "8xb64-210e", f"{_SE}/seresnet101_coco_256x192-83f29c4d_20200727.pth",
         coco(0.734, 0.905, 0.814, 0.79, 0.941)),
    _row("seresnet", 101, _L, "8xb32-210e", f"{_SE}/seresnet101_coco_384x288-48de1709_20200727.pth",
         coco(0.754, 0.907, 0.823, 0.805, 0.943)),
    _row("seresnet", 152, _S, "8xb32-210e", f"{_SE}/seresnet152_coco_256x192-1c628d79_20200727.pth",
         coco(0.73, 0.899, 0.81, 0.787, 0.939)),
    _row("seresnet", 152, _L, "8xb48-210e", f"{_SE}/seresnet152_coco_384x288-58b23ee8_20200727.pth",
         coco(0.753, 0.906, 0.824, 0.806, 0.945)),
    # ---- alexnet_coco.yml (MMPose 0.x checkpoint): AlexNet's 5x7 feature map, so a 40x56 heatmap
    entry("td-hm_alexnet", "heatmap", "SimpleBaseline2D", "pose_alexnet",
          f"{CONFIGS}/topdown_heatmap/coco/td-hm_alexnet_8xb64-210e_coco-256x192.py",
          f"{MMPOSE_V0}/alexnet/alexnet_coco_256x192-a7b1fd15_20200727.pth",
          coco(0.448, 0.767, 0.461, 0.521, 0.829), _S, backbone="alexnet"),
)  # fmt: skip
