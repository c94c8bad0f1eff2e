"""Named pose-model configs (a small model zoo) and verified checkpoint download.

Every entry mirrors one MMPose 1.3.2 config and its published checkpoint:

=======================  ==============================================================  =====  =====
name                     MMPose config                                                   AP     AR
=======================  ==============================================================  =====  =====
``ipr_res50``            ``integral_regression/coco/ipr_res50_8xb64-210e_coco-256x256``  0.633  0.730
``ipr_res50_dsnt``       ``.../ipr_res50_dsnt-8xb64-210e_coco-256x256``                   0.674  0.764
``ipr_res50_debias``     ``.../ipr_res50_debias-8xb64-210e_coco-256x256``                 0.675  0.765
``td-hm_res50``          ``topdown_heatmap/coco/td-hm_res50_8xb64-210e_coco-256x192``     0.718  0.774
=======================  ==============================================================  =====  =====

Figures are COCO val2017 keypoint AP/AR with flip test and the person detections of
``COCO_val2017_detections_AP_H_56_person.json``, copied from the model-zoo files shipped with MMPose
(``configs/body_2d_keypoint/integral_regression/coco/resnet_{ipr,dsnt,debias}_coco.yml`` and
``configs/body_2d_keypoint/topdown_heatmap/coco/resnet_coco.yml``).

The three integral configs all use MMPose's ``DSNTHead`` (a subclass of ``IntegralRegressionHead``);
they differ at inference only in ``beta`` / ``debias`` (and in the training losses). The 8 hex digits in
each checkpoint's file name are the start of its SHA-256 (OpenMMLab's ``publish_model`` convention);
``models.checkpoints.load_pretrained`` verifies them when it downloads.

Torch-free (stdlib only), so the service and tools can read configs without importing torch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass, field

from models.keypoints import NUM_KEYPOINTS

#: ImageNet mean / std in RGB order, 0-255 scale (MMPose ``PoseDataPreprocessor`` in all four configs).
IMAGENET_MEAN_RGB: tuple[float, float, float] = (123.675, 116.28, 103.53)
IMAGENET_STD_RGB: tuple[float, float, float] = (58.395, 57.12, 57.375)

_MMPOSE_DL = "https://download.openmmlab.com/mmpose/v1/body_2d_keypoint"

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

#: Head kinds: ``integral`` outputs normalised coordinates, ``heatmap`` outputs heatmaps.
HEAD_KINDS = ("integral", "heatmap")


@dataclass(frozen=True)
class PoseModelConfig:
    """Everything needed to build, load and run one top-down pose model.

    Attributes:
        name: registry name, e.g. ``"ipr_res50_debias"``.
        head_kind: ``"integral"`` (soft-argmax head, output [B, K, 2] normalised coordinates) or
            ``"heatmap"`` (SimpleBaseline head, output [B, K, h, w] heatmaps).
        input_size: (w, h) of the model input crop in pixels.
        num_keypoints: K.
        backbone_depth: ResNet depth (18, 34, 50, 101, 152); the zoo uses 50.
        backbone_base_channels: ResNet stem width (64 for the real models; smaller for tests).
        deconv_out_channels, deconv_kernel_sizes: the SimpleBaseline deconvolution stack.
        beta: softmax temperature multiplier of the integral head (1 for IPR/DSNT, 10 for Debias).
        debias: apply the Debias-IPR correction (Gu et al. 2021, MMPose variant).
        sigma: Gaussian sigma of the training heatmap target, in heatmap pixels.
        mean, std: per-channel normalisation in RGB order on the 0-255 scale.
        flip_test: whether MMPose's test config averages a horizontally flipped pass.
        shift_coords: integral flip test shifts flipped x by one input pixel (MMPose ``shift_coords``).
        shift_heatmap: heatmap flip test shifts flipped heatmaps by one heatmap pixel.
        checkpoint_url: published MMPose checkpoint, or None.
        sha256_prefix: leading hex digits of the checkpoint's SHA-256, or None.
        published: published COCO val2017 metrics (``AP``, ``AP50``, ``AP75``, ``AR``, ``AR50``).
        mmpose_config: the MMPose config file this entry mirrors.
    """

    name: str
    head_kind: str
    input_size: tuple[int, int] = (256, 256)
    num_keypoints: int = NUM_KEYPOINTS
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

    def __post_init__(self) -> None:
        if self.head_kind not in HEAD_KINDS:
            raise ValueError(f"head_kind must be one of {HEAD_KINDS}, got {self.head_kind!r}")
        if len(self.input_size) != 2 or min(self.input_size) <= 0 or any(s % 32 for s in self.input_size):
            raise ValueError(
                f"input_size must be (w, h), positive multiples of 32 (ResNet stride), got {self.input_size}"
            )
        if len(self.deconv_out_channels) != len(self.deconv_kernel_sizes):
            raise ValueError(
                f"deconv_out_channels {self.deconv_out_channels} and deconv_kernel_sizes "
                f"{self.deconv_kernel_sizes} must have the same length"
            )
        if self.debias and self.head_kind != "integral":
            raise ValueError("debias applies to the integral head only")
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


def _integral(name: str, mmpose_config: str, url: str, sha: str, published: dict, **kw) -> PoseModelConfig:
    return PoseModelConfig(
        name=name,
        head_kind="integral",
        input_size=(256, 256),
        checkpoint_url=url,
        sha256_prefix=sha,
        published=published,
        mmpose_config=mmpose_config,
        **kw,
    )


ZOO: dict[str, PoseModelConfig] = {
    c.name: c
    for c in (
        _integral(
            "ipr_res50",
            "configs/body_2d_keypoint/integral_regression/coco/ipr_res50_8xb64-210e_coco-256x256.py",
            f"{_MMPOSE_DL}/integral_regression/coco/ipr_res50_8xb64-210e_coco-256x256-a3898a33_20220913.pth",
            "a3898a33",
            {"AP": 0.633, "AP50": 0.860, "AP75": 0.703, "AR": 0.730, "AR50": 0.919},
        ),
        _integral(
            "ipr_res50_dsnt",
            "configs/body_2d_keypoint/integral_regression/coco/ipr_res50_dsnt-8xb64-210e_coco-256x256.py",
            f"{_MMPOSE_DL}/integral_regression/coco/ipr_res50_dsnt-8xb64-210e_coco-256x256-441eedc0_20220913.pth",
            "441eedc0",
            {"AP": 0.674, "AP50": 0.870, "AP75": 0.744, "AR": 0.764, "AR50": 0.928},
        ),
        _integral(
            "ipr_res50_debias",
            "configs/body_2d_keypoint/integral_regression/coco/ipr_res50_debias-8xb64-210e_coco-256x256.py",
            f"{_MMPOSE_DL}/integral_regression/coco/ipr_res50_debias-8xb64-210e_coco-256x256-055a7699_20220913.pth",
            "055a7699",
            {"AP": 0.675, "AP50": 0.872, "AP75": 0.740, "AR": 0.765, "AR50": 0.928},
            beta=10.0,
            debias=True,
        ),
        PoseModelConfig(
            name="td-hm_res50",
            head_kind="heatmap",
            input_size=(192, 256),
            checkpoint_url=f"{_MMPOSE_DL}/topdown_heatmap/coco/td-hm_res50_8xb64-210e_coco-256x192-04af38ce_20220923.pth",
            sha256_prefix="04af38ce",
            published={"AP": 0.718, "AP50": 0.898, "AP75": 0.796, "AR": 0.774, "AR50": 0.934},
            mmpose_config="configs/body_2d_keypoint/topdown_heatmap/coco/td-hm_res50_8xb64-210e_coco-256x192.py",
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


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file (streamed)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()


def zoo_table() -> str:
    """One line per entry: name, input size, head, published COCO val2017 AP / AR, checkpoint URL (``pose-zoo list``)."""
    lines = []
    for cfg in ZOO.values():
        w, h = cfg.input_size
        kind = cfg.head_kind + (f" beta={cfg.beta:g}" if cfg.head_kind == "integral" else "")
        kind += " debias" if cfg.debias else ""
        lines.append(
            f"{cfg.name:18s} {w}x{h}  {kind:24s} AP {cfg.published.get('AP', float('nan')):.3f}  "
            f"AR {cfg.published.get('AR', float('nan')):.3f}  {cfg.checkpoint_url}"
        )
    return "\n".join(lines)
