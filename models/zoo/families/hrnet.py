"""Zoo entries of the HRNet family (see :mod:`models.zoo.families`): MMPose 1.3.2's
``configs/body_2d_keypoint/topdown_heatmap/coco/hrnet_coco.yml`` rows of HRNet-W32 and W48 at 256x192 and 384x288
(MSRA heatmaps, ``HeatmapHead`` without deconvolutions on the stride-4 branch: heatmaps of input / 4), and the same
networks' DARK and UDP rows (``hrnet_dark_coco.yml``, ``hrnet_udp_coco.yml``; collections ``DarkPose`` and ``UDP``):
``td-hm_hrnet-w{32,48}_{dark,udp}`` at 256x192 and ``..._coco-384x288``. DARK: ``MSRAHeatmap(unbiased=True)``
(``codec="dark"``), MMPose's default blur kernel 11 at both sizes, the flip test shifts the heatmaps. UDP:
``UDPHeatmap`` with ``TopdownAffine(use_udp=True)`` crops (``codec="udp"``), blur kernel 11, no flip-test shift
(``shift_heatmap=False``). Sigma 2 at 256x192, 3 at 384x288 for all. Torch-free."""

from __future__ import annotations

from models.zoo.config import PoseModelConfig, size_hw
from models.zoo.rows import CONFIGS, MMPOSE_DL, coco, entry

_S, _L = (192, 256), (288, 384)

#: MMPose's ImageNet HRNet weights by width: (URL, SHA-256 prefix from the file name). The configs' backbone
#: ``init_cfg=dict(type='Pretrained', checkpoint=...)`` (no prefix: the file's keys are the backbone's, plus the
#: classifier's, which MMPose's non-strict load leaves out).
IMAGENET_HRNET: dict[int, tuple[str, str]] = {
    32: ("https://download.openmmlab.com/mmpose/pretrain_models/hrnet_w32-36af842e.pth", "36af842e"),
    48: ("https://download.openmmlab.com/mmpose/pretrain_models/hrnet_w48-8ef0771d.pth", "8ef0771d"),
}


def hrnet_width(config: PoseModelConfig) -> int:
    """The W of an HRNet config (its first branch's width in stage 2)."""
    return int(config.backbone_args["extra"]["stage2"]["num_channels"][0])


def _extra(width: int) -> dict:
    """MMPose's ``extra`` of the HRNet-W<width> configs (``models.backbones.hrnet.hrnet_extra``, spelt out here to
    keep this module torch-free)."""
    chans = [width * 2**b for b in range(4)]

    def stage(modules: int, branches: int) -> dict:
        return {"num_modules": modules, "num_branches": branches, "block": "BASIC", "num_blocks": [4] * branches,
                "num_channels": chans[:branches]}  # fmt: skip

    return {
        "stage1": {"num_modules": 1, "num_branches": 1, "block": "BOTTLENECK", "num_blocks": [4], "num_channels": [64]},
        "stage2": stage(1, 2),
        "stage3": stage(4, 3),
        "stage4": stage(3, 4),
    }


#: codec variant -> (name / config infix, MMPose collection, zoo config fields)
_VARIANTS: dict[str, tuple[str, str, dict]] = {
    "msra": ("", "HRNet", {}),
    "dark": ("_dark", "DarkPose", {"codec": "dark"}),
    "udp": ("_udp", "UDP", {"codec": "udp", "shift_heatmap": False}),
}


def _hrnet(
    width: int, size: tuple[int, int], batch: int, sha_date: str, published: dict, codec: str = "msra"
) -> PoseModelConfig:
    infix, collection, fields = _VARIANTS[codec]
    stem = f"td-hm_hrnet-w{width}{infix + '-' if infix else '_'}8xb{batch}-210e_coco-{size_hw(size)}"
    return entry(
        f"td-hm_hrnet-w{width}{infix}{'' if size == _S else f'_coco-{size_hw(size)}'}",
        "heatmap",
        collection,
        f"pose_hrnet_w{width}{infix}",
        f"{CONFIGS}/topdown_heatmap/coco/{stem}.py",
        f"{MMPOSE_DL}/topdown_heatmap/coco/{stem}-{sha_date}.pth",
        published,
        size,
        backbone="hrnet",
        backbone_args={"extra": _extra(width)},
        deconv_out_channels=(),
        deconv_kernel_sizes=(),
        sigma=3.0 if size == _L else 2.0,
        **fields,
    )


ENTRIES: tuple[PoseModelConfig, ...] = (
    _hrnet(32, _S, 64, "81c58e40_20220909", coco(0.746, 0.904, 0.819, 0.799, 0.942)),
    _hrnet(32, _L, 64, "ca5956af_20220909", coco(0.760, 0.906, 0.830, 0.810, 0.943)),
    _hrnet(48, _S, 32, "0e67c616_20220913", coco(0.756, 0.907, 0.825, 0.806, 0.942)),
    _hrnet(48, _L, 32, "c161b7de_20220915", coco(0.767, 0.910, 0.831, 0.816, 0.946)),
    # hrnet_dark_coco.yml
    _hrnet(32, _S, 64, "0e00bf12_20220914", coco(0.757, 0.907, 0.825, 0.807, 0.943), "dark"),
    _hrnet(32, _L, 64, "9bab4c9b_20220917", coco(0.766, 0.907, 0.829, 0.815, 0.942), "dark"),
    _hrnet(48, _S, 32, "e1ebdd6f_20220913", coco(0.764, 0.907, 0.831, 0.814, 0.942), "dark"),
    _hrnet(48, _L, 32, "39c3c381_20220916", coco(0.772, 0.911, 0.833, 0.821, 0.948), "dark"),
    # hrnet_udp_coco.yml
    _hrnet(32, _S, 64, "73ede547_20220914", coco(0.762, 0.907, 0.829, 0.810, 0.942), "udp"),
    _hrnet(32, _L, 64, "9a3f7c85_20220914", coco(0.768, 0.909, 0.832, 0.815, 0.945), "udp"),
    _hrnet(48, _S, 32, "3feaef8f_20220913", coco(0.768, 0.908, 0.833, 0.817, 0.945), "udp"),
    _hrnet(48, _L, 32, "70d7ab01_20220913", coco(0.773, 0.911, 0.836, 0.821, 0.946), "udp"),
)
