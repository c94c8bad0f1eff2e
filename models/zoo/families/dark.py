"""ResNet + DARK zoo entries (MMPose 1.3.2 ``configs/body_2d_keypoint/topdown_heatmap/coco/resnet_dark_coco.yml``):
SimpleBaseline ResNet-50 / 101 / 152 at 256x192 and 384x288 whose codec is ``MSRAHeatmap(unbiased=True)``
(``codec="dark"``: unbiased targets, the DARK decode; ``models.codecs_dark_udp``). Sigma 2 at 256x192, 3 at 384x288;
the decode's blur kernel is MMPose's default 11 except ``td-hm_res152_dark`` 384x288's 17. The flip test shifts the
heatmaps (``shift_heatmap=True``), as plain SimpleBaseline. Torch-free.
"""

from __future__ import annotations

from models.zoo.config import PoseModelConfig, size_hw
from models.zoo.rows import CONFIGS, MMPOSE_DL, coco, entry

_COCO_HM = f"{MMPOSE_DL}/topdown_heatmap/coco"


def _dark(depth: int, size: tuple[int, int], batch: str, file_tail: str, published: dict, **kw) -> PoseModelConfig:
    stem = f"td-hm_res{depth}_dark-{batch}-210e_coco-{size_hw(size)}"
    large = size == (288, 384)
    return entry(
        f"td-hm_res{depth}_dark" + (f"_coco-{size_hw(size)}" if large else ""),
        "heatmap",
        "DarkPose",
        f"pose_resnet_{depth}_dark",
        f"{CONFIGS}/topdown_heatmap/coco/{stem}.py",
        f"{_COCO_HM}/{stem}-{file_tail}.pth",
        published,
        size,
        backbone_depth=depth,
        sigma=3.0 if large else 2.0,
        codec="dark",
        **kw,
    )


_S, _L = (192, 256), (288, 384)

ENTRIES: tuple[PoseModelConfig, ...] = (
    _dark(50, _S, "8xb64", "c129dcb6_20220926", coco(0.724, 0.897, 0.797, 0.777, 0.934)),
    _dark(50, _L, "8xb64", "8b90b538_20220926", coco(0.735, 0.902, 0.801, 0.786, 0.938)),
    _dark(101, _S, "8xb64", "528ec248_20220926", coco(0.733, 0.900, 0.810, 0.786, 0.938)),
    _dark(101, _L, "8xb64", "487d40a4_20220926", coco(0.749, 0.905, 0.818, 0.799, 0.940)),
    _dark(152, _S, "8xb32", "f754df5f_20221031", coco(0.743, 0.906, 0.819, 0.796, 0.943)),
    _dark(152, _L, "8xb32", "329f8454_20221031", coco(0.757, 0.907, 0.825, 0.805, 0.943), blur_kernel_size=17),
)
