"""Draw boxes, skeletons and track IDs on an image: ``POST /pose?render=true`` (JPEG) and ``pose-predict --render``
(JPEG, MP4).

Colours follow MMPose's COCO visualisation (and Ultralytics' idea): joints and limbs of the left side in one colour,
of the right side in another, the rest (nose, face and torso links across the body) in a third, decided from the
schema's keypoint names (``left_*`` / ``right_*``). With track IDs, each person's box and its ``id N`` label take the
colour of its track from a fixed palette, so a person keeps its colour over a video.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from models.keypoints import COCO17_SKELETON

#: RGB colours of the left side, the right side and the centre (MMPose's COCO ``keypoint_info`` / ``skeleton_info``).
LEFT_COLOR: tuple[int, int, int] = (0, 255, 0)
RIGHT_COLOR: tuple[int, int, int] = (255, 128, 0)
CENTER_COLOR: tuple[int, int, int] = (51, 153, 255)
#: Colours without keypoint names (one side cannot be told from the other): joints, limbs, boxes.
JOINT_COLOR: tuple[int, int, int] = (255, 0, 0)
LIMB_COLOR: tuple[int, int, int] = (255, 128, 0)
BOX_COLOR: tuple[int, int, int] = (0, 200, 0)

#: Track colours (RGB), track ID ``i`` -> ``TRACK_PALETTE[i % 20]`` (Ultralytics' ``Colors`` palette).
TRACK_PALETTE: tuple[tuple[int, int, int], ...] = tuple(
    (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16))
    for h in (
        "FF3838", "FF9D97", "FF701F", "FFB21D", "CFD231", "48F90A", "92CC17", "3DDB86", "1A9334", "00D4BB",
        "2C99A8", "00C2FF", "344593", "6473FF", "0018EC", "8438FF", "520085", "CB38FF", "FF95C8", "FF37C7",
    )
)  # fmt: skip


def track_color(track_id: int) -> tuple[int, int, int]:
    """The RGB colour of a track: the same for the same ID, whatever the frame or the process."""
    return TRACK_PALETTE[int(track_id) % len(TRACK_PALETTE)]


def keypoint_sides(keypoint_names: Sequence[str] | None, num_keypoints: int) -> np.ndarray:
    """The side of each keypoint from its name: int8 [K], -1 left (``left_*``), +1 right (``right_*``), 0 centre
    (any other name, and every keypoint when ``keypoint_names`` is None or does not have K names)."""
    sides = np.zeros(num_keypoints, np.int8)
    if keypoint_names is None or len(keypoint_names) != num_keypoints:
        return sides
    for i, name in enumerate(keypoint_names):
        name = str(name).lower()
        sides[i] = -1 if name.startswith("left") else 1 if name.startswith("right") else 0
    return sides


def _side_color(side: int) -> tuple[int, int, int]:
    return LEFT_COLOR if side < 0 else RIGHT_COLOR if side > 0 else CENTER_COLOR


def _draw_label(out: np.ndarray, text: str, x: int, y: int, color: tuple[int, int, int], t: int) -> None:
    """``text`` on a filled box of ``color`` with its bottom-left at the box corner (x, y), moved inside the box when
    there is no room above it."""
    scale = max(0.4, t / 3)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, max(1, t // 2))
    h = th + base + 2
    top = y - h if y - h >= 0 else y
    x = min(max(0, x), max(0, out.shape[1] - tw - 2))
    cv2.rectangle(out, (x, top), (x + tw + 2, top + h), color, -1)
    text_color = (0, 0, 0) if sum(color) > 382 else (255, 255, 255)
    cv2.putText(out, text, (x + 1, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, text_color, max(1, t // 2),
                cv2.LINE_AA)  # fmt: skip


def render_poses(
    image: np.ndarray,
    bboxes: np.ndarray,
    keypoints: np.ndarray,
    kpt_score_thr: float = 0.3,
    skeleton=COCO17_SKELETON,
    keypoint_names: Sequence[str] | None = None,
    track_ids: np.ndarray | None = None,
) -> np.ndarray:
    """Return a copy of ``image`` with boxes, limbs, joints (and track labels) drawn.

    Line thickness grows with the image: ``max(1, round(max(H, W) / 400))`` pixels; joints are filled circles of
    radius thickness + 2.

    Args:
        image: uint8 [H, W, 3] RGB.
        bboxes: float [N, 4] xyxy, original-image pixels.
        keypoints: float [N, K, 3] x, y (original-image pixels), score.
        kpt_score_thr: joints and limbs with a lower score are not drawn.
        skeleton: limbs as 0-based index pairs.
        keypoint_names: K names (the model's schema): ``left_*`` joints and limbs between two left joints in
            :data:`LEFT_COLOR`, ``right_*`` in :data:`RIGHT_COLOR`, the rest in :data:`CENTER_COLOR`. None: joints in
            :data:`JOINT_COLOR`, limbs in :data:`LIMB_COLOR`.
        track_ids: int [N] per person, or None: each box in its track's colour (:func:`track_color`) with an ``id N``
            label at its top-left corner. None: boxes in :data:`BOX_COLOR`, no label.

    Returns:
        uint8 [H, W, 3] RGB.
    """
    out = np.ascontiguousarray(image.copy())
    t = max(1, round(max(image.shape[:2]) / 400))
    keypoints = np.asarray(keypoints)
    sides = keypoint_sides(keypoint_names, keypoints.shape[1]) if keypoints.ndim == 3 else np.zeros(0, np.int8)
    named = keypoint_names is not None and len(sides) == len(keypoint_names)
    ids = None if track_ids is None else np.asarray(track_ids).reshape(-1)
    for n, (box, kpts) in enumerate(zip(np.asarray(bboxes), keypoints)):
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        box_color = BOX_COLOR if ids is None else track_color(ids[n])
        cv2.rectangle(out, (x1, y1), (x2, y2), box_color, t)
        for a, b in skeleton:
            if kpts[a, 2] >= kpt_score_thr and kpts[b, 2] >= kpt_score_thr:
                pa = (int(round(kpts[a, 0])), int(round(kpts[a, 1])))
                pb = (int(round(kpts[b, 0])), int(round(kpts[b, 1])))
                color = _side_color(sides[a] if sides[a] == sides[b] else 0) if named else LIMB_COLOR
                cv2.line(out, pa, pb, color, t, cv2.LINE_AA)
        for k, (x, y, s) in enumerate(kpts):
            if s >= kpt_score_thr:
                color = _side_color(sides[k]) if named else JOINT_COLOR
                cv2.circle(out, (int(round(x)), int(round(y))), t + 2, color, -1, cv2.LINE_AA)
        if ids is not None:
            _draw_label(out, f"id {int(ids[n])}", x1, y1, box_color, t)
    return out


def encode_jpeg(image_rgb: np.ndarray, quality: int = 90) -> bytes:
    """uint8 RGB [H, W, 3] -> JPEG bytes."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def render_jpeg(
    image: np.ndarray,
    bboxes: np.ndarray,
    keypoints: np.ndarray,
    max_pixels: int,
    skeleton=COCO17_SKELETON,
    keypoint_names: Sequence[str] | None = None,
    track_ids: np.ndarray | None = None,
) -> bytes:
    """JPEG of :func:`render_poses`, drawn on a copy downscaled to at most ``max_pixels`` (boxes and keypoints
    scaled with it), so the answer's size is bounded whatever the upload.

    Args:
        image: uint8 [H, W, 3] RGB. bboxes: [N, 4] xyxy and keypoints [N, K, 3], original-image pixels.
        max_pixels: most pixels (width x height) of the drawn image.
        skeleton: limbs as 0-based index pairs of the model's keypoints (``ModelCard.schema.skeleton``; none for a
            model without a known schema).
        keypoint_names, track_ids: see :func:`render_poses`.
    """
    h, w = image.shape[:2]
    scale = min(1.0, (max_pixels / float(w * h)) ** 0.5)
    if scale < 1.0:
        size = (max(1, int(w * scale)), max(1, int(h * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        bboxes = np.asarray(bboxes, np.float32) * scale
        keypoints = np.asarray(keypoints, np.float32).copy()
        keypoints[..., :2] *= scale
    drawn = render_poses(image, bboxes, keypoints, skeleton=skeleton, keypoint_names=keypoint_names,
                         track_ids=track_ids)  # fmt: skip
    return encode_jpeg(drawn)
