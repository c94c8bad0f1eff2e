"""The zoo's entries: one :class:`~models.zoo.config.PoseModelConfig` per MMPose 1.3.2 config (the ResNet families here,
the others in :mod:`models.zoo.families`), with its checkpoint URL,
the SHA-256 prefix of that file and the published figures (see :mod:`models.zoo` for the families and sources); and
torchvision's ImageNet ResNet weights that the SimpleBaseline configs start from.
"""

from __future__ import annotations

from models.zoo import families
from models.zoo.config import PoseModelConfig, size_hw
from models.zoo.rows import CONFIGS as _CONFIGS
from models.zoo.rows import MMPOSE_DL as _MMPOSE_DL
from models.zoo.rows import MMPOSE_V0 as _MMPOSE_V0
from models.zoo.rows import coco as _coco
from models.zoo.rows import entry as _entry
from models.zoo.rows import mpii as _mpii

#: torchvision's ImageNet ResNet weights by depth: (URL, SHA-256 prefix from the file name). MMPose's
#: ``init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')`` resolves to these files
#: (mmengine ``hub/torchvision_0.12.json``, the IMAGENET1K_V1 weights); the SimpleBaseline config starts from them.
IMAGENET_RESNET: dict[int, tuple[str, str]] = {
    18: ("https://download.pytorch.org/models/resnet18-f37072fd.pth", "f37072fd"),
    34: ("https://download.pytorch.org/models/resnet34-b627a593.pth", "b627a593"),
    50: ("https://download.pytorch.org/models/resnet50-0676ba61.pth", "0676ba61"),
    101: ("https://download.pytorch.org/models/resnet101-63fe2227.pth", "63fe2227"),
    152: ("https://download.pytorch.org/models/resnet152-394f9c45.pth", "394f9c45"),
}


def _integral(name: str, collection: str, arch: str, stem: str, sha_date: str, published: dict, **kw):
    return _entry(
        name,
        "integral",
        collection,
        arch,
        f"{_CONFIGS}/integral_regression/coco/{stem}.py",
        f"{_MMPOSE_DL}/integral_regression/coco/{stem}-{sha_date}.pth",
        published,
        (256, 256),
        **kw,
    )


def _simplebaseline(depth: int, dataset: str, size: tuple[int, int], stem: str, url: str, published: dict, **kw):
    suffix = (
        "" if (dataset, size) == ("coco", (192, 256)) else ("_mpii" if dataset == "mpii" else f"_coco-{size_hw(size)}")
    )
    return _entry(
        f"td-hm_res{depth}{suffix}",
        "heatmap",
        "SimpleBaseline2D",
        f"pose_resnet_{depth}",
        f"{_CONFIGS}/topdown_heatmap/{dataset}/{stem}.py",
        url,
        published,
        size,
        backbone_depth=depth,
        sigma=3.0 if size == (288, 384) else 2.0,
        **({"num_keypoints": 16, "keypoint_schema": "mpii16"} if dataset == "mpii" else {}),
        **kw,
    )


def _regression(depth: int, rle: bool, dataset: str, size: tuple[int, int], stem: str, url: str, published, **kw):
    suffix = (
        "" if (dataset, size) == ("coco", (192, 256)) else ("_mpii" if dataset == "mpii" else f"_coco-{size_hw(size)}")
    )
    variant = kw.pop("variant", "")
    return _entry(
        f"td-reg_res{depth}{'_rle' if rle else ''}{variant}{suffix}",
        "rle" if rle else "regression",
        "RLE" if rle else "DeepPose",
        f"deeppose_resnet_{depth}{'_rle' if rle else ''}{variant.replace('-', '_')}",
        f"{_CONFIGS}/topdown_regression/{dataset}/{stem}.py",
        url,
        published,
        size,
        backbone_depth=depth,
        score_mode="bbox_rle" if rle and dataset == "coco" else "bbox_keypoint",
        **({"num_keypoints": 16, "keypoint_schema": "mpii16"} if dataset == "mpii" else {}),
        **kw,
    )


_COCO_HM, _COCO_REG = f"{_MMPOSE_DL}/topdown_heatmap/coco", f"{_MMPOSE_DL}/topdown_regression/coco"
_S, _L, _SQ = (192, 256), (288, 384), (256, 256)

#: The ResNet families' entries (this module); the shared zoo tests run over these, each family module's own tests over
#: its entries.
RESNET_ZOO: dict[str, PoseModelConfig] = {
    c.name: c
    for c in (
        # ---- integral regression (integral_regression/coco/resnet_{ipr,dsnt,debias}_coco.yml)
        _integral(
            "ipr_res50",
            "IPR",
            "ipr_resnet_50",
            "ipr_res50_8xb64-210e_coco-256x256",
            "a3898a33_20220913",
            _coco(0.633, 0.860, 0.703, 0.730, 0.919),
        ),
        _integral(
            "ipr_res50_dsnt",
            "DSNT",
            "ipr_resnet_50_dsnt",
            "ipr_res50_dsnt-8xb64-210e_coco-256x256",
            "441eedc0_20220913",
            _coco(0.674, 0.870, 0.744, 0.764, 0.928),
        ),
        _integral(
            "ipr_res50_debias",
            "Debias-IPR",
            "debias-ipr_resnet_50",
            "ipr_res50_debias-8xb64-210e_coco-256x256",
            "055a7699_20220913",
            _coco(0.675, 0.872, 0.740, 0.765, 0.928),
            beta=10.0,
            debias=True,
        ),
        # ---- SimpleBaseline (topdown_heatmap/coco/resnet_coco.yml, topdown_heatmap/mpii/resnet_mpii.yml)
        _simplebaseline(
            50,
            "coco",
            _S,
            "td-hm_res50_8xb64-210e_coco-256x192",
            f"{_COCO_HM}/td-hm_res50_8xb64-210e_coco-256x192-04af38ce_20220923.pth",
            _coco(0.718, 0.898, 0.796, 0.774, 0.934),
        ),
        _simplebaseline(
            101,
            "coco",
            _S,
            "td-hm_res101_8xb64-210e_coco-256x192",
            f"{_COCO_HM}/td-hm_res101_8xb64-210e_coco-256x192-065d3625_20220926.pth",
            _coco(0.728, 0.904, 0.809, 0.783, 0.942),
        ),
        # resnet_coco.yml lists the 256x192 file for this row; the 384x288 checkpoint is MMPose 0.x's (module docstring)
        _simplebaseline(
            101,
            "coco",
            _L,
            "td-hm_res101_8xb32-210e_coco-384x288",
            f"{_MMPOSE_V0}/resnet/res101_coco_384x288-8c71bdc9_20200709.pth",
            _coco(0.748, 0.905, 0.817, 0.798, 0.940),
        ),
        _simplebaseline(
            152,
            "coco",
            _S,
            "td-hm_res152_8xb32-210e_coco-256x192",
            f"{_COCO_HM}/td-hm_res152_8xb32-210e_coco-256x192-0345f330_20220928.pth",
            _coco(0.736, 0.904, 0.818, 0.791, 0.942),
        ),
        _simplebaseline(
            152,
            "coco",
            _L,
            "td-hm_res152_8xb32-210e_coco-384x288",
            f"{_COCO_HM}/td-hm_res152_8xb32-210e_coco-384x288-7fbb906f_20220927.pth",
            _coco(0.750, 0.908, 0.821, 0.800, 0.942),
        ),
        _simplebaseline(
            50,
            "mpii",
            _SQ,
            "td-hm_res50_8xb64-210e_mpii-256x256",
            f"{_MMPOSE_V0}/resnet/res50_mpii_256x256-418ffc88_20200812.pth",
            _mpii(0.882, 0.286),
        ),
        _simplebaseline(
            101,
            "mpii",
            _SQ,
            "td-hm_res101_8xb64-210e_mpii-256x256",
            f"{_MMPOSE_V0}/resnet/res101_mpii_256x256-416f5d71_20200812.pth",
            _mpii(0.888, 0.290),
        ),
        _simplebaseline(
            152,
            "mpii",
            _SQ,
            "td-hm_res152_8xb32-210e_mpii-256x256",
            f"{_MMPOSE_V0}/resnet/res152_mpii_256x256-3ecba29d_20200812.pth",
            _mpii(0.889, 0.303),
        ),
        # ---- DeepPose (topdown_regression/coco/resnet_coco.yml, topdown_regression/mpii/resnet_mpii.yml)
        _regression(
            50,
            False,
            "coco",
            _S,
            "td-reg_res50_8xb64-210e_coco-256x192",
            f"{_COCO_REG}/td-reg_res50_8xb64-210e_coco-256x192-72ef04f3_20220913.pth",
            _coco(0.541, 0.824, 0.601, 0.649, 0.893),
        ),
        _regression(
            101,
            False,
            "coco",
            _S,
            "td-reg_res101_8xb64-210e_coco-256x192",
            f"{_MMPOSE_V0}/deeppose/deeppose_res101_coco_256x192-2f247111_20210205.pth",
            _coco(0.562, 0.831, 0.629, 0.670, 0.900),
        ),
        _regression(
            152,
            False,
            "coco",
            _S,
            "td-reg_res152_8xb64-210e_coco-256x192",
            f"{_MMPOSE_V0}/deeppose/deeppose_res152_coco_256x192-7df89a88_20210205.pth",
            _coco(0.584, 0.842, 0.659, 0.688, 0.907),
        ),
        _regression(
            50,
            False,
            "mpii",
            _SQ,
            "td-reg_res50_8xb64-210e_mpii-256x256",
            f"{_MMPOSE_V0}/deeppose/deeppose_res50_mpii_256x256-c63cd0b6_20210203.pth",
            _mpii(0.826, 0.180),
        ),
        _regression(
            101,
            False,
            "mpii",
            _SQ,
            "td-reg_res101_8xb64-210e_mpii-256x256",
            f"{_MMPOSE_V0}/deeppose/deeppose_res101_mpii_256x256-87516a90_20210205.pth",
            _mpii(0.841, 0.200),
        ),
        _regression(
            152,
            False,
            "mpii",
            _SQ,
            "td-reg_res152_8xb64-210e_mpii-256x256",
            f"{_MMPOSE_V0}/deeppose/deeppose_res152_mpii_256x256-15f5e6f9_20210205.pth",
            _mpii(0.850, 0.208),
        ),
        # ---- RLE (topdown_regression/coco/resnet_rle_coco.yml, topdown_regression/mpii/resnet_rle_mpii.yml)
        _regression(
            50,
            True,
            "coco",
            _S,
            "td-reg_res50_rle-8xb64-210e_coco-256x192",
            f"{_COCO_REG}/td-reg_res50_rle-8xb64-210e_coco-256x192-d37efd64_20220913.pth",
            _coco(0.706, 0.888, 0.776, 0.753, 0.924),
        ),
        _regression(
            50,
            True,
            "coco",
            _S,
            "td-reg_res50_rle-pretrained-8xb64-210e_coco-256x192",
            f"{_COCO_REG}/td-reg_res50_rle-pretrained-8xb64-210e_coco-256x192-2cb494ee_20220913.pth",
            _coco(0.719, 0.891, 0.788, 0.764, 0.925),
            variant="-pretrained",
        ),
        _regression(
            101,
            True,
            "coco",
            _S,
            "td-reg_res101_rle-8xb64-210e_coco-256x192",
            f"{_MMPOSE_V0}/deeppose/deeppose_res101_coco_256x192_rle-16c3d461_20220615.pth",
            _coco(0.722, 0.894, 0.794, 0.768, 0.930),
        ),
        _regression(
            152,
            True,
            "coco",
            _S,
            "td-reg_res152_rle-8xb64-210e_coco-256x192",
            f"{_MMPOSE_V0}/deeppose/deeppose_res152_coco_256x192_rle-c05bdccf_20220615.pth",
            _coco(0.731, 0.897, 0.805, 0.777, 0.933),
        ),
        _regression(
            152,
            True,
            "coco",
            _L,
            "td-reg_res152_rle-8xb64-210e_coco-384x288",
            f"{_MMPOSE_V0}/deeppose/deeppose_res152_coco_384x288_rle-b77c4c37_20220624.pth",
            _coco(0.749, 0.901, 0.815, 0.793, 0.935),
        ),
        _regression(
            50,
            True,
            "mpii",
            _SQ,
            "td-reg_res50_rle-8xb64-210e_mpii-256x256",
            f"{_MMPOSE_V0}/deeppose/deeppose_res50_mpii_256x256_rle-5f92a619_20220504.pth",
            _mpii(0.861, 0.277),
        ),
    )
}

_duplicates = sorted({c.name for c in families.family_entries()} & set(RESNET_ZOO))
if _duplicates:
    raise RuntimeError(f"zoo family entries redefine {_duplicates}")
#: Every entry: :data:`RESNET_ZOO`, then the families of :mod:`models.zoo.families`.
ZOO: dict[str, PoseModelConfig] = {**RESNET_ZOO, **{c.name: c for c in families.family_entries()}}
