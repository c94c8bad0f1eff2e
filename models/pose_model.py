"""The top-down pose model: data preprocessing, ResNet backbone, integral or heatmap head, flip test.

Follows ``mmpose/models/pose_estimators/topdown.py`` (``TopdownPoseEstimator``),
``mmpose/models/data_preprocessors/data_preprocessor.py`` (``PoseDataPreprocessor``) and
``mmpose/models/utils/tta.py`` (``flip_coordinates``, ``flip_heatmaps``) of MMPose 1.3.2.

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

from models.codecs import decode_heatmap, decode_integral
from models.heads import HeatmapHead, IntegralRegressionHead
from models.keypoints import NUM_KEYPOINTS, flip_indices
from models.resnet import ResNet
from models.zoo import PoseModelConfig, get_config


def flip_back_coordinates(coords: Tensor, flip_index: Tensor, input_width: int, shift: bool = True) -> Tensor:
    """Normalised coordinates predicted on a horizontally flipped crop -> the original crop.

    ``x <- 1 - x`` (minus ``1 / input_width`` when ``shift``), y unchanged, then joints reordered by
    ``flip_index`` (MMPose ``flip_coordinates`` in ``mmpose/models/utils/tta.py``).

    Args:
        coords: [B, K, 2] normalised (x, y).
        flip_index: int64 [K] (:func:`models.keypoints.flip_indices`).
        input_width: crop width w in pixels.
        shift: MMPose ``shift_coords`` (True in all three integral configs).
    """
    x = 1.0 - coords[..., 0:1]
    if shift:
        x = x - 1.0 / input_width
    return torch.cat([x, coords[..., 1:]], dim=-1)[:, flip_index]


def flip_back_heatmaps(heatmaps: Tensor, flip_index: Tensor, shift: bool = True) -> Tensor:
    """Heatmaps predicted on a horizontally flipped crop -> the original crop.

    Mirror along x, reorder joints by ``flip_index``, and when ``shift`` move every column one heatmap
    pixel right keeping column 0 (MMPose ``flip_heatmaps``, mode ``heatmap``, ``shift_heatmap``).

    Args:
        heatmaps: [B, K, H, W].
        flip_index: int64 [K].
        shift: MMPose ``shift_heatmap`` (True in ``td-hm_res50``).
    """
    hm = heatmaps.flip(-1)[:, flip_index]
    if shift:
        hm = torch.cat([hm[..., :1], hm[..., :-1]], dim=-1)
    return hm


class TopdownPoseModel(nn.Module):
    """ResNet + integral or heatmap head on one person crop.

    Args:
        config: a :class:`~models.zoo.PoseModelConfig`.

    ``forward(inputs)``:
        inputs: float32 [B, 3, h, w] RGB crops already normalised ``(pixel - mean) / std``
            (see :meth:`preprocess`), (w, h) = ``config.input_size``.
        returns, integral head: float32 [B, K, 2] coordinates (x, y) normalised to the crop:
            crop pixel = value * (w, h) (:func:`models.codecs.decode_integral`).
        returns, heatmap head: float32 [B, K, H', W'] heatmaps (``config.heatmap_size``)
            (:func:`models.codecs.decode_heatmaps`).

    ``forward_flip_test(inputs)`` returns the same shapes with MMPose's flip-test averaging.
    """

    def __init__(self, config: PoseModelConfig):
        super().__init__()
        self.config = config
        self.backbone = ResNet(depth=config.backbone_depth, base_channels=config.backbone_base_channels)
        if config.head_kind == "integral":
            self.head: nn.Module = IntegralRegressionHead(
                in_channels=self.backbone.out_channels,
                in_featuremap_size=config.feature_size,
                num_joints=config.num_keypoints,
                beta=config.beta,
                debias=config.debias,
                deconv_out_channels=config.deconv_out_channels,
                deconv_kernel_sizes=config.deconv_kernel_sizes,
            )
        else:
            self.head = HeatmapHead(
                in_channels=self.backbone.out_channels,
                out_channels=config.num_keypoints,
                deconv_out_channels=config.deconv_out_channels,
                deconv_kernel_sizes=config.deconv_kernel_sizes,
            )
        self.register_buffer("mean", torch.tensor(config.mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(config.std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        if config.num_keypoints == NUM_KEYPOINTS:
            self.register_buffer("flip_index", torch.from_numpy(flip_indices()), persistent=False)
        else:
            self.flip_index = None

    @property
    def output_kind(self) -> str:
        """``"integral"`` (coordinates) or ``"heatmap"``."""
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

    def flip_back(self, outputs_flipped: Tensor) -> Tensor:
        """Map the output of a horizontally flipped crop back onto the original crop.

        Integral: x <- 1 - x - 1 / w (``shift_coords``; w = input width) and joints reordered by
        :func:`models.keypoints.flip_indices` (MMPose ``flip_coordinates``).
        Heatmap: maps mirrored, joints reordered, then shifted right by one heatmap pixel
        (``shift_heatmap``; column 0 kept) (MMPose ``flip_heatmaps``, mode ``heatmap``).

        Raises:
            ValueError: the model has no COCO-17 flip pairs (K != 17).
        """
        if self.flip_index is None:
            raise ValueError(f"flip test needs left/right pairs; none are defined for K={self.config.num_keypoints}")
        if self.config.head_kind == "integral":
            return flip_back_coordinates(
                outputs_flipped, self.flip_index, self.config.input_size[0], self.config.shift_coords
            )
        return flip_back_heatmaps(outputs_flipped, self.flip_index, self.config.shift_heatmap)

    def forward_flip_test(self, inputs: Tensor) -> Tensor:
        """Flip test: mean of the output on ``inputs`` and :meth:`flip_back` of the output on the
        horizontally flipped ``inputs`` (debias, if configured, happens inside each pass).
        Same input / output shapes as :meth:`forward`."""
        out = self(inputs)
        out_flip = self.flip_back(self(inputs.flip(-1)))
        return (out + out_flip) * 0.5

    def predict(self, inputs: Tensor, flip_test: bool | None = None) -> Tensor:
        """:meth:`forward` or :meth:`forward_flip_test` (default: ``config.flip_test``)."""
        use_flip = self.config.flip_test if flip_test is None else flip_test
        return self.forward_flip_test(inputs) if use_flip else self(inputs)

    @torch.no_grad()
    def predict_keypoints(self, crops_rgb, flip_test: bool | None = None) -> np.ndarray:
        """uint8 RGB crops [B, h, w, 3] (numpy or tensor) -> float32 [B, K, 3]: x, y in crop pixels, score.

        Preprocess, run (with flip test by default as ``config.flip_test``), decode with
        :func:`models.codecs.decode_integral` (scores 1) or :func:`models.codecs.decode_heatmap`
        (score = heatmap maximum). Map to image pixels with :func:`models.geometry.keypoints_crop_to_image`.
        """
        crops = torch.as_tensor(np.asarray(crops_rgb) if not isinstance(crops_rgb, Tensor) else crops_rgb)
        x = self.preprocess(crops.to(self.mean.device)).to(self.mean.dtype)
        out = self.predict(x, flip_test).float().cpu().numpy()
        if self.config.head_kind == "integral":
            keypoints, scores = decode_integral(out, self.config.input_size)
            return np.concatenate([keypoints, scores[..., None]], axis=-1)
        return decode_heatmap(out, self.config.input_size)

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
        x = images.permute(0, 3, 1, 2).to(torch.float32).contiguous()
        return (x - self.mean) / self.std


class PoseInferenceModule(nn.Module):
    """A graph-ready wrapper: optional in-graph preprocessing and optional in-graph flip test.

    Args:
        model: a :class:`TopdownPoseModel` (put in eval mode by the caller).
        flip_test: average with the flipped pass inside ``forward``.
        uint8_rgb_input: ``forward`` takes uint8 RGB NHWC crops [B, h, w, 3] and normalises them
            (:meth:`TopdownPoseModel.preprocess`); otherwise it takes normalised float NCHW.

    ``forward`` returns what :meth:`TopdownPoseModel.forward` returns.
    """

    def __init__(self, model: TopdownPoseModel, flip_test: bool = False, uint8_rgb_input: bool = False):
        super().__init__()
        self.model = model
        self.flip_test = bool(flip_test)
        self.uint8_rgb_input = bool(uint8_rgb_input)

    def forward(self, x: Tensor) -> Tensor:
        if self.uint8_rgb_input:
            x = self.model.preprocess(x)
        return self.model.forward_flip_test(x) if self.flip_test else self.model(x)


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
