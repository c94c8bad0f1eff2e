"""Zoo entries of this family (see :mod:`models.zoo.families`): the stacked hourglass (Hourglass-52, one stack) and the
Convolutional Pose Machine (6 stages) on COCO, every row of MMPose 1.3.2's
``configs/body_2d_keypoint/topdown_heatmap/coco/hourglass_coco.yml`` and ``cpm_coco.yml``.

Both use MMPose's ``CPMHead`` (head kind ``"cpm"``, ``models.heads.cpm``): no deconvolutions (the backbones' maps are
at the heatmap resolution: hourglass stride 4, CPM stride 8), a 1x1 final layer per stack for the hourglass and none
for CPM. Heatmap sigma 2 at the smaller input, 3 at the larger (the configs' ``MSRAHeatmap``). The hourglass
checkpoints are MMPose 0.x files (``keypoint_head.`` keys, renamed on load by ``models.checkpoints.remap``).
Torch-free.
"""

from __future__ import annotations

from models.zoo.config import PoseModelConfig, size_hw
from models.zoo.rows import CONFIGS, MMPOSE_DL, MMPOSE_V0, coco, entry

_COCO = f"{CONFIGS}/topdown_heatmap/coco"


def _hourglass(size: int, file_tail: str, published: dict) -> PoseModelConfig:
    hw = size_hw((size, size))
    return entry(
        f"td-hm_hourglass52_coco-{hw}",
        "cpm",
        "Hourglass",
        "pose_hourglass_52",
        f"{_COCO}/td-hm_hourglass52_8xb32-210e_coco-{hw}.py",
        f"{MMPOSE_V0}/hourglass/hourglass52_coco_{hw}-{file_tail}.pth",
        published,
        (size, size),
        backbone="hourglass",
        backbone_args={"num_stacks": 1},
        deconv_out_channels=(),
        deconv_kernel_sizes=(),
        sigma=2.0 if size == 256 else 3.0,
    )


def _cpm(size: tuple[int, int], batch: int, file_tail: str, published: dict) -> PoseModelConfig:
    hw = size_hw(size)
    stem = f"td-hm_cpm_8xb{batch}-210e_coco-{hw}"
    return entry(
        f"td-hm_cpm_coco-{hw}",
        "cpm",
        "CPM",
        "cpm",
        f"{_COCO}/{stem}.py",
        f"{MMPOSE_DL}/topdown_heatmap/coco/{stem}-{file_tail}.pth",
        published,
        size,
        backbone="cpm",
        backbone_args={"feat_channels": 128, "num_stages": 6},
        deconv_out_channels=(),
        deconv_kernel_sizes=(),
        sigma=2.0 if size == (192, 256) else 3.0,
    )


ENTRIES: tuple[PoseModelConfig, ...] = (
    _hourglass(256, "4ec713ba_20200709", coco(0.726, 0.896, 0.799, 0.780, 0.934)),
    _hourglass(384, "be91ba2b_20200812", coco(0.746, 0.900, 0.812, 0.797, 0.939)),
    _cpm((192, 256), 64, "0e978875_20220920", coco(0.627, 0.862, 0.709, 0.689, 0.906)),
    _cpm((288, 384), 32, "165487b8_20221011", coco(0.652, 0.865, 0.730, 0.710, 0.907)),
)
