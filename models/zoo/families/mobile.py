"""Zoo entries of the mobile backbones (see :mod:`models.zoo.families`): SimpleBaseline heads on MobileNetV2,
ShuffleNet v1 (groups 3) and ShuffleNet v2 (widen factor 1), at 256x192 and 384x288 (MMPose 1.3.2
``topdown_heatmap/coco/{mobilenetv2,shufflenetv1,shufflenetv2}_coco.yml``), and RLE on MobileNetV2
(``topdown_regression/coco/mobilenetv2_rle_coco.yml``: its ``GlobalAveragePooling`` neck pools the 1280 channels of
``conv2``). Torch-free.
"""

from __future__ import annotations

from models.zoo.config import PoseModelConfig, size_hw
from models.zoo.rows import CONFIGS, MMPOSE_DL, coco, entry

_S, _L = (192, 256), (288, 384)

#: backbone -> (``backbone_args`` as the MMPose configs set them, the ``Arch`` name of MMPose's model-zoo table)
_BACKBONES: dict[str, tuple[dict, str]] = {
    "mobilenetv2": ({"widen_factor": 1.0}, "pose_mobilenetv2"),
    "shufflenetv1": ({"groups": 3}, "pose_shufflenetv1"),
    "shufflenetv2": ({"widen_factor": 1.0}, "pose_shufflenetv2"),
}


def _heatmap(backbone: str, size: tuple[int, int], sha_date: str, published: dict) -> PoseModelConfig:
    stem = f"td-hm_{backbone}_8xb64-210e_coco-{size_hw(size)}"
    args, arch = _BACKBONES[backbone]
    return entry(
        f"td-hm_{backbone}" + ("" if size == _S else f"_coco-{size_hw(size)}"),
        "heatmap",
        "SimpleBaseline2D",
        arch,
        f"{CONFIGS}/topdown_heatmap/coco/{stem}.py",
        f"{MMPOSE_DL}/topdown_heatmap/coco/{stem}-{sha_date}.pth",
        published,
        size,
        backbone=backbone,
        backbone_args=dict(args),
        sigma=3.0 if size == _L else 2.0,
    )


_RLE_STEM = "td-reg_mobilenetv2_rle-pretrained-8xb64-210e_coco-256x192"

ENTRIES: tuple[PoseModelConfig, ...] = (
    _heatmap("mobilenetv2", _S, "55a04c35_20221016", coco(0.648, 0.874, 0.725, 0.709, 0.918)),
    _heatmap("mobilenetv2", _L, "d3ab1457_20221013", coco(0.677, 0.882, 0.746, 0.734, 0.920)),
    _heatmap("shufflenetv1", _S, "7a7ea4f4_20221013", coco(0.587, 0.849, 0.654, 0.654, 0.896)),
    _heatmap("shufflenetv1", _L, "8342f8ba_20221013", coco(0.626, 0.862, 0.696, 0.687, 0.903)),
    _heatmap("shufflenetv2", _S, "51fb931e_20221014", coco(0.602, 0.857, 0.672, 0.668, 0.902)),
    _heatmap("shufflenetv2", _L, "d30ab55c_20221014", coco(0.638, 0.866, 0.707, 0.699, 0.910)),
    entry(
        "td-reg_mobilenetv2_rle-pretrained",
        "rle",
        "RLE",
        "deeppose_mobilenetv2_rle_pretrained",
        f"{CONFIGS}/topdown_regression/coco/{_RLE_STEM}.py",
        f"{MMPOSE_DL}/topdown_regression/coco/{_RLE_STEM}-39b73bd5_20220922.pth",
        coco(0.593, 0.836, 0.660, 0.644, 0.877),
        _S,
        backbone="mobilenetv2",
        backbone_args={"widen_factor": 1.0},
        score_mode="bbox_rle",
    ),
)
