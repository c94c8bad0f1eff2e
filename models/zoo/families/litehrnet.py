"""Zoo entries of the Lite-HRNet family (see :mod:`models.zoo.families`): every row of MMPose 1.3.2's
``configs/body_2d_keypoint/topdown_heatmap/coco/litehrnet_coco.yml``, LiteHRNet-18 and -30 at 256x192 and 384x288
(MSRA heatmaps; ``HeatmapHead`` without deconvolutions on the stride-4 output of the backbone's iterative head:
heatmaps of input / 4). The checkpoints are MMPose 0.x files (``download.openmmlab.com/mmpose/top_down/litehrnet``):
``keypoint_head.`` keys, renamed on load as MMPose 1.x's hook renames them (``models.checkpoints.mmpose_v1_keys``).
Torch-free."""

from __future__ import annotations

from models.zoo.config import PoseModelConfig, size_hw
from models.zoo.rows import CONFIGS, MMPOSE_V0, coco, entry

_S, _L = (192, 256), (288, 384)


def litehrnet_extra(depth: int) -> dict:
    """MMPose's ``extra`` of the LiteHRNet-<depth> configs (18: 2, 4, 2 modules per stage; 30: 3, 8, 3)."""
    return {
        "stem": {"stem_channels": 32, "out_channels": 32, "expand_ratio": 1},
        "num_stages": 3,
        "stages_spec": {
            "num_modules": {18: [2, 4, 2], 30: [3, 8, 3]}[depth],
            "num_branches": [2, 3, 4],
            "num_blocks": [2, 2, 2],
            "module_type": ["LITE", "LITE", "LITE"],
            "with_fuse": [True, True, True],
            "reduce_ratios": [8, 8, 8],
            "num_channels": [[40, 80], [40, 80, 160], [40, 80, 160, 320]],
        },
        "with_head": True,
    }


def _litehrnet(depth: int, size: tuple[int, int], checkpoint: str, published: dict) -> PoseModelConfig:
    stem = f"td-hm_litehrnet-{depth}_8xb{64 if size == _S else 32}-210e_coco-{size_hw(size)}"
    return entry(
        f"td-hm_litehrnet-{depth}{'' if size == _S else f'_coco-{size_hw(size)}'}",
        "heatmap",
        "LiteHRNet",
        f"litehrnet_{depth}",
        f"{CONFIGS}/topdown_heatmap/coco/{stem}.py",
        f"{MMPOSE_V0}/litehrnet/{checkpoint}.pth",
        published,
        size,
        backbone="litehrnet",
        backbone_args={"extra": litehrnet_extra(depth)},
        deconv_out_channels=(),
        deconv_kernel_sizes=(),
        sigma=3.0 if size == _L else 2.0,
    )


ENTRIES: tuple[PoseModelConfig, ...] = (
    _litehrnet(18, _S, "litehrnet18_coco_256x192-6bace359_20211230", coco(0.642, 0.867, 0.719, 0.705, 0.911)),
    _litehrnet(18, _L, "litehrnet18_coco_384x288-8d4dac48_20211230", coco(0.676, 0.876, 0.746, 0.735, 0.919)),
    _litehrnet(30, _S, "litehrnet30_coco_256x192-4176555b_20210626", coco(0.676, 0.880, 0.756, 0.736, 0.922)),
    _litehrnet(30, _L, "litehrnet30_coco_384x288-a3aef5c4_20210626", coco(0.700, 0.883, 0.776, 0.758, 0.926)),
)
