"""MMPose's top-down train pipeline, as random draws plus a deterministic warp on the geometry of ``models/``.

The pipeline of every COCO config here (``configs/body_2d_keypoint/*/coco/*-210e_coco-*.py``, MMPose 1.3.2)::

    GetBBoxCenterScale(padding=1.25) -> RandomFlip(0.5, horizontal) -> RandomHalfBody() -> RandomBBoxTransform()
    -> TopdownAffine(input_size) -> GenerateTarget(codec)

and of the MPII configs (``*/mpii/*-210e_mpii-256x256.py``): no ``RandomHalfBody``, ``RandomBBoxTransform(shift_prob=0)``
(:data:`MPII_AUGMENT`), MPII's flip pairs, and ``GetBBoxCenterScale`` padding the annotation's own center / scale.

is split into two steps so that a test can give both implementations the same random numbers:

* :func:`sample_draws` draws the random decisions from a ``numpy.random.RandomState`` in exactly the order
  and with exactly the calls MMPose makes on numpy's global generator (``np.random.choice`` for the flip,
  ``np.random.rand`` for the half body, ``scipy.stats.truncnorm.rvs`` then ``np.random.rand`` for the box
  transform), so a ``RandomState(seed)`` gives the draws MMPose gives after ``np.random.seed(seed)``;
* :func:`apply_topdown` applies given draws with the torch-free geometry of ``models.geometry``
  (``bbox_xyxy2cs``, the flips, ``half_body_center_scale``, ``fix_aspect_ratio``, ``get_warp_matrix``,
  ``crop_image``) and returns the crop, the keypoints in crop pixels and the box it used.

Sources: ``mmpose/datasets/transforms/common_transforms.py`` (``GetBBoxCenterScale``, ``RandomFlip``,
``RandomHalfBody``, ``RandomBBoxTransform``), ``mmpose/datasets/transforms/topdown_transforms.py``
(``TopdownAffine``), ``mmpose/structures/keypoint/transforms.py`` (``flip_keypoints``) and
``mmpose/structures/bbox/transforms.py`` (``flip_bbox``). Torch-free (numpy, OpenCV, scipy).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from models.geometry import (
    DEFAULT_PADDING,
    bbox_xyxy2cs,
    crop_image,
    crop_warp_matrix,
    fix_aspect_ratio,
    flip_center_horizontal,
    flip_keypoints_horizontal,
    half_body_center_scale,
    transform_points,
)
from models.keypoints import COCO17_LOWER_BODY_IDS, COCO17_UPPER_BODY_IDS, flip_indices


@dataclass(frozen=True)
class AugmentConfig:
    """The train-time augmentation: MMPose's defaults of each transform (``enabled=False``: none of them).

    Attributes:
        enabled: apply RandomFlip, RandomHalfBody and RandomBBoxTransform (False: only the box crop, as at test time).
        half_body: the pipeline has RandomHalfBody (COCO configs; MPII's have none, so nothing is drawn for it).
        flip_prob: RandomFlip ``prob`` (0.5).
        half_body_min_keypoints: RandomHalfBody ``min_total_keypoints`` (9 visible keypoints).
        half_body_min_upper, half_body_min_lower: ``min_upper_keypoints`` (2) / ``min_lower_keypoints`` (3).
        half_body_padding: ``padding`` (1.5).
        half_body_prob: ``prob`` (0.3).
        upper_prioritized_prob: ``upper_prioritized_prob`` (0.7).
        shift_factor, shift_prob: RandomBBoxTransform shift (0.16 of the box scale, p 0.3).
        scale_factor, scale_prob: resize range (0.5, 1.5), p 1.0.
        rotate_factor, rotate_prob: rotation up to +-80 degrees, p 0.6 (truncated normal draws in [-1, 1]).
        padding: GetBBoxCenterScale padding (1.25).
    """

    enabled: bool = True
    half_body: bool = True
    flip_prob: float = 0.5
    half_body_min_keypoints: int = 9
    half_body_min_upper: int = 2
    half_body_min_lower: int = 3
    half_body_padding: float = 1.5
    half_body_prob: float = 0.3
    upper_prioritized_prob: float = 0.7
    shift_factor: float = 0.16
    shift_prob: float = 0.3
    scale_factor: tuple[float, float] = (0.5, 1.5)
    scale_prob: float = 1.0
    rotate_factor: float = 80.0
    rotate_prob: float = 0.6
    padding: float = DEFAULT_PADDING

    def __post_init__(self) -> None:
        for name in (
            "flip_prob",
            "half_body_prob",
            "upper_prioritized_prob",
            "shift_prob",
            "scale_prob",
            "rotate_prob",
        ):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"AugmentConfig.{name} must be a probability in [0, 1], got {v}")
        lo, hi = self.scale_factor
        if not 0 < lo <= hi:
            raise ValueError(
                f"AugmentConfig.scale_factor must be (low, high) with 0 < low <= high, got {self.scale_factor}"
            )
        if self.padding <= 0 or self.half_body_padding <= 0:
            raise ValueError("AugmentConfig paddings must be positive")


@dataclass(frozen=True)
class AugmentDraws:
    """The random decisions for one instance (what MMPose's transforms draw).

    Attributes:
        flip: mirror the image horizontally (RandomFlip).
        half_body: keypoint indices (after the flip) whose box replaces the person box, or None (RandomHalfBody).
        offset: float32 [2], box shift as a fraction of the box scale (RandomBBoxTransform; 0 when not drawn).
        scale: float32 factor on the box scale (1 when not drawn).
        rotation: float32 degrees, counter-clockwise (0 when not drawn).
    """

    flip: bool = False
    half_body: tuple[int, ...] | None = None
    offset: np.ndarray = None  # type: ignore[assignment]
    scale: float = 1.0
    rotation: float = 0.0

    def __post_init__(self) -> None:
        if self.offset is None:
            object.__setattr__(self, "offset", np.zeros(2, np.float32))


#: No augmentation: the crop of the padded box (GetBBoxCenterScale + TopdownAffine only).
NO_DRAWS = AugmentDraws()
#: The MPII configs' augmentation: RandomFlip, RandomBBoxTransform(shift_prob=0), no RandomHalfBody.
MPII_AUGMENT = AugmentConfig(half_body=False, shift_prob=0.0)


def _truncnorm(rs: np.random.RandomState, size: tuple[int, ...]) -> np.ndarray:
    """Standard normal truncated to [-1, 1], float32 (MMPose ``RandomBBoxTransform._truncnorm``)."""
    from scipy.stats import truncnorm

    return truncnorm.rvs(-1.0, 1.0, size=size, random_state=rs).astype(np.float32)


def sample_draws(
    rs: np.random.RandomState,
    keypoints_visible: np.ndarray,
    cfg: AugmentConfig,
    flip_index: np.ndarray | None = None,
    upper_body_ids=COCO17_UPPER_BODY_IDS,
    lower_body_ids=COCO17_LOWER_BODY_IDS,
) -> AugmentDraws:
    """Draw the augmentation of one instance with MMPose's calls, in MMPose's order.

    Args:
        rs: the generator (a ``RandomState``: the same stream as MMPose's ``np.random`` global state).
        keypoints_visible: float [K] visibility in {0, 1} of the instance, before the flip.
        cfg: the probabilities and ranges; with ``cfg.enabled`` False nothing is drawn.
        flip_index: int [K] left/right permutation (default COCO-17).
        upper_body_ids, lower_body_ids: keypoint groups of the half-body transform.

    Returns:
        :class:`AugmentDraws`.
    """
    if not cfg.enabled:
        return NO_DRAWS
    vis = np.asarray(keypoints_visible, dtype=np.float32).reshape(-1)
    fidx = flip_indices(len(vis)) if flip_index is None else np.asarray(flip_index)
    # RandomFlip._choose_direction: np.random.choice(['horizontal', None], p=[prob, 1 - prob])
    flip = int(rs.choice(2, p=[cfg.flip_prob, 1.0 - cfg.flip_prob])) == 0
    if flip:
        vis = vis[fidx]
    # RandomHalfBody._random_select_half_body
    half: tuple[int, ...] | None = None
    if cfg.half_body and vis.sum() >= cfg.half_body_min_keypoints and not rs.rand() > cfg.half_body_prob:
        upper = [i for i in upper_body_ids if vis[i] > 0]
        lower = [i for i in lower_body_ids if vis[i] > 0]
        prefer_upper = rs.rand() < cfg.upper_prioritized_prob
        if len(upper) < cfg.half_body_min_upper and len(lower) < cfg.half_body_min_lower:
            half = None
        elif len(lower) < cfg.half_body_min_lower:
            half = tuple(upper)
        elif len(upper) < cfg.half_body_min_upper:
            half = tuple(lower)
        else:
            half = tuple(upper if prefer_upper else lower)
    # RandomBBoxTransform._get_transform_params (one box)
    v = _truncnorm(rs, (1, 4))
    offset = np.where(rs.rand(1, 1) < cfg.shift_prob, v[:, :2] * cfg.shift_factor, 0.0).astype(np.float32)
    lo, hi = cfg.scale_factor
    scale = np.where(rs.rand(1, 1) < cfg.scale_prob, v[:, 2:3] * ((hi - lo) * 0.5) + (hi + lo) * 0.5, 1.0)
    rotation = np.where(rs.rand(1) < cfg.rotate_prob, v[:, 3] * cfg.rotate_factor, 0.0)
    return AugmentDraws(
        flip=flip,
        half_body=half,
        offset=offset[0],
        scale=np.float32(scale[0, 0]),
        rotation=np.float32(rotation[0]),
    )


@dataclass
class TopdownSample:
    """One instance after the pipeline (before the codec).

    Attributes:
        crop: uint8 [h, w, C] (the channel order of the input image).
        keypoints: float32 [K, 2] in crop pixels.
        keypoints_visible: float32 [K] in {0, 1} (reordered by a flip).
        center, scale: float32 [2] each, the box actually cropped (scale after the aspect fix), image pixels.
        rotation: degrees.
    """

    crop: np.ndarray
    keypoints: np.ndarray
    keypoints_visible: np.ndarray
    center: np.ndarray
    scale: np.ndarray
    rotation: float


def apply_topdown(
    image: np.ndarray,
    bbox_xyxy: np.ndarray,
    keypoints: np.ndarray,
    keypoints_visible: np.ndarray,
    draws: AugmentDraws,
    input_size: tuple[int, int],
    padding: float = DEFAULT_PADDING,
    half_body_padding: float = 1.5,
    flip_index: np.ndarray | None = None,
    center_scale: tuple[np.ndarray, np.ndarray] | None = None,
    use_udp: bool = False,
) -> TopdownSample:
    """GetBBoxCenterScale, RandomFlip, RandomHalfBody, RandomBBoxTransform and TopdownAffine with given draws.

    Args:
        image: uint8 [H, W, C] (RGB here; MMPose's BGR gives the same geometry).
        bbox_xyxy: float [4] person box in image pixels.
        keypoints: float [K, 2] in image pixels.
        keypoints_visible: float [K] in {0, 1}.
        draws: :func:`sample_draws` output (or :data:`NO_DRAWS`).
        input_size: (w, h) of the crop.
        padding: GetBBoxCenterScale padding (1.25).
        half_body_padding: RandomHalfBody padding (1.5).
        flip_index: int [K] (default COCO-17).
        center_scale: the annotation's own box (center, scale) before padding, float [2] each (MPII): as MMPose's
            ``GetBBoxCenterScale`` with ``bbox_center`` / ``bbox_scale`` already set, it is padded and used instead
            of ``bbox_xyxy``'s.
        use_udp: UDP's crop (MMPose ``TopdownAffine(use_udp=True)``, ``models.geometry.get_udp_warp_matrix``).

    Returns:
        :class:`TopdownSample`.

    Raises:
        ValueError: wrong shapes (named).
    """
    if image.ndim != 3:
        raise ValueError(f"image must be [H, W, C], got shape {list(image.shape)}")
    kp = np.asarray(keypoints, dtype=np.float32)
    vis = np.asarray(keypoints_visible, dtype=np.float32)
    if kp.ndim != 2 or kp.shape[1] != 2 or vis.shape != kp.shape[:1]:
        raise ValueError(f"keypoints must be [K, 2] and visibility [K], got {list(kp.shape)} and {list(vis.shape)}")
    if center_scale is None:
        center, scale = bbox_xyxy2cs(np.asarray(bbox_xyxy, dtype=np.float32).reshape(4), padding)
    else:
        center = np.asarray(center_scale[0], dtype=np.float32).reshape(2)
        scale = (np.asarray(center_scale[1], dtype=np.float32).reshape(2) * np.float32(padding)).astype(np.float32)
    if draws.flip:
        fidx = flip_indices(len(kp)) if flip_index is None else np.asarray(flip_index)
        image = cv2.flip(image, 1)  # mmcv.imflip(img, 'horizontal')
        kp, vis = flip_keypoints_horizontal(kp, vis, image.shape[1], fidx)
        center = flip_center_horizontal(center, image.shape[1])
    if draws.half_body is not None:
        center, scale = half_body_center_scale(kp, draws.half_body, half_body_padding)
    center = (center + draws.offset * scale).astype(np.float32)
    scale = (scale * draws.scale).astype(np.float32)
    rot = float(draws.rotation)
    scale = fix_aspect_ratio(scale, input_size[0] / input_size[1])
    crop = crop_image(image, center, scale, input_size, rot, use_udp=use_udp)
    kp_crop = transform_points(kp, crop_warp_matrix(center, scale, rot, input_size, use_udp)).astype(np.float32)
    return TopdownSample(crop, kp_crop, vis, center, scale, rot)
