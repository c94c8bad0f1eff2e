"""Top-down geometry with MMPose's conventions: bbox -> center/scale -> affine crop, and back.

Coordinates follow MMPose: a pixel's index is its coordinate (no half-pixel shift). Boxes are
xyxy in pixels of the original image. ``center`` is (x, y) and ``scale`` is (w, h) of the padded,
aspect-fixed box, both in original-image pixels. ``input_size`` is (w, h) of the model input.

Sources: ``mmpose/structures/bbox/transforms.py`` (``bbox_xyxy2cs``, ``get_warp_matrix``, ``get_udp_warp_matrix``),
``mmpose/datasets/transforms/topdown_transforms.py`` (``TopdownAffine._fix_aspect_ratio``, warp with
``cv2.warpAffine`` INTER_LINEAR and a constant 0 border) and
``mmpose/models/pose_estimators/topdown.py`` (crop -> image mapping of predicted keypoints).
Torch-free: numpy + OpenCV.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

#: MMPose's default top-down box padding.
DEFAULT_PADDING: float = 1.25
#: Box coordinates beyond this many pixels are rejected: the padded crop scale must stay finite and float32
#: must still resolve a pixel (its spacing is 1 px at 1.7e7).
MAX_ABS_COORD: float = 1e7


def validate_bboxes(bboxes) -> np.ndarray:
    """Check boxes and return them as float32 [N, 4] xyxy: the one box validation of the project.

    Args:
        bboxes: array-like [N, 4] or [4] of x1, y1, x2, y2 in original-image pixels (numbers; an
            empty list means no boxes).

    Returns:
        float32 array [N, 4] (N may be 0).

    Raises:
        ValueError: ragged nesting, non-numbers (strings, booleans, integers too large for a float), wrong
            shape, a non-finite value or one beyond :data:`MAX_ABS_COORD`, or a box with x2 <= x1 or y2 <= y1
            (the message names the offending box index).
    """
    if not isinstance(bboxes, np.ndarray):
        try:
            flat = np.asarray(bboxes, dtype=object).ravel()
        except (ValueError, TypeError) as exc:
            raise ValueError(f"bboxes must be a list of [x1, y1, x2, y2] number lists: {exc}") from None
        bad = next(
            (v for v in flat if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.number))), None
        )
        if flat.size and bad is not None:
            raise ValueError(f"bboxes must be numbers (x1, y1, x2, y2 in pixels), got {type(bad).__name__} {bad!r:.40}")
    try:
        arr = np.asarray(bboxes)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"bboxes must be a list of [x1, y1, x2, y2] number lists: {exc}") from None
    if arr.size == 0 and arr.ndim <= 2:
        return np.zeros((0, 4), np.float32)
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"bboxes must be numbers (x1, y1, x2, y2 in pixels), got {arr.dtype.name} values")
    arr = arr.astype(np.float64)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"bboxes must have shape [N, 4] (x1, y1, x2, y2), got {list(arr.shape)}")
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        raise ValueError(f"bbox {int(np.flatnonzero(bad)[0])} has a non-finite coordinate")
    far = (np.abs(arr) > MAX_ABS_COORD).any(axis=1)
    if far.any():
        i = int(np.flatnonzero(far)[0])
        raise ValueError(f"bbox {i} has a coordinate outside +-{MAX_ABS_COORD:.0e} px: {arr[i].tolist()}")
    out = arr.astype(np.float32)
    empty = (out[:, 2] <= out[:, 0]) | (out[:, 3] <= out[:, 1])
    if empty.any():
        i = int(np.flatnonzero(empty)[0])
        raise ValueError(f"bbox {i} {arr[i].tolist()} is empty: need x2 > x1 and y2 > y1")
    return out


def bbox_xyxy2cs(bboxes: np.ndarray, padding: float = DEFAULT_PADDING) -> tuple[np.ndarray, np.ndarray]:
    """Box corners to center and padded scale (MMPose ``bbox_xyxy2cs``).

    Args:
        bboxes: float [N, 4] or [4], xyxy in original-image pixels.
        padding: factor multiplied into width and height.

    Returns:
        (center, scale): float32 [N, 2] each (or [2] for a single box); center (x, y),
        scale (w, h) * padding, in original-image pixels.
    """
    b = np.asarray(bboxes, dtype=np.float32)
    single = b.ndim == 1
    b = b.reshape(-1, 4)
    scale = (b[:, 2:] - b[:, :2]) * np.float32(padding)
    center = (b[:, 2:] + b[:, :2]) * np.float32(0.5)
    if single:
        return center[0], scale[0]
    return center, scale


def bbox_cs2xyxy(center: np.ndarray, scale: np.ndarray, padding: float = 1.0) -> np.ndarray:
    """Center and scale to box corners (MMPose ``bbox_cs2xyxy``: ``wh = scale / padding``, corners ``center -+ wh / 2``).

    Args:
        center: float [N, 2] or [2], (x, y) in original-image pixels.
        scale: float [N, 2] or [2], (w, h) in original-image pixels.
        padding: the factor ``scale`` holds (1: none).

    Returns:
        float32 [N, 4] (or [4]) xyxy.
    """
    c = np.asarray(center, dtype=np.float32)
    wh = np.asarray(scale, dtype=np.float32) / np.float32(padding)
    return np.concatenate([c - 0.5 * wh, c + 0.5 * wh], axis=-1).astype(np.float32)


def bbox_xywh2xyxy(bboxes: np.ndarray) -> np.ndarray:
    """COCO xywh [N, 4] to xyxy [N, 4] (same units and dtype)."""
    b = np.array(bboxes, copy=True)
    b[..., 2] = b[..., 0] + b[..., 2]
    b[..., 3] = b[..., 1] + b[..., 3]
    return b


def fix_aspect_ratio(scale: np.ndarray, aspect_ratio: float) -> np.ndarray:
    """Grow the shorter side of ``scale`` so that w / h == aspect_ratio (MMPose TopdownAffine).

    Args:
        scale: float [N, 2] or [2], (w, h) in pixels.
        aspect_ratio: target w / h of the model input (1.0 for 256x256: the box becomes square).

    Returns:
        float32 array of the same shape.
    """
    s = np.asarray(scale, dtype=np.float32)
    single = s.ndim == 1
    s = s.reshape(-1, 2)
    w, h = s[:, :1], s[:, 1:]
    ar = np.float32(aspect_ratio)
    out = np.where(w > h * ar, np.hstack([w, w / ar]), np.hstack([h * ar, h])).astype(np.float32)
    return out[0] if single else out


def bbox_to_center_scale(
    bboxes: np.ndarray, input_size: tuple[int, int], padding: float = DEFAULT_PADDING
) -> tuple[np.ndarray, np.ndarray]:
    """xyxy boxes to (center, scale) ready for the warp: padded, then aspect-fixed to the input.

    Args:
        bboxes: [N, 4] xyxy in original-image pixels (validated with :func:`validate_bboxes`).
        input_size: (w, h) of the model input, e.g. (256, 256).
        padding: box padding factor (MMPose default 1.25).

    Returns:
        center, scale: float32 [N, 2] each, original-image pixels.

    Raises:
        ValueError: as :func:`validate_bboxes`.
    """
    b = validate_bboxes(bboxes)
    center, scale = bbox_xyxy2cs(b, padding)
    return center, fix_aspect_ratio(scale, input_size[0] / input_size[1])


def _rotate_point(pt: np.ndarray, angle_rad: float) -> np.ndarray:
    sn, cs = np.sin(angle_rad), np.cos(angle_rad)
    return np.array([[cs, -sn], [sn, cs]]) @ pt


def _get_3rd_point(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    direction = a - b
    return b + np.r_[-direction[1], direction[0]]


def get_warp_matrix(
    center: np.ndarray,
    scale: np.ndarray,
    rot: float,
    output_size: tuple[int, int],
    shift: tuple[float, float] = (0.0, 0.0),
    inv: bool = False,
) -> np.ndarray:
    """Affine matrix mapping the box region to the model input (MMPose ``get_warp_matrix``, no UDP).

    Args:
        center: [2] box center (x, y), original-image pixels.
        scale: [2] box (w, h), original-image pixels; only w sets the zoom (aspect already fixed).
        rot: rotation in degrees (counter-clockwise, as MMPose).
        output_size: (w, h) of the crop.
        shift: translation as a fraction of ``scale``.
        inv: False maps image -> crop, True maps crop -> image.

    Returns:
        float64 [2, 3] matrix for ``cv2.warpAffine`` / :func:`transform_points`.
    """
    center = np.asarray(center, dtype=np.float32)
    scale = np.asarray(scale, dtype=np.float32)
    shift_a = np.asarray(shift, dtype=np.float64)
    src_w = scale[0]
    dst_w, dst_h = output_size[0], output_size[1]
    rot_rad = np.deg2rad(rot)
    src_dir = _rotate_point(np.array([src_w * -0.5, 0.0]), rot_rad)
    dst_dir = np.array([dst_w * -0.5, 0.0])

    src = np.zeros((3, 2), dtype=np.float32)
    src[0, :] = center + scale * shift_a
    src[1, :] = center + src_dir + scale * shift_a
    src[2, :] = _get_3rd_point(src[0, :], src[1, :])

    dst = np.zeros((3, 2), dtype=np.float32)
    dst[0, :] = [dst_w * 0.5, dst_h * 0.5]
    dst[1, :] = np.array([dst_w * 0.5, dst_h * 0.5]) + dst_dir
    dst[2, :] = _get_3rd_point(dst[0, :], dst[1, :])

    if inv:
        return cv2.getAffineTransform(np.float32(dst), np.float32(src))
    return cv2.getAffineTransform(np.float32(src), np.float32(dst))


def get_udp_warp_matrix(center: np.ndarray, scale: np.ndarray, rot: float, output_size: tuple[int, int]) -> np.ndarray:
    """Affine matrix of UDP's crop (MMPose ``get_udp_warp_matrix``, ``TopdownAffine(use_udp=True)``): the box's
    ``scale`` pixels map onto ``output_size - 1`` crop pixels, so its edges land on the first and last crop pixels.

    Args:
        center: [2] box center (x, y), original-image pixels.
        scale: [2] box (w, h), original-image pixels (aspect already fixed).
        rot: rotation in degrees (counter-clockwise).
        output_size: (w, h) of the crop.

    Returns:
        float32 [2, 3] image -> crop matrix (MMPose's dtype), for ``cv2.warpAffine`` / :func:`transform_points`.
    """
    center = np.asarray(center)
    scale = np.asarray(scale)
    input_size = center * 2
    rot_rad = np.deg2rad(rot)
    cs, sn = math.cos(rot_rad), math.sin(rot_rad)
    warp_mat = np.zeros((2, 3), dtype=np.float32)
    scale_x = (output_size[0] - 1) / scale[0]
    scale_y = (output_size[1] - 1) / scale[1]
    warp_mat[0, 0] = cs * scale_x
    warp_mat[0, 1] = -sn * scale_x
    warp_mat[0, 2] = scale_x * (-0.5 * input_size[0] * cs + 0.5 * input_size[1] * sn + 0.5 * scale[0])
    warp_mat[1, 0] = sn * scale_y
    warp_mat[1, 1] = cs * scale_y
    warp_mat[1, 2] = scale_y * (-0.5 * input_size[0] * sn - 0.5 * input_size[1] * cs + 0.5 * scale[1])
    return warp_mat


def crop_warp_matrix(
    center: np.ndarray, scale: np.ndarray, rot: float, input_size: tuple[int, int], use_udp: bool = False
) -> np.ndarray:
    """The image -> crop matrix of MMPose's ``TopdownAffine``: :func:`get_udp_warp_matrix` when ``use_udp``, else
    :func:`get_warp_matrix`."""
    if use_udp:
        return get_udp_warp_matrix(center, scale, rot, input_size)
    return get_warp_matrix(center, scale, rot, input_size)


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a [2, 3] affine matrix to points [..., 2]; returns float64 [..., 2]."""
    p = np.asarray(points, dtype=np.float64)
    m = np.asarray(matrix, dtype=np.float64)
    return p @ m[:, :2].T + m[:, 2]


def crop_image(
    image: np.ndarray,
    center: np.ndarray,
    scale: np.ndarray,
    input_size: tuple[int, int],
    rot: float = 0.0,
    use_udp: bool = False,
) -> np.ndarray:
    """Warp one box region to the model input with ``cv2.warpAffine`` (INTER_LINEAR, border 0), as MMPose's
    ``TopdownAffine`` does (``use_udp``: UDP's matrix, :func:`crop_warp_matrix`).

    Args:
        image: HxWxC uint8 (any channel order; it is kept).
        center, scale: [2] each from :func:`bbox_to_center_scale`, original-image pixels.
        input_size: (w, h) of the crop.
        rot: rotation in degrees (training augmentation; 0 at inference), see :func:`get_warp_matrix`.
        use_udp: UDP's crop (:func:`get_udp_warp_matrix`).

    Returns:
        uint8 [h, w, C] crop. Map points with :func:`transform_points` and the same
        ``crop_warp_matrix(center, scale, rot, input_size, use_udp)``.
    """
    m = crop_warp_matrix(center, scale, rot, input_size, use_udp)
    return cv2.warpAffine(
        image,
        m,
        (int(input_size[0]), int(input_size[1])),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


def warp_matrices(centers: np.ndarray, scales: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    """:func:`get_warp_matrix` (rotation 0, no shift, image -> crop) of N boxes: float64 [N, 2, 3], bit-identical.

    The three point pairs of MMPose's ``get_warp_matrix`` (box centre, the centre moved half the box width left, and
    the third point at a right angle) are computed for all boxes at once with the same float32 roundings; each map is
    then solved by ``cv2.getAffineTransform`` as there. (Solving all of them in one float64 call would differ by a
    few ulps, and ``cv2.warpAffine``'s fixed-point sampling turns such ulps into 1-level pixel differences on about a
    third of the crops, so the solve stays OpenCV's.)

    Args:
        centers, scales: float [N, 2] (:func:`bbox_to_center_scale`), original-image pixels.
        input_size: (w, h) of the crop.
    """
    c = np.asarray(centers, dtype=np.float32).reshape(-1, 2)
    s = np.asarray(scales, dtype=np.float32).reshape(-1, 2)
    n = len(c)
    src = np.empty((n, 3, 2), dtype=np.float32)
    src[:, 0] = c
    src[:, 1] = c + np.stack([s[:, 0].astype(np.float64) * -0.5, np.zeros(n)], 1)
    d = src[:, 0] - src[:, 1]
    src[:, 2] = src[:, 1] + np.stack([-d[:, 1], d[:, 0]], 1)
    dst_w, dst_h = float(input_size[0]), float(input_size[1])
    dst = np.float32([[dst_w * 0.5, dst_h * 0.5], [0.0, dst_h * 0.5], [0.0, dst_h * 0.5 + dst_w * 0.5]])
    out = np.empty((n, 2, 3), dtype=np.float64)
    for i in range(n):
        out[i] = cv2.getAffineTransform(src[i], dst)
    return out


def crop_batch(
    image: np.ndarray, centers: np.ndarray, scales: np.ndarray, input_size: tuple[int, int], use_udp: bool = False
) -> np.ndarray:
    """Crops of N boxes from one image: uint8 [N, h, w, C] (see :func:`crop_image`; ``use_udp``: UDP's crop), each
    warped straight into its slot of the batch with the matrices of :func:`warp_matrices` (UDP: one
    :func:`get_udp_warp_matrix` per box)."""
    w, h = int(input_size[0]), int(input_size[1])
    out = np.empty((len(centers), h, w, image.shape[2]), dtype=np.uint8)
    if use_udp:
        matrices = [get_udp_warp_matrix(c, s, 0.0, input_size) for c, s in zip(centers, scales)]
    else:
        matrices = warp_matrices(centers, scales, input_size)
    for i, m in enumerate(matrices):
        cv2.warpAffine(image, m, (w, h), dst=out[i], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                       borderValue=0)  # fmt: skip
    return out


def keypoints_crop_to_image(
    keypoints_xy: np.ndarray, centers: np.ndarray, scales: np.ndarray, input_size: tuple[int, int]
) -> np.ndarray:
    """Map keypoints from crop pixels back to original-image pixels (MMPose top-down, rot 0).

    ``x_img = x_crop / input_w * scale_w + center_x - scale_w / 2`` (likewise y), which is the
    inverse of :func:`get_warp_matrix` for zero rotation. MMPose maps UDP models' keypoints back with the same
    formula: UDP's decode already scales by ``w / (W - 1)`` (``models.codecs_dark_udp.UDPHeatmap``), which makes it
    the inverse of :func:`get_udp_warp_matrix`.

    Args:
        keypoints_xy: float [N, K, 2] x, y in crop pixels.
        centers, scales: float [N, 2], original-image pixels.
        input_size: (w, h) of the crop.

    Returns:
        float32 [N, K, 2] in original-image pixels.
    """
    kp = np.asarray(keypoints_xy, dtype=np.float32)
    size = np.asarray(input_size, dtype=np.float32)
    c = np.asarray(centers, dtype=np.float32)[:, None, :]
    s = np.asarray(scales, dtype=np.float32)[:, None, :]
    return kp / size * s + c - 0.5 * s


def flip_keypoints_horizontal(
    keypoints: np.ndarray, keypoints_visible: np.ndarray, image_width: int, flip_index: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints of a horizontally mirrored image (MMPose ``flip_keypoints``, direction ``horizontal``).

    Joints are reordered by ``flip_index`` (left <-> right), then ``x <- w - 1 - x`` (a pixel's index is its
    coordinate, so pixel i mirrors to w - 1 - i); y is unchanged.

    Args:
        keypoints: float [..., K, 2] (x, y) in image pixels.
        keypoints_visible: [..., K] visibility (reordered like the joints).
        image_width: w of the image in pixels.
        flip_index: int [K] (:func:`models.keypoints.flip_indices`).

    Returns:
        (keypoints, keypoints_visible): new arrays, same dtypes.

    Raises:
        ValueError: shapes that do not match.
    """
    kp = np.asarray(keypoints)
    vis = np.asarray(keypoints_visible)
    if kp.shape[-1] != 2 or kp.shape[:-1] != vis.shape or kp.shape[-2] != len(flip_index):
        raise ValueError(
            f"keypoints [..., K, 2] and visibility [..., K] with K = {len(flip_index)} expected, "
            f"got {list(kp.shape)} and {list(vis.shape)}"
        )
    kp = kp.take(flip_index, axis=-2)
    vis = vis.take(flip_index, axis=-1)
    kp[..., 0] = image_width - 1 - kp[..., 0]
    return kp, vis


def flip_center_horizontal(center: np.ndarray, image_width: int) -> np.ndarray:
    """Box centers [..., 2] of a horizontally mirrored image: ``x <- w - 1 - x`` (MMPose ``flip_bbox``,
    format ``center``). Returns a new array of the same dtype."""
    c = np.array(center, copy=True)
    c[..., 0] = image_width - 1 - c[..., 0]
    return c


def half_body_center_scale(keypoints: np.ndarray, ids, padding: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """Center and scale of the box around some keypoints (MMPose ``RandomHalfBody._get_half_body_bbox``).

    center = mean of the selected keypoints; scale = (max - min) of their x and y, times ``padding``
    (the aspect ratio is fixed later, by the crop, as in MMPose).

    Args:
        keypoints: float [K, 2] (x, y) in image pixels.
        ids: indices of the selected keypoints (non-empty).
        padding: MMPose 1.5.

    Returns:
        (center [2], scale [2]) in image pixels, the keypoints' dtype.

    Raises:
        ValueError: no keypoint selected.
    """
    ids = list(ids)
    if not ids:
        raise ValueError("half_body_center_scale needs at least one keypoint")
    sel = np.asarray(keypoints)[ids]
    center = sel.mean(axis=0)[:2]
    wh = sel.max(axis=0) - sel.min(axis=0)
    scale = np.array([wh[0], wh[1]], dtype=center.dtype) * padding
    return center, scale


def box_iou_matrix(bboxes_a: np.ndarray, bboxes_b: np.ndarray) -> np.ndarray:
    """IoU between every box of one set and every box of another (intersection over union of the areas).

    The boxes' areas are ``(x2 - x1) * (y2 - y1)`` (no +1: a pixel's index is its coordinate, as MMPose's
    ``_compute_iou`` in ``mmpose/apis/inference_tracking.py`` of 0.x and MMDeploy's pose tracker
    ``intersection_over_union``). A pair whose union is 0 (two empty boxes) has IoU 0.

    Args:
        bboxes_a: float [N, 4] xyxy in original-image pixels.
        bboxes_b: float [M, 4] xyxy in the same pixels.

    Returns:
        float64 [N, M] in [0, 1].

    Raises:
        ValueError: an input is not [*, 4].
    """
    a, b = np.asarray(bboxes_a, dtype=np.float64), np.asarray(bboxes_b, dtype=np.float64)
    a, b = (x.reshape(0, 4) if x.size == 0 else x for x in (a, b))
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != 4 or b.shape[1] != 4:
        raise ValueError(f"boxes must be [N, 4] xyxy, got {list(a.shape)} and {list(b.shape)}")
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0.0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_a = np.clip(a[:, 2] - a[:, 0], 0.0, None) * np.clip(a[:, 3] - a[:, 1], 0.0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0.0, None) * np.clip(b[:, 3] - b[:, 1], 0.0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
