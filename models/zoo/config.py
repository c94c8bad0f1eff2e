"""What a zoo entry is: :class:`PoseModelConfig` and the vocabulary it uses (ImageNet mean / std, the metric columns of
MMPose's model-zoo tables by data set).

Torch-free (stdlib only), so the service and tools can read configs without importing torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from models.backbones import BACKBONE_NAMES, backbone_spec
from models.heads import HEAD_KIND_NAMES
from models.keypoints import NUM_KEYPOINTS, SCHEMAS
from models.scoring import SCORE_MODES

#: ImageNet mean / std in RGB order, 0-255 scale (MMPose ``PoseDataPreprocessor`` in all four configs).
IMAGENET_MEAN_RGB: tuple[float, float, float] = (123.675, 116.28, 103.53)
IMAGENET_STD_RGB: tuple[float, float, float] = (58.395, 57.12, 57.375)

#: The heatmap codecs of :attr:`PoseModelConfig.codec` and the card's ``output.codec``
#: (``models.codecs_dark_udp.HEATMAP_CODECS``, torch- and OpenCV-free here).
HEATMAP_CODECS: tuple[str, ...] = ("msra", "dark", "udp", "megvii")
#: Head kinds whose exported output is heatmaps (the ones a non-MSRA codec can decode).
HEATMAP_HEAD_KINDS: tuple[str, ...] = ("heatmap", "mspn", "cpm")

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
            output [B, K, 3]: normalised coordinates and the score 1 - mean sigma) or ``"mspn"`` (MSPN / RSN
            multi-stage heads, output the last level's [B, K, h, w] heatmaps).
        input_size: (w, h) of the model input crop in pixels.
        num_keypoints: K (must equal the schema's K when ``keypoint_schema`` is set).
        keypoint_schema: ``models.keypoints.SCHEMAS`` name (``"coco17"``, ``"mpii16"``): keypoint names, flip pairs
            and the data set that evaluates the model; None for a generic K (no flip pairs, no flip test).
        backbone: a registered backbone (``models.backbones.BACKBONE_NAMES``; ``"resnet"`` by default).
        backbone_args: the backbone builder's arguments (JSON values; e.g. HRNet's stage widths), empty for ResNet.
        backbone_depth: ResNet depth (18, 34, 50, 101, 152).
        backbone_base_channels: ResNet stem width (64 for the real models; smaller for tests).
        deconv_out_channels, deconv_kernel_sizes: the SimpleBaseline deconvolution stack.
        beta: softmax temperature multiplier of the integral head (1 for IPR/DSNT, 10 for Debias).
        debias: apply the Debias-IPR correction (Gu et al. 2021, MMPose variant); integral heads only, checked by the
            head kind (``HeadKind.check_config``) when a model, card or training config is made from the config.
        sigma: Gaussian sigma of the training heatmap target, in heatmap pixels (heatmap / integral heads).
        codec: the heatmap codec (:data:`HEATMAP_CODECS`; heatmap heads only): ``"msra"`` (MMPose ``MSRAHeatmap``),
            ``"dark"`` (``MSRAHeatmap(unbiased=True)``), ``"udp"`` (``UDPHeatmap`` with ``TopdownAffine(use_udp=True)``
            crops) or ``"megvii"`` (``MegviiHeatmap``: MSPN / RSN); the card's ``output.codec`` (``models.codecs_dark_udp``,
            ``models.megvii_heatmap``).
        blur_kernel_size: the DARK / UDP decode's blur kernel (MMPose ``blur_kernel_size``, odd; 11 by default).
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
    backbone: str = "resnet"
    backbone_args: dict = field(default_factory=dict)
    backbone_depth: int = 50
    backbone_base_channels: int = 64
    deconv_out_channels: tuple[int, ...] = (256, 256, 256)
    deconv_kernel_sizes: tuple[int, ...] = (4, 4, 4)
    beta: float = 1.0
    debias: bool = False
    sigma: float = 2.0
    codec: str = "msra"
    blur_kernel_size: int = 11
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
        if self.backbone not in BACKBONE_NAMES:
            raise ValueError(f"backbone must be one of {BACKBONE_NAMES}, got {self.backbone!r}")
        if not isinstance(self.backbone_args, dict):
            raise ValueError(f"backbone_args must be a dict, got {type(self.backbone_args).__name__}")
        if self.head_kind not in HEAD_KIND_NAMES:
            raise ValueError(f"head_kind must be one of {HEAD_KIND_NAMES}, got {self.head_kind!r}")
        if self.codec not in HEATMAP_CODECS:
            raise ValueError(f"codec must be one of {HEATMAP_CODECS}, got {self.codec!r}")
        if self.codec != "msra" and self.head_kind not in HEATMAP_HEAD_KINDS:
            raise ValueError(f"codec {self.codec!r} needs a heatmap head {HEATMAP_HEAD_KINDS}, got {self.head_kind!r}")
        if isinstance(self.blur_kernel_size, bool) or not isinstance(self.blur_kernel_size, int):
            raise ValueError(f"blur_kernel_size must be an odd int, got {self.blur_kernel_size!r}")
        if self.blur_kernel_size < 1 or self.blur_kernel_size % 2 != 1:
            raise ValueError(f"blur_kernel_size must be odd and positive, got {self.blur_kernel_size}")
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
        """(w, h) of the feature map the head reads: input / the backbone's stride (ResNet C5: input / 32; AlexNet's
        own arithmetic, ``BackboneSpec.feature_side``: 256x192 -> 7x5)."""
        return backbone_spec(self.backbone).feature_size(self.input_size)

    @property
    def heatmap_size(self) -> tuple[int, int]:
        """(w, h) of the head's heatmap: the feature size times 2 per deconvolution (64x64 for 256x256 input)."""
        f = 2 ** len(self.deconv_out_channels)
        return (self.feature_size[0] * f, self.feature_size[1] * f)

    @property
    def use_udp(self) -> bool:
        """UDP's crop (MMPose ``TopdownAffine(use_udp=True)``): the ``udp`` codec."""
        return self.codec == "udp"

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


def size_hw(size: tuple[int, int]) -> str:
    """The MMPose input size string of a (w, h) in configs, file names and tables (``256x192`` = height x width)."""
    return f"{size[1]}x{size[0]}"
