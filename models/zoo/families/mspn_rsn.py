"""Zoo entries of this family (see :mod:`models.zoo.families`): MSPN and RSN on COCO, every row of MMPose 1.3.2's
``configs/body_2d_keypoint/topdown_heatmap/coco/mspn_coco.yml`` and ``rsn_coco.yml`` (256x192).

Each is the config's ``MSPN`` / ``RSN`` backbone (``backbone_args``: ``unit_channels`` 256, ``num_stages``,
``num_units`` 4, ``num_blocks``, RSN's ``num_steps`` 4) and ``MSPNHead`` (head kind ``mspn``: heatmaps at input / 4,
no deconvolutions), decoded by ``MegviiHeatmap`` with kernel 5 (``codec="megvii"``), flip test without the heatmap
shift (``test_cfg``: ``flip_test=True``, ``shift_heatmap=False``). The MSPN checkpoints are MMPose 0.x files
(``keypoint_head.`` keys, renamed on load as for the SimpleBaselines); the RSN ones are MMPose 1.x files.
Torch-free.
"""

from __future__ import annotations

from models.zoo.config import PoseModelConfig
from models.zoo.rows import CONFIGS, MMPOSE_DL, MMPOSE_V0, coco, entry

#: ResNet-50's blocks per unit (MSPN-50, RSN-50) and ResNet-18's (RSN-18).
_R50 = [3, 4, 6, 3]
_R18 = [2, 2, 2, 2]


def _row(net: str, stages: int, blocks: list[int], depth: int, url: str, published: dict, **args) -> PoseModelConfig:
    prefix = f"{stages}x" if stages > 1 else ""
    stem = f"td-hm_{prefix}{net}{depth}_8xb32-210e_coco-256x192"
    return entry(
        f"td-hm_{prefix}{net}{depth}",
        "mspn",
        net.upper(),
        f"{prefix}{net}_{depth}",
        f"{CONFIGS}/topdown_heatmap/coco/{stem}.py",
        url,
        published,
        (192, 256),
        backbone=net,
        backbone_args={"unit_channels": 256, "num_stages": stages, "num_units": 4, "num_blocks": blocks, **args},
        deconv_out_channels=(),
        deconv_kernel_sizes=(),
        shift_heatmap=False,
        codec="megvii",
    )


def _mspn(stages: int, file: str, published: dict) -> PoseModelConfig:
    return _row("mspn", stages, _R50, 50, f"{MMPOSE_V0}/mspn/{file}.pth", published)


def _rsn(stages: int, blocks: list[int], depth: int, sha_date: str, published: dict) -> PoseModelConfig:
    prefix = f"{stages}x" if stages > 1 else ""
    url = f"{MMPOSE_DL}/topdown_heatmap/coco/td-hm_{prefix}rsn{depth}_8xb32-210e_coco-256x192-{sha_date}.pth"
    return _row("rsn", stages, blocks, depth, url, published, num_steps=4)


ENTRIES: tuple[PoseModelConfig, ...] = (
    _mspn(1, "mspn50_coco_256x192-8fbfb5d0_20201123", coco(0.723, 0.895, 0.794, 0.788, 0.934)),
    _mspn(2, "2xmspn50_coco_256x192-c8765a5c_20201123", coco(0.754, 0.903, 0.826, 0.816, 0.942)),
    _mspn(3, "3xmspn50_coco_256x192-e348f18e_20201123", coco(0.758, 0.904, 0.83, 0.821, 0.943)),
    _mspn(4, "4xmspn50_coco_256x192-7b837afb_20201123", coco(0.765, 0.906, 0.835, 0.826, 0.943)),
    _rsn(1, _R18, 18, "9049ed09_20221013", coco(0.704, 0.887, 0.781, 0.773, 0.927)),
    _rsn(1, _R50, 50, "c35901d5_20221013", coco(0.724, 0.894, 0.799, 0.79, 0.935)),
    _rsn(2, _R50, 50, "9ede341e_20221013", coco(0.748, 0.9, 0.821, 0.81, 0.939)),
    _rsn(3, _R50, 50, "c3e3c4fe_20221013", coco(0.75, 0.9, 0.824, 0.814, 0.941)),
)
