"""Named pose-model configs (a small model zoo) and verified checkpoint download.

Every entry mirrors one MMPose 1.3.2 config and its published checkpoint; ``pose-zoo list`` prints them grouped
by family and data set as MMPose's model-zoo tables do (:func:`zoo_table`). The families:

===================  ============================================================================  ==============
collection           entries (MMPose config folder ``configs/body_2d_keypoint/...``)               head
===================  ============================================================================  ==============
IPR, DSNT,           ``ipr_res50``, ``ipr_res50_dsnt``, ``ipr_res50_debias``                        integral
Debias-IPR           (``integral_regression/coco``, 256x256)
SimpleBaseline2D     ``td-hm_res{50,101,152}`` (256x192), ``td-hm_res{101,152}_coco-384x288``,      heatmap
                     ``td-hm_res{50,101,152}_mpii`` (256x256) (``topdown_heatmap/{coco,mpii}``)
DeepPose             ``td-reg_res{50,101,152}`` (256x192), ``td-reg_res{50,101,152}_mpii``           regression
                     (``topdown_regression/{coco,mpii}``)
RLE                  ``td-reg_res{50,101,152}_rle``, ``td-reg_res50_rle-pretrained`` (256x192),     rle
                     ``td-reg_res152_rle_coco-384x288``, ``td-reg_res50_rle_mpii``
===================  ============================================================================  ==============

Published figures are copied from the model-zoo metafiles shipped with MMPose 1.3.2
(``configs/body_2d_keypoint/*/{coco,mpii}/*.yml``): COCO val2017 keypoint AP / AP50 / AP75 / AR / AR50 with flip
test and the person detections of ``COCO_val2017_detections_AP_H_56_person.json``; MPII val PCKh@0.5 (``Mean``)
and PCKh@0.1 (``Mean@0.1``) with ground-truth boxes. Checkpoint URLs are the metafiles' ``Weights``; several are
MMPose 0.x files (``download.openmmlab.com/mmpose/top_down/...``) whose keys MMPose 1.x renames on load
(``keypoint_head.`` -> ``head.``; ``models.checkpoints.mmpose_v1_keys`` does the same). One exception:
``resnet_coco.yml`` gives the 384x288 SimpleBaseline ResNet-101 row the 256x192 checkpoint's URL
(``td-hm_res101_8xb64-210e_coco-256x192-065d3625``), so ``td-hm_res101_coco-384x288`` takes the 384x288 checkpoint
of MMPose 0.x's model zoo (``res101_coco_384x288-8c71bdc9_20200709.pth``) and that table's figures for it.

The 8 hex digits in each checkpoint's file name are the start of its SHA-256 (OpenMMLab's ``publish_model``
convention); ``models.checkpoints.load_pretrained`` verifies them when it downloads.

Torch-free (stdlib only), so the service and tools can read configs without importing torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from models.heads import HEAD_KIND_NAMES
from models.keypoints import NUM_KEYPOINTS, SCHEMAS
from models.scoring import SCORE_MODES

#: ImageNet mean / std in RGB order, 0-255 scale (MMPose ``PoseDataPreprocessor`` in all four configs).
IMAGENET_MEAN_RGB: tuple[float, float, float] = (123.675, 116.28, 103.53)
IMAGENET_STD_RGB: tuple[float, float, float] = (58.395, 57.12, 57.375)

_MMPOSE_DL = "https://download.openmmlab.com/mmpose/v1/body_2d_keypoint"
#: MMPose 0.x checkpoints that MMPose 1.3.2's metafiles still point to.
_MMPOSE_V0 = "https://download.openmmlab.com/mmpose/top_down"
_CONFIGS = "configs/body_2d_keypoint"

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

#: Metric columns of MMPose's model-zoo tables by data set (the keys of ``PoseModelConfig.published``).
METRIC_COLUMNS: dict[str, tuple[str, ...]] = {
    "coco": ("AP", "AP50", "AP75", "AR", "AR50"),
    "mpii": ("Mean", "Mean@0.1"),
}


@dataclass(frozen=True)
class PoseModelConfig:
    """Everything needed to build, load and run one top-down pose model.

    Attributes:
        name: registry name, e.g. ``"ipr_res50_debias"``.
        head_kind: a registered head kind (``models.heads.HEAD_KIND_NAMES``, one module each): ``"integral"``
            (soft-argmax head, output [B, K, 2] normalised coordinates), ``"heatmap"`` (SimpleBaseline head, output
            [B, K, h, w] heatmaps), ``"regression"``
            (DeepPose ``RegressionHead``, output [B, K, 2] normalised coordinates) or ``"rle"`` (``RLEHead``,
            output [B, K, 3]: normalised coordinates and the score 1 - mean sigma).
        input_size: (w, h) of the model input crop in pixels.
        num_keypoints: K (must equal the schema's K when ``keypoint_schema`` is set).
        keypoint_schema: ``models.keypoints.SCHEMAS`` name (``"coco17"``, ``"mpii16"``): keypoint names, flip pairs
            and the data set that evaluates the model; None for a generic K (no flip pairs, no flip test).
        backbone_depth: ResNet depth (18, 34, 50, 101, 152).
        backbone_base_channels: ResNet stem width (64 for the real models; smaller for tests).
        deconv_out_channels, deconv_kernel_sizes: the SimpleBaseline deconvolution stack.
        beta: softmax temperature multiplier of the integral head (1 for IPR/DSNT, 10 for Debias).
        debias: apply the Debias-IPR correction (Gu et al. 2021, MMPose variant); integral heads only, checked by the
            head kind (``HeadKind.check_config``) when a model, card or training config is made from the config.
        sigma: Gaussian sigma of the training heatmap target, in heatmap pixels (heatmap / integral heads).
        mean, std: per-channel normalisation in RGB order on the 0-255 scale.
        flip_test: whether MMPose's test config averages a horizontally flipped pass.
        shift_coords: coordinate flip test (integral, regression, RLE) shifts flipped x by one input pixel (MMPose
            ``shift_coords``).
        shift_heatmap: heatmap flip test shifts flipped heatmaps by one heatmap pixel.
        checkpoint_url: published MMPose checkpoint, or None.
        sha256_prefix: leading hex digits of the checkpoint's SHA-256, or None.
        published: published metrics, keyed by :data:`METRIC_COLUMNS` of the data set: COCO val2017 ``AP``,
            ``AP50``, ``AP75``, ``AR``, ``AR50``; MPII val ``Mean`` (PCKh@0.5) and ``Mean@0.1`` (PCKh@0.1); fractions.
        mmpose_config: the MMPose config file this entry mirrors.
        collection: MMPose's model-zoo collection (``In Collection``: ``"DeepPose"``, ``"RLE"``, ...), the
            ``pose-zoo list`` group.
        arch: the ``Arch`` name of MMPose's model-zoo table (``"deeppose_resnet_50_rle"``).
        score_mode: person score of the COCO evaluation (MMPose ``CocoMetric(score_mode=...)``, one of
            :data:`models.scoring.SCORE_MODES`): ``bbox_keypoint`` for every config here except RLE's ``bbox_rle``.
    """

    name: str
    head_kind: str
    input_size: tuple[int, int] = (256, 256)
    num_keypoints: int = NUM_KEYPOINTS
    keypoint_schema: str | None = "coco17"
    backbone_depth: int = 50
    backbone_base_channels: int = 64
    deconv_out_channels: tuple[int, ...] = (256, 256, 256)
    deconv_kernel_sizes: tuple[int, ...] = (4, 4, 4)
    beta: float = 1.0
    debias: bool = False
    sigma: float = 2.0
    mean: tuple[float, float, float] = IMAGENET_MEAN_RGB
    std: tuple[float, float, float] = IMAGENET_STD_RGB
    flip_test: bool = True
    shift_coords: bool = True
    shift_heatmap: bool = True
    checkpoint_url: str | None = None
    sha256_prefix: str | None = None
    published: dict = field(default_factory=dict)
    mmpose_config: str | None = None
    collection: str = ""
    arch: str = ""
    score_mode: str = "bbox_keypoint"

    def __post_init__(self) -> None:
        if self.head_kind not in HEAD_KIND_NAMES:
            raise ValueError(f"head_kind must be one of {HEAD_KIND_NAMES}, got {self.head_kind!r}")
        if len(self.input_size) != 2 or min(self.input_size) <= 0 or any(s % 32 for s in self.input_size):
            raise ValueError(
                f"input_size must be (w, h), positive multiples of 32 (ResNet stride), got {self.input_size}"
            )
        if len(self.deconv_out_channels) != len(self.deconv_kernel_sizes):
            raise ValueError(
                f"deconv_out_channels {self.deconv_out_channels} and deconv_kernel_sizes "
                f"{self.deconv_kernel_sizes} must have the same length"
            )
        if self.keypoint_schema is not None:
            if self.keypoint_schema not in SCHEMAS:
                raise ValueError(
                    f"keypoint_schema must be one of {sorted(SCHEMAS)} or None, got {self.keypoint_schema!r}"
                )
            k = SCHEMAS[self.keypoint_schema].num_keypoints
            if self.num_keypoints != k:
                raise ValueError(
                    f"num_keypoints {self.num_keypoints} does not match keypoint_schema {self.keypoint_schema!r} "
                    f"(K={k}); use keypoint_schema=None for a generic K"
                )
        elif self.num_keypoints < 1:
            raise ValueError(f"num_keypoints must be >= 1, got {self.num_keypoints}")
        if self.score_mode not in SCORE_MODES:
            raise ValueError(f"score_mode must be one of {SCORE_MODES}, got {self.score_mode!r}")
        if self.sha256_prefix is not None and not all(c in "0123456789abcdef" for c in self.sha256_prefix):
            raise ValueError(f"sha256_prefix must be lower-case hex, got {self.sha256_prefix!r}")

    @property
    def feature_size(self) -> tuple[int, int]:
        """(w, h) of the ResNet C5 feature map (input / 32)."""
        return (self.input_size[0] // 32, self.input_size[1] // 32)

    @property
    def heatmap_size(self) -> tuple[int, int]:
        """(w, h) of the head's heatmap: C5 size times 2 per deconvolution (64x64 for 256x256 input)."""
        f = 2 ** len(self.deconv_out_channels)
        return (self.feature_size[0] * f, self.feature_size[1] * f)

    @property
    def backbone_out_channels(self) -> int:
        """Channels of ResNet C5 (2048 for ResNet-50 with base 64)."""
        expansion = 4 if self.backbone_depth >= 50 else 1
        return self.backbone_base_channels * 8 * expansion

    @property
    def dataset(self) -> str | None:
        """The data set that evaluates the model (``"coco"``, ``"mpii"``; None for a generic schema)."""
        return SCHEMAS[self.keypoint_schema].dataset if self.keypoint_schema else None

    @property
    def checkpoint_filename(self) -> str | None:
        """File name of the published checkpoint (the last URL component)."""
        return self.checkpoint_url.rsplit("/", 1)[-1] if self.checkpoint_url else None

    def replace(self, **changes) -> PoseModelConfig:
        """A copy with some fields changed (e.g. small channel counts for tests)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """JSON-serialisable dict (tuples become lists); inverse of :meth:`from_dict`."""
        d = dataclasses.asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> PoseModelConfig:
        """Build from :meth:`to_dict` output.

        Raises:
            ValueError: unknown keys or invalid values (the message names them).
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown PoseModelConfig keys: {unknown}")
        kw = dict(d)
        for k in ("input_size", "deconv_out_channels", "deconv_kernel_sizes", "mean", "std"):
            if k in kw and kw[k] is not None:
                kw[k] = tuple(kw[k])
        return cls(**kw)


def _coco(ap: float, ap50: float, ap75: float, ar: float, ar50: float) -> dict:
    return {"AP": ap, "AP50": ap50, "AP75": ap75, "AR": ar, "AR50": ar50}


def _mpii(mean: float, mean01: float) -> dict:
    return {"Mean": mean, "Mean@0.1": mean01}


#: The MMPose input size string of each (w, h) in configs and file names (``256x192`` = height x width).
def _hw(size: tuple[int, int]) -> str:
    return f"{size[1]}x{size[0]}"


def _entry(
    name: str,
    head_kind: str,
    collection: str,
    arch: str,
    mmpose_config: str,
    url: str,
    published: dict,
    input_size: tuple[int, int],
    **kw,
) -> PoseModelConfig:
    """A zoo entry; the SHA-256 prefix is the 8 hex digits of the checkpoint's file name."""
    sha = url.rsplit("/", 1)[-1].rsplit("-", 1)[-1].split("_", 1)[0].split(".", 1)[0]
    return PoseModelConfig(
        name=name,
        head_kind=head_kind,
        input_size=input_size,
        checkpoint_url=url,
        sha256_prefix=sha,
        published=published,
        mmpose_config=mmpose_config,
        collection=collection,
        arch=arch,
        **kw,
    )


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
    suffix = "" if (dataset, size) == ("coco", (192, 256)) else ("_mpii" if dataset == "mpii" else f"_coco-{_hw(size)}")
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
    suffix = "" if (dataset, size) == ("coco", (192, 256)) else ("_mpii" if dataset == "mpii" else f"_coco-{_hw(size)}")
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

ZOO: dict[str, PoseModelConfig] = {
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


def get_config(name: str) -> PoseModelConfig:
    """The zoo config called ``name``.

    Raises:
        KeyError: unknown name (the message lists the known ones).
    """
    try:
        return ZOO[name]
    except KeyError:
        raise KeyError(f"unknown pose model {name!r}; known: {sorted(ZOO)}") from None


def model_zoo_table(rows: list[dict], dataset: str, extra_columns: tuple[str, ...] = ()) -> str:
    """MMPose's model-zoo table in Markdown: ``| Arch | Input Size | <metrics of the data set> | <extra> |``.

    The one formatter of these tables (``pose-zoo list``, ``pose-eval``).

    Args:
        rows: dicts with ``arch`` (str), ``input_size`` ((w, h) pixels; printed as MMPose does, height x width:
            ``256x192``), ``metrics`` (figures by :data:`METRIC_COLUMNS` name, fractions; missing ones print ``-``)
            and one value per ``extra_columns`` name.
        dataset: ``"coco"`` or ``"mpii"`` (:data:`METRIC_COLUMNS`).
        extra_columns: more columns after the metrics (their values are printed as given).

    Returns:
        The table, one line per row, newline-terminated.

    Raises:
        KeyError: unknown data set.
    """
    metrics = METRIC_COLUMNS[dataset]
    head = ("Arch", "Input Size", *metrics, *extra_columns)
    lines = [
        "| " + " | ".join(head) + " |",
        "|" + "|".join([":---", ":---:"] + [":---:"] * len(metrics) + [":---"] * len(extra_columns)) + "|",
    ]
    for r in rows:
        m = r["metrics"]
        figures = [f"{m[k]:.3f}" if m.get(k) is not None else "-" for k in metrics]
        cells = [r["arch"], _hw(r["input_size"]), *figures, *(str(r[c]) for c in extra_columns)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


_DATASET_TITLES = {
    "coco": "COCO val2017, person detections AP_H 56, flip test",
    "mpii": "MPII val, PCKh (Mean = PCKh@0.5), flip test",
}


def zoo_table() -> str:
    """Every entry with its published figures, grouped by collection and data set as MMPose's model-zoo tables
    (``pose-zoo list``): one Markdown table per group with the columns of that data set, the zoo name and the
    checkpoint URL."""
    groups: dict[tuple[str, str], list[PoseModelConfig]] = {}
    for cfg in ZOO.values():
        groups.setdefault((cfg.collection or cfg.head_kind, cfg.dataset or "coco"), []).append(cfg)
    parts = []
    for (collection, dataset), cfgs in groups.items():
        rows = [
            {
                "arch": c.arch or c.name,
                "input_size": c.input_size,
                "metrics": c.published,
                "name": c.name,
                "ckpt": c.checkpoint_url,
            }
            for c in cfgs
        ]
        parts.append(
            f"## {collection} ({_DATASET_TITLES[dataset]})\n\n" + model_zoo_table(rows, dataset, ("name", "ckpt"))
        )
    return "\n".join(parts)
