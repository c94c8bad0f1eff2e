"""The top-down pose model: data preprocessing, a backbone (``models.backbones``), integral, heatmap, DeepPose or RLE head.

Follows ``mmpose/models/pose_estimators/topdown.py`` (``TopdownPoseEstimator``) and
``mmpose/models/data_preprocessors/data_preprocessor.py`` (``PoseDataPreprocessor``) of MMPose 1.3.2.
Decoding and the flip test are not torch code: :meth:`TopdownPoseModel.predict_keypoints` hands the
network outputs to the model card's decode (``models.card.ModelCard.decode``, on ``models.codecs``),
the same code the service runs on exported graphs.

State-dict keys are MMPose's: ``backbone.*`` and ``head.*`` (the preprocessing mean / std are
non-persistent buffers, as in MMPose, so they are not in the state dict).

Colour order: MMPose loads images as BGR with OpenCV and its preprocessor (``bgr_to_rgb=True``)
converts them to RGB before normalising with the RGB ImageNet mean / std. This model therefore takes
RGB input; the service decodes images to RGB, so no channel swap is needed anywhere.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from models.backbones import build_backbone
from models.card import ModelCard, card_for_config
from models.heads import head_kind
from models.zoo import PoseModelConfig, get_config


class TopdownPoseModel(nn.Module):
    """A backbone (``config.backbone``) + integral, heatmap, regression (DeepPose) or RLE head on one person crop.

    Args:
        config: a :class:`~models.zoo.PoseModelConfig`.

    ``forward(inputs)``:
        inputs: float32 [B, 3, h, w] RGB crops already normalised ``(pixel - mean) / std``
            (see :meth:`preprocess`), (w, h) = ``config.input_size``.
        returns, integral head: float32 [B, K, 2] coordinates (x, y) normalised to the crop:
            crop pixel = value * (w, h) (:func:`models.codecs.decode_integral`).
        returns, heatmap head: float32 [B, K, H', W'] heatmaps (``config.heatmap_size``)
            (:func:`models.codecs.decode_heatmaps`).
        returns, regression head: float32 [B, K, 2] normalised coordinates, as the integral head.
        returns, RLE head: float32 [B, K, 3]: normalised coordinates and the keypoint score (1 - mean sigma).

    :meth:`predict_keypoints` runs uint8 crops to keypoints in crop pixels, with or without flip test.

    ``kind`` is the config's :class:`~models.heads.base.HeadKind` (``models.heads.head_kind``): it built ``head``
    and knows how to train and scale it.
    """

    def __init__(self, config: PoseModelConfig):
        super().__init__()
        self.config = config
        self.backbone = build_backbone(config)
        self.kind = head_kind(config.head_kind)
        self.kind.check_config(config)
        self.head: nn.Module = self.kind.build(config, self.backbone.out_channels)
        self.register_buffer("mean", torch.tensor(config.mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(config.std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self._card: ModelCard | None = None

    @property
    def output_kind(self) -> str:
        """The head kind: ``"integral"``, ``"regression"``, ``"rle"`` (coordinates) or ``"heatmap"``."""
        return self.config.head_kind

    def _check_input(self, inputs: Tensor) -> None:
        w, h = self.config.input_size
        if not isinstance(inputs, Tensor) or inputs.ndim != 4 or inputs.shape[1] != 3:
            shape = list(inputs.shape) if isinstance(inputs, Tensor) else type(inputs).__name__
            raise ValueError(f"pose model input must be [B, 3, {h}, {w}] float, got {shape}")
        if inputs.shape[2] != h or inputs.shape[3] != w:
            raise ValueError(f"pose model input must be [B, 3, {h}, {w}], got {list(inputs.shape)}")
        if not inputs.is_floating_point():
            raise ValueError(
                f"pose model input must be floating point (normalised), got {inputs.dtype}; use preprocess()"
            )

    def forward(self, inputs: Tensor) -> Tensor:
        self._check_input(inputs)
        return self.head(self.backbone(inputs))

    @property
    def card(self) -> ModelCard:
        """The card this model's exported graph gets (:func:`models.card.card_for_config`): its decode is used here."""
        if self._card is None:
            self._card = card_for_config(self.config)
        return self._card

    @torch.no_grad()
    def predict_keypoints(self, crops_rgb, flip_test: bool | None = None) -> np.ndarray:
        """uint8 RGB crops [B, h, w, 3] (numpy or tensor) -> float32 [B, K, 3]: x, y in crop pixels, score.

        :meth:`preprocess`, the network on the crops (and on the mirrored crops, in one batch, when flip
        testing), then :meth:`models.card.ModelCard.decode` of :attr:`card`: normalised coordinates to crop pixels
        (scores 1, or RLE's 1 - mean sigma) or MMPose's heatmap decode (score = heatmap maximum), with MMPose's
        flip-back. Map to image pixels
        with :func:`models.geometry.keypoints_crop_to_image`.

        Args:
            crops_rgb: uint8 [B, h, w, 3].
            flip_test: average with the mirrored crops (default ``config.flip_test``).

        Raises:
            ValueError: wrong crop shape, or flip test on a model without flip pairs (no keypoint schema).
        """
        crops = torch.as_tensor(np.asarray(crops_rgb) if not isinstance(crops_rgb, Tensor) else crops_rgb)
        x = self.preprocess(crops.to(self.mean.device)).to(self.mean.dtype)
        use_flip = self.config.flip_test if flip_test is None else flip_test
        if use_flip:
            out = self(torch.cat([x, x.flip(-1)])).float().cpu().numpy()
            return self.card.decode(out[: len(x)], out[len(x) :])
        return self.card.decode(self(x).float().cpu().numpy())

    def preprocess(self, images: Tensor) -> Tensor:
        """uint8 RGB crops [B, h, w, 3] (NHWC, 0-255) -> normalised float32 [B, 3, h, w].

        ``(pixel - mean) / std`` with the config's RGB mean / std: exactly MMPose's
        ``PoseDataPreprocessor`` applied to the same crop loaded as BGR (it swaps to RGB first).
        Written with plain tensor ops so that export can put it in the graph.

        Raises:
            ValueError: not [B, h, w, 3].
        """
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"expected RGB crops [B, h, w, 3], got {list(images.shape)}")
        # cast first: in the exported graph a uint8 input must feed a Cast directly (TensorRT holds no
        # uint8 intermediate tensors)
        x = images.to(torch.float32).permute(0, 3, 1, 2).contiguous()
        return (x - self.mean) / self.std


def scale_head_logits(model: TopdownPoseModel, crops: np.ndarray, std: float | None = None) -> TopdownPoseModel:
    """Scale the head's last layer so its outputs on ``crops`` have standard deviation ``std``.

    For experiments with random weights (tests, benchmarks): a fresh MMPose-initialised head gives logits of
    ~1e-6, so every crop decodes to the crop centre and two models agree by accident; a spread like a trained
    model's (std ~2) gives peaked heatmaps whose keypoints depend on the image. Heatmap and integral heads: the
    final 1x1 convolution's logits; regression and RLE heads: ``fc`` (all its outputs: coordinates and sigma
    logits), so the normalised coordinates spread by ``std`` crop widths (std ~0.2 keeps most in the crop).

    Args:
        model: a :class:`TopdownPoseModel` (modified in place).
        crops: uint8 RGB crops [B, h, w, 3] to measure the outputs on.
        std: the target standard deviation (default: the head kind's ``trained_output_std``,
            ``models.heads.base.HeadKind``).

    Returns:
        ``model``.
    """
    std = model.kind.trained_output_std if std is None else std
    with torch.no_grad():
        feats = model.backbone(model.preprocess(torch.as_tensor(np.asarray(crops))))
        model.kind.scale_last_layer(model.head, feats, std)
    return model


def build_pose_model(name_or_config: str | PoseModelConfig | dict) -> TopdownPoseModel:
    """Build a randomly initialised :class:`TopdownPoseModel` (eval mode).

    Args:
        name_or_config: a zoo name (``"ipr_res50_debias"``), a :class:`PoseModelConfig`, or its dict.

    Raises:
        KeyError: unknown zoo name. ValueError / TypeError: invalid config.
    """
    if isinstance(name_or_config, str):
        config = get_config(name_or_config)
    elif isinstance(name_or_config, dict):
        config = PoseModelConfig.from_dict(name_or_config)
    elif isinstance(name_or_config, PoseModelConfig):
        config = name_or_config
    else:
        raise TypeError(f"expected a zoo name, PoseModelConfig or dict, got {type(name_or_config).__name__}")
    return TopdownPoseModel(config).eval()
